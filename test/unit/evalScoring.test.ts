// Scoring of `tidal-eval` through the native engine on fixture models whose outputs
// transformers recorded: passkey answers against transformers' greedy generation, perplexity
// against transformers' logits, and sparse configurations equal to full attention when their
// budget covers the whole context (and different when it does not).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  keyOf,
  labelOf,
  makeEvalConfigs,
  negativeLogLikelihood,
  argmaxToken,
  scoreCompletionText,
  scorePasskey,
  scorePerplexity,
  selectionOf,
} from '../../src/eval/scoring';
import { type AttentionOptions, loadAddon, type NativeEngine } from '../../src/native/addon';
import { random } from './seededRandom';

const fixture = path.resolve('test/fixtures/models/llama3-gqa-f32'); // 6 layers, vocabulary 512
// Runs `body` on the fixture model loaded on the CPU backend, unloading it afterwards.
async function withEngine(body: (engine: NativeEngine) => Promise<void>): Promise<void> {
  const engine = await loadAddon(path.resolve('dist')).loadModel(fixture, { threads: 2 });
  try {
    await body(engine);
  } finally {
    await engine.unload();
  }
}

const reference = JSON.parse(readFileSync(path.join(fixture, 'reference.json'), 'utf8')) as {
  vocab_size: number;
  sequences: { tokens: number[]; logits_offset: number; length: number }[];
  greedy: { prompt: number[]; new_tokens: number[] };
};

test('configurations: full, tidal per selection choice and budget, quest per budget', () => {
  const configs = makeEvalConfigs([64, 256], [[2], [2, 4]], true);
  assert.deepEqual(configs.map(labelOf), ['full', 'tidal 2 b64', 'tidal 2 b256', 'tidal 2,4 b64', 'tidal 2,4 b256', 'quest b64', 'quest b256']);
  assert.equal(selectionOf(configs[6]), '-');
  assert.equal(selectionOf(configs[4]), '2,4');
  assert.equal(makeEvalConfigs([64], [[2]], false).length, 2);
  // With a sparse prefill of 128 tokens, each tidal and quest configuration again.
  const sparse = makeEvalConfigs([64], [[2, 4]], true, 128);
  assert.deepEqual(sparse.map(labelOf), ['full', 'tidal 2,4 b64', 'quest b64', 'tidal+prefill128 2,4 b64', 'quest+prefill128 b64']);
  assert.deepEqual(keyOf(sparse[3]), { mode: 'tidal+prefill128', selection: '2,4', budget: 64 });
  assert.equal(sparse[3].attention.mode, 'tidal');
  // On the CUDA backend, which prefills Quest densely only: the tidal ones again.
  const cudaSparse = makeEvalConfigs([64], [[2, 4]], true, 128, ['perQueryHead'], false);
  assert.deepEqual(cudaSparse.map(labelOf), ['full', 'tidal 2,4 b64', 'quest b64', 'tidal+prefill128 2,4 b64']);
  // The per-KV-head policies as more tidal configurations, named after their layers.
  const policies = makeEvalConfigs([64], [[2, 5]], false, 0, ['perQueryHead', 'perKvHeadMax', 'perKvHeadSum']);
  assert.deepEqual(policies.map(labelOf), ['full', 'tidal 2,5 b64', 'tidal 2,5/max b64', 'tidal 2,5/sum b64']);
  assert.equal(policies[2].attention.selectionPolicy, 'perKvHeadMax');
  assert.equal(policies[1].attention.selectionPolicy, undefined);
});

test('negative log-likelihood matches a direct softmax; argmax takes the lowest id on ties', () => {
  const next = random(9);
  const logits = Float32Array.from({ length: 300 }, () => -20 + 40 * next());
  for (const token of [0, 17, 299]) {
    let total = 0;
    for (const v of logits) total += Math.exp(v);
    const expected = -Math.log(Math.exp(logits[token]) / total);
    assert.ok(Math.abs(negativeLogLikelihood(logits, 0, 300, token) - expected) < 1e-9);
  }
  const padded = Float32Array.from([9, 9, ...logits]);
  assert.equal(negativeLogLikelihood(padded, 2, 300, 17), negativeLogLikelihood(logits, 0, 300, 17));
  assert.equal(argmaxToken([0.5, 3, -1, 3]), 1);
});

test("passkey scoring accepts transformers' greedy answer under every configuration at full budget, and nothing else", async () => {
  await withEngine(async (engine) => {
    const { prompt, new_tokens: answer } = reference.greedy;
    // The sparse-prefill configurations fork before the prompt's last 9 tokens and prefill 8 of
    // them under their own attention: at full budget, the same answers.
    const configs = makeEvalConfigs([4096], [[2], [2, 5]], true, 8);
    assert.equal(configs.length, 7);
    const right = await scorePasskey(engine, prompt, answer, configs);
    assert.deepEqual(
      right,
      configs.map(() => true),
      configs.map(labelOf).join(', '),
    );
    // Poisoned answers: a wrong first or last token is never accepted.
    for (const poisoned of [0, answer.length - 1]) {
      const wrong = [...answer];
      wrong[poisoned] = (wrong[poisoned] + 1) % reference.vocab_size;
      assert.deepEqual(
        await scorePasskey(engine, prompt, wrong, configs),
        configs.map(() => false),
      );
    }
    await assert.rejects(scorePasskey(engine, [1], answer, configs), /prompt of 2\+ tokens/);
    assert.equal(engine.usage().sequences, 0); // every fork was released
  });
});

test("completion text scoring: transformers' greedy text, wherever the answer ends, is accepted; a wrong character, too few tokens are not", async () => {
  await withEngine(async (engine) => {
    const { prompt, new_tokens: greedy } = reference.greedy;
    const configs = makeEvalConfigs([4096], [[2, 5]], true);
    // A made-up byte-level text: each id is "<id>", so one token's text is several characters.
    const decodeText = (ids: readonly number[]) => ids.map((id) => `<${id}>`).join('');
    const text = decodeText(greedy.slice(0, 6));
    const all = configs.map(() => true);
    const none = configs.map(() => false);
    assert.deepEqual(await scoreCompletionText(engine, prompt, text, decodeText, configs, 6), all);
    // The answer ends inside the sixth token's text: still right, from the same six tokens.
    assert.deepEqual(await scoreCompletionText(engine, prompt, text.slice(0, -2), decodeText, configs, 6), all);
    // ...but not from five.
    assert.deepEqual(await scoreCompletionText(engine, prompt, text, decodeText, configs, 5), none);
    // Poisoned: a wrong first or last character.
    for (const at of [1, text.length - 2]) {
      const wrong = text.slice(0, at) + (text[at] === '9' ? '8' : '9') + text.slice(at + 1);
      assert.deepEqual(await scoreCompletionText(engine, prompt, wrong, decodeText, configs, 12), none, wrong);
    }
    // A token that ends inside a character (U+FFFD until the next one) is waited for.
    const split = (ids: readonly number[]) => (ids.length === 1 ? '\uFFFD' : 'é' + decodeText(ids.slice(1)));
    assert.deepEqual(await scoreCompletionText(engine, prompt, 'é' + decodeText(greedy.slice(1, 3)), split, configs, 3), all);
    await assert.rejects(scoreCompletionText(engine, prompt, '', decodeText, configs, 4), /an answer/);
    assert.equal(engine.usage().sequences, 0);
  });
});

test("perplexity matches transformers' logits; a budget that covers the context equals full attention", async () => {
  await withEngine(async (engine) => {
    const { tokens: window, logits_offset } = reference.sequences[2];
    const vocab = reference.vocab_size;
    const raw = readFileSync(path.join(fixture, 'reference_logits.f32'));
    const logits = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const prefix = 40;
    let expected = 0;
    for (let t = prefix - 1; t + 1 < window.length; t++) expected += negativeLogLikelihood(logits, logits_offset + t * vocab, vocab, window[t + 1]);

    const configs = makeEvalConfigs([4, 4096], [[2, 5]], true); // full, tidal b4, tidal b4096, quest b4, quest b4096
    const sums = await scorePerplexity(engine, window, prefix, configs);
    assert.equal(sums.length, configs.length + 1);
    const near = (value: number, what: string) => assert.ok(Math.abs(value - expected) < 1e-4 * Math.abs(expected), `${what}: ${value} vs ${expected}`);
    assert.equal(sums[0].tokens, window.length - prefix);
    near(sums[0].nll, 'one prefill, all logits');
    near(sums[1].nll, 'full attention decode');
    near(sums[3].nll, 'tidal, budget covers the context');
    near(sums[5].nll, 'quest, budget covers the context');
    // A 4-token budget really is sparse: its likelihood differs.
    assert.ok(Math.abs(sums[2].nll - expected) > 1e-3 * Math.abs(expected));
    assert.ok(Math.abs(sums[4].nll - expected) > 1e-3 * Math.abs(expected));
    await assert.rejects(scorePerplexity(engine, window, window.length, configs), /prefix/);
    await assert.rejects(scorePerplexity(engine, window, prefix, makeEvalConfigs([4], [[2, 5]], false, 8)), /sparsePrefillTokens must be/);
    // A sparse prefill of the scored tokens: at a budget covering the context the same
    // likelihood as one dense prefill; at 4 tokens another.
    const scored = window.length - prefix;
    const prefilled = await scorePerplexity(engine, window, prefix, makeEvalConfigs([4, 4096], [[2, 5]], true, scored));
    assert.equal(prefilled.length, 10);
    assert.deepEqual(prefilled.slice(0, 6), sums);
    assert.equal(prefilled[7].nll, sums[0].nll, 'tidal+prefill, budget covers the context: the dense prefill bitwise');
    assert.equal(prefilled[9].nll, sums[0].nll, 'quest+prefill, budget covers the context');
    assert.ok(Math.abs(prefilled[6].nll - expected) > 1e-3 * Math.abs(expected), 'a 4-token sparse prefill differs');
    assert.equal(prefilled[6].tokens, scored);
    assert.equal(engine.usage().sequences, 0);
  });
});

test('a sparse prefill through the addon: its budget covering the context gives the dense logits, a small one others', async () => {
  await withEngine(async (engine) => {
    const next = random(31);
    const tokens = Array.from({ length: 60 }, () => Math.floor(next() * reference.vocab_size));
    const run = async (attention?: AttentionOptions) => {
      const sequence = await engine.createSequence();
      try {
        await engine.prefill(sequence, tokens.slice(0, 44));
        return await engine.prefill(sequence, tokens.slice(44), { allLogits: true, attention });
      } finally {
        await engine.releaseSequence(sequence);
      }
    };
    const dense = await run();
    const sparse = await run({ mode: 'tidal', tokenBudget: 4, selectionLayers: [2, 5], sparsePrefill: true });
    const covering = await run({ mode: 'quest', tokenBudget: 64, sparsePrefill: true });
    const decodeOnly = await run({ mode: 'quest', tokenBudget: 16 });
    assert.equal(dense.length, 16 * reference.vocab_size);
    assert.deepEqual(covering, dense);
    assert.deepEqual(decodeOnly, dense); // without sparsePrefill the plan is for decode steps
    let moved = 0;
    for (let i = 0; i < dense.length; i++) moved = Math.max(moved, Math.abs(sparse[i] - dense[i]));
    assert.ok(moved > 1e-3, `a 4-token budget changed the logits by ${moved}`);
    assert.equal(engine.usage().sequences, 0);
  });
});
