// A .gguf model end to end through the host's pieces: a GGUF image of the qwen2 fixture model
// (F32 tensors under their GGUF names) with the fixture tokenizer in its metadata. The engine
// inspects it as it would load it, the tokenizer converted from the metadata the engine reads
// encodes as the tokenizer.json does, and the engine loaded from the .gguf generates what
// transformers recorded for the safetensors folder.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import { loadAddon } from '../../../src/native/addon';
import { tokenizerForModel } from '../../../src/core/tokenizer/modelTokenizer';
import { validateModel } from '../../../src/core/models/validate';
import { folderTensors, ggufImage, qwen2FixtureMetadata } from './ggufImage';

const addon = loadAddon(path.resolve('dist'));
const FOLDER = 'test/fixtures/models/qwen2-tied-sharded-f32';
const TOKENIZER = 'test/fixtures/tokenizers/chatml-byte-bpe';
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-gguf-model-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('a qwen2 .gguf model: its tokenizer encodes like tokenizer.json and the engine generates the recorded tokens', async () => {
  const tokenizerJson = JSON.parse(readFileSync(path.join(TOKENIZER, 'tokenizer.json'), 'utf8'));
  const metadata = qwen2FixtureMetadata(FOLDER, TOKENIZER, 'gpt-2');
  const file = path.join(scratch, 'qwen2-fixture-f32.gguf');
  const tensors = folderTensors(FOLDER);
  writeFileSync(file, ggufImage(metadata, tensors));

  const validation = validateModel(file, { contextTokens: 0, freeMemoryBytes: 64e9 }, addon);
  assert.deepEqual(validation.issues, []);
  assert.equal(validation.summary!.dtype, 'F32');
  assert.equal(
    validation.summary!.parameters,
    tensors.reduce((sum, t) => sum + t.bytes.length / 4, 0),
  );
  // The GGUF shape is the folder's: the same model under two containers.
  const fromFile = addon.inspectModel(file);
  const fromFolder = addon.inspectModel(FOLDER);
  assert.deepEqual(fromFile.problems, []);
  assert.equal(fromFile.format, 'gguf');
  assert.equal(fromFolder.format, 'safetensors');
  assert.equal(fromFile.family, fromFolder.family);
  assert.deepEqual({ ...fromFile.shape, rope: undefined }, { ...fromFolder.shape, rope: undefined });
  assert.ok(Math.abs(fromFile.shape!.rope.theta - fromFolder.shape!.rope.theta) < 1e-3 * fromFolder.shape!.rope.theta);
  // The per-pair frequencies the engine applies: one per rotated pair, the same from both.
  const fileFrequencies = fromFile.shape!.rope.frequencies;
  const folderFrequencies = fromFolder.shape!.rope.frequencies;
  assert.equal(folderFrequencies.length, fromFolder.shape!.headDim / 2);
  assert.equal(fileFrequencies.length, folderFrequencies.length);
  folderFrequencies.forEach((f, i) => {
    assert.ok(f > 0 && Math.abs(fileFrequencies[i] - f) <= 1e-6 * f, `pair ${i}: ${fileFrequencies[i]} vs ${f}`);
  });
  assert.equal(fromFile.parameters, fromFolder.parameters);
  assert.equal(
    fromFile.tokenizerTokens,
    Math.max(...(Object.values(tokenizerJson.model.vocab) as number[]), ...tokenizerJson.added_tokens.map((t: { id: number }) => t.id)) + 1,
  );

  const fromGguf = tokenizerForModel(file, undefined, addon);
  const fromJson = TextTokenizer.fromDirectory(TOKENIZER);
  const text = '<|im_start|>user\nfunction add(a, b) { return a + b; }<|im_end|>\n';
  assert.deepEqual(fromGguf.encode(text), fromJson.encode(text));
  assert.deepEqual(fromGguf.endOfTurnTokenIds().sort(), fromJson.endOfTurnTokenIds().sort());
  assert.equal(tokenizerForModel(FOLDER, TOKENIZER, addon).vocabSize, fromJson.vocabSize);
  assert.throws(() => tokenizerForModel(FOLDER, undefined, addon), /no tokenizer\.json/);
  // Without the engine the GGUF tokenizer cannot be read: a clear error, which callers that
  // only count tokens turn into an estimate.
  assert.throws(
    () => tokenizerForModel(file, undefined, undefined),
    (e: Error & { code?: string }) => e.code === 'ERR_TIDAL_MODEL' && /read by the native engine, which is not available here/.test(e.message),
  );

  const reference = JSON.parse(readFileSync(path.join(FOLDER, 'reference.json'), 'utf8')) as { greedy: { prompt: number[]; new_tokens: number[] } };
  const engine = await addon.loadModel(file, { threads: 2 });
  try {
    assert.equal(engine.modelInfo.architecture, 'qwen2');
    assert.ok(fromGguf.vocabSize <= engine.modelInfo.vocabSize);
    const sequence = await engine.createSequence();
    const result = await engine.generate(sequence, reference.greedy.prompt, {
      maxTokens: reference.greedy.new_tokens.length,
      stopAtEos: false,
      attention: { mode: 'full' },
    });
    assert.deepEqual(Array.from(result.tokens), reference.greedy.new_tokens);
  } finally {
    await engine.unload();
  }
});

test('a broken .gguf gives the host a tokenizer error it can show', () => {
  const file = path.join(scratch, 'broken.gguf');
  writeFileSync(file, Buffer.from('GGUF\x03\x00\x00\x00'));
  assert.throws(
    () => tokenizerForModel(file, undefined, addon),
    (e: Error & { code?: string }) => e.code === 'ERR_TIDAL_MODEL' && /GGUF file .*broken\.gguf.*truncated/.test(e.message),
  );
});
