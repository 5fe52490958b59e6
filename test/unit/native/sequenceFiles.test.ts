// The binding's compaction, sequence files and per-call prefill chunk: arguments checked
// synchronously, engine errors rejected with codes, a saved sequence restored into another
// engine decoding exactly as the original.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { loadAddon, NativeAddon } from '../../../src/native/addon';

const addon: NativeAddon = loadAddon(path.resolve('dist'));
const fixture = (name: string) => path.resolve('test/fixtures/models', name);
const prompt = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 500);

test('compactSequence keeps the ranges given, in order, and rejects bad ranges', async () => {
  const engine = await addon.loadModel(fixture('llama3-gqa-f32'), { threads: 2 });
  try {
    const sequence = await engine.createSequence();
    await engine.prefill(sequence, prompt, { chunk: 7 });
    await engine.compactSequence(sequence, [
      [0, 10],
      [25, 15],
    ]);
    assert.deepEqual(Array.from(await engine.sequenceTokens(sequence)), [...prompt.slice(0, 10), ...prompt.slice(25)]);
    const logits = await engine.decode(sequence, 3);
    assert.ok(logits.every(Number.isFinite));

    assert.throws(() => engine.compactSequence(sequence, [[0, 1, 2]] as never), /ranges\[0\] must be a \[start, count\] pair/);
    assert.throws(() => engine.compactSequence(sequence, [[-1, 2]]), RangeError);
    assert.throws(() => engine.compactSequence(sequence, 'all' as never), TypeError);
    await assert.rejects(
      engine.compactSequence(sequence, [
        [5, 3],
        [0, 2],
      ]),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'ERR_TIDAL_REQUEST');
        assert.match(error.message, /ascending/);
        return true;
      },
    );
    assert.throws(() => engine.prefill(sequence, [1], { chunk: -1 }), RangeError);
  } finally {
    await engine.unload();
  }
});

test('a saved sequence loads into another engine with the same tokens and logits', async () => {
  const directory = mkdtempSync(path.join(tmpdir(), 'tidal-sequence-'));
  const file = path.join(directory, 'repository.kv');
  const saver = await addon.loadModel(fixture('qwen2-tied-sharded-f32'), { threads: 2 });
  const loader = await addon.loadModel(fixture('qwen2-tied-sharded-f32'), { threads: 2 });
  try {
    const sequence = await saver.createSequence();
    await saver.prefill(sequence, prompt);
    const bytes = await saver.saveSequence(sequence, file);
    assert.equal(bytes, statSync(file).size);
    const loaded = await loader.loadSequence(file);
    assert.deepEqual(Array.from(await loader.sequenceTokens(loaded)), prompt);
    assert.deepEqual(Array.from(await loader.decode(loaded, 9)), Array.from(await saver.decode(sequence, 9)));

    assert.throws(() => loader.loadSequence(42 as never), TypeError);
    assert.throws(() => saver.saveSequence(sequence, ''), TypeError);
    await assert.rejects(loader.loadSequence(path.join(directory, 'missing.kv')), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_TIDAL_REQUEST');
      assert.match(error.message, /cannot open KV file/);
      return true;
    });
    const other = await addon.loadModel(fixture('llama3-gqa-f32'), { threads: 1 });
    try {
      await assert.rejects(other.loadSequence(file), /saved for another model \(architecture: the file has qwen2, this model has llama\)/);
    } finally {
      await other.unload();
    }
  } finally {
    await saver.unload();
    await loader.unload();
    rmSync(directory, { recursive: true, force: true });
  }
});

test('a cancelled save rejects with ERR_TIDAL_CANCELLED and leaves no file', async () => {
  const engine = await addon.loadModel(fixture('llama3-gqa-f32'), { threads: 2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'tidal-save-cancel-'));
  try {
    const sequence = await engine.createSequence();
    await engine.prefill(sequence, prompt);
    const cancel = new addon.CancelToken();
    cancel.cancel();
    const file = path.join(dir, 'cancelled.kv');
    await assert.rejects(engine.saveSequence(sequence, file, { cancel }), (error: Error & { code?: string }) => error.code === 'ERR_TIDAL_CANCELLED');
    assert.throws(() => statSync(file), /ENOENT/);
    assert.throws(() => statSync(`${file}.tmp`), /ENOENT/);
    // Not cancelled: written as usual.
    assert.ok((await engine.saveSequence(sequence, file, { cancel: new addon.CancelToken() })) > 0);
  } finally {
    await engine.unload();
    rmSync(dir, { recursive: true, force: true });
  }
});
