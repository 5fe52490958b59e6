// The N-API binding against the recorded transformers reference: load a fixture model from
// JS, stream a greedy generation, cancel one, and check that errors reach JS with codes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { loadAddon, NativeAddon } from '../../../src/native/addon';

const addon: NativeAddon = loadAddon(path.resolve('dist'));
const fixture = (name: string) => path.resolve('test/fixtures/models', name);

interface Reference {
  sequences: { tokens: number[]; logits_offset: number; length: number }[];
  vocab_size: number;
  greedy: { prompt: number[]; new_tokens: number[] };
}
const reference = (name: string): Reference => JSON.parse(readFileSync(path.join(fixture(name), 'reference.json'), 'utf8'));

test('greedy generation streams the tokens transformers generated, in order, before the promise settles', async () => {
  const engine = await addon.loadModel(fixture('qwen2-tied-sharded-f32'), { threads: 2 });
  try {
    assert.equal(engine.modelInfo.architecture, 'qwen2');
    assert.equal(engine.modelInfo.numLayers, 6);
    const ref = reference('qwen2-tied-sharded-f32');
    const sequence = await engine.createSequence();
    const streamed: number[] = [];
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 1);
    const result = await engine.generate(
      sequence,
      ref.greedy.prompt,
      { maxTokens: ref.greedy.new_tokens.length, stopAtEos: false, attention: { mode: 'tidal', tokenBudget: 64 } },
      (token) => streamed.push(token),
    );
    clearInterval(ticker);
    assert.deepEqual(streamed, ref.greedy.new_tokens);
    assert.deepEqual(Array.from(result.tokens), ref.greedy.new_tokens);
    assert.equal(result.finishReason, 'length');
    assert.equal(result.promptTokens, ref.greedy.prompt.length);
    assert.equal(await engine.sequenceLength(sequence), ref.greedy.prompt.length + ref.greedy.new_tokens.length);
    assert.ok(ticks >= 0); // the JS thread kept running timers while the engine worked
    const usage = engine.usage();
    assert.ok(usage.kvBytes > 0 && usage.tokensDecoded >= ref.greedy.new_tokens.length - 1);
  } finally {
    await engine.unload();
  }
});

test('prefill returns the logits transformers recorded (all positions)', async () => {
  const name = 'llama3-gqa-f32';
  const engine = await addon.loadModel(fixture(name), { threads: 2 });
  try {
    const ref = reference(name);
    const raw = readFileSync(path.join(fixture(name), 'reference_logits.f32'));
    const expected = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const { tokens, logits_offset } = ref.sequences[1];
    const sequence = await engine.createSequence();
    const logits = await engine.prefill(sequence, Int32Array.from(tokens), { allLogits: true });
    assert.equal(logits.length, tokens.length * ref.vocab_size);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < logits.length; i++) {
      diff += (logits[i] - expected[logits_offset + i]) ** 2;
      norm += expected[logits_offset + i] ** 2;
    }
    assert.ok(Math.sqrt(diff / norm) < 2e-5, `relative error ${Math.sqrt(diff / norm)}`);
  } finally {
    await engine.unload();
  }
});

test('a cancel token stops generation within one step; a throwing callback rejects the promise', async () => {
  const engine = await addon.loadModel(fixture('llama2-mha-bf16'), { threads: 2 });
  try {
    // Tokens reach JS after the engine produced them, so JS cancels some steps late; the
    // engine itself stops within one step of the flag (native test engine_generate_*).
    const sequence = await engine.createSequence();
    const cancel = new addon.CancelToken();
    const seen: number[] = [];
    const result = await engine.generate(
      sequence,
      [5, 6, 7, 8],
      { maxTokens: 3000, stopAtEos: false },
      (token) => {
        seen.push(token);
        if (seen.length === 3) cancel.cancel();
      },
      cancel,
    );
    assert.equal(result.finishReason, 'cancelled');
    assert.ok(result.tokens.length >= 3 && result.tokens.length < 3000, `got ${result.tokens.length} tokens`);
    assert.deepEqual(seen, Array.from(result.tokens));
    assert.equal(cancel.cancelled, true);

    // Cancelled before it starts: nothing is generated.
    const early = new addon.CancelToken();
    early.cancel();
    const none = await engine.generate(await engine.createSequence(), [5, 6], { maxTokens: 10 }, undefined, early);
    assert.equal(none.finishReason, 'cancelled');
    assert.equal(none.tokens.length, 0);

    const other = await engine.createSequence();
    await assert.rejects(
      engine.generate(other, [9, 10], { maxTokens: 50, stopAtEos: false }, () => {
        throw new Error('callback failed on purpose');
      }),
      /callback failed on purpose/,
    );
  } finally {
    await engine.unload();
  }
});

test('fork shares a prefix: decoding on a fork equals decoding after the same prefix', async () => {
  const engine = await addon.loadModel(fixture('mistral-gqa-f16'), { threads: 2 });
  try {
    const prompt = [11, 200, 37, 412, 98, 7, 301, 45];
    const base = await engine.createSequence();
    await engine.prefill(base, prompt);
    const fork = await engine.forkSequence(base, 5);
    assert.equal(await engine.sequenceLength(fork), 5);
    const fromFork = await engine.decode(fork, 77);
    const fresh = await engine.createSequence();
    await engine.prefill(fresh, prompt.slice(0, 5));
    const fromFresh = await engine.decode(fresh, 77);
    assert.deepEqual(Array.from(fromFork), Array.from(fromFresh));
    await engine.trimSequence(base, 2);
    assert.deepEqual(Array.from(await engine.sequenceTokens(base)), prompt.slice(0, 2));
  } finally {
    await engine.unload();
  }
});

test('bad inputs become JS errors with readable messages and codes', async () => {
  await assert.rejects(addon.loadModel(path.resolve('test/fixtures/no-such-model')), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'ERR_TIDAL_MODEL');
    assert.match(error.message, /no-such-model/);
    return true;
  });
  assert.throws(() => addon.loadModel(fixture('qwen3-qknorm-f32'), { kvFp8Simulation: 'yes' as never }), /kvFp8Simulation must be a boolean/);
  const engine = await addon.loadModel(fixture('qwen3-qknorm-f32'), { threads: 1 });
  try {
    const sequence = await engine.createSequence();
    // Argument errors throw synchronously; engine errors reject the promise.
    assert.throws(() => engine.prefill(sequence, [1, 2, 99999]), /tokens\[2\] = 99999 is not a token id in \[0, 512\)/);
    assert.throws(() => engine.generate(sequence, [1], { attention: { mode: 'sparse' as never } }), TypeError);
    assert.throws(() => engine.generate(sequence, [1], { attention: { mode: 'tidal', sparseFirstStep: 'yes' as never } }), /sparseFirstStep must be a boolean/);
    assert.throws(() => engine.prefill(sequence, [1], { attention: { mode: 'tidal', sparsePrefill: 1 as never } }), /sparsePrefill must be a boolean/);
    assert.throws(() => engine.prefill(sequence, [1], { attention: { mode: 'tidal', tokenBudget: 0, sparsePrefill: true } }), RangeError);
    assert.throws(() => engine.generate(sequence, [1], { sampling: { topP: 2 } }), RangeError);
    await assert.rejects(engine.trimSequence(123456, 0), (error: Error & { code?: string }) => error.code === 'ERR_TIDAL_REQUEST');
  } finally {
    await engine.unload();
  }
  assert.throws(() => engine.createSequence(), /unloaded/);
});
