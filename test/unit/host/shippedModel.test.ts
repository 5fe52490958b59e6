// The shipped default model against the reference libraries: the engine's logits against
// transformers', and our tokenizer's ids against Hugging Face `tokenizers` (both recorded by
// tools/fixtures/record_shipped_model.py), plus exact round-trips of code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { loadAddon } from '../../../src/native/addon';
import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';

const modelDir = path.resolve('models/tidal-code-mini');
const fixtureDir = path.resolve('test/fixtures/shipped-model');
const reference = JSON.parse(readFileSync(path.join(fixtureDir, 'reference.json'), 'utf8')) as {
  vocab_size: number;
  sequences: { tokens: number[]; logits_offset: number; length: number }[];
  tokenizer_samples: { text: string; ids: number[] }[];
};

test('the shipped model loads and its logits match transformers (relative L2 < 1e-4)', async () => {
  const raw = readFileSync(path.join(fixtureDir, 'reference_logits.f32'));
  const expected = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const engine = await loadAddon(path.resolve('dist')).loadModel(modelDir, { threads: 2 });
  try {
    assert.equal(engine.modelInfo.vocabSize, reference.vocab_size);
    for (const { tokens, logits_offset } of reference.sequences) {
      const sequence = await engine.createSequence();
      const logits = await engine.prefill(sequence, tokens, { allLogits: true });
      let diff = 0;
      let norm = 0;
      for (let i = 0; i < logits.length; i++) {
        diff += (logits[i] - expected[logits_offset + i]) ** 2;
        norm += expected[logits_offset + i] ** 2;
      }
      const error = Math.sqrt(diff / norm);
      assert.ok(error < 1e-4, `relative L2 error ${error}`);
      await engine.releaseSequence(sequence);
    }
  } finally {
    await engine.unload();
  }
});

test('the shipped tokenizer gives the ids Hugging Face tokenizers gives, and round-trips code exactly', () => {
  const tokenizer = TextTokenizer.fromDirectory(modelDir);
  for (const { text, ids } of reference.tokenizer_samples) {
    assert.deepEqual(Array.from(tokenizer.encode(text)), ids, JSON.stringify(text));
    assert.equal(tokenizer.decode(ids), text);
  }
  const source = readFileSync(path.resolve('src/host/prefixCache.ts'), 'utf8');
  assert.equal(tokenizer.decode(Array.from(tokenizer.encode(source))), source);
});
