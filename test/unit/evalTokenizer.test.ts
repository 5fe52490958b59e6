// The tokenizer `tidal-eval` builds its prompts with is the engine host's (TextTokenizer over
// @huggingface/tokenizers). Held here to encodings recorded outside it: Hugging Face tokenizers
// in Python (test/fixtures/shipped-model/reference.json) and a recording of the library version
// the prompts were built with (tokenizer_cases.json, from bench/eval/record_tokenizer_cases.mjs),
// plus what the prompts rely on: lossless round-trips, special tokens written in the text.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { TextTokenizer } from '../../src/core/tokenizer/tokenizer';
import { loadEvalTokenizer } from '../../src/eval/runEval';
import { random } from './seededRandom';

const modelDir = path.resolve('models/tidal-code-mini');
const tokenizer = TextTokenizer.fromDirectory(modelDir);

interface Case {
  text: string;
  ids: number[];
}

function checkCases(cases: Case[]): void {
  for (const { text, ids } of cases) {
    const got = tokenizer.encode(text);
    let first = 0;
    while (first < got.length && got[first] === ids[first]) first++;
    assert.deepEqual(got, ids, `encoding differs at token ${first} of ${ids.length} for text starting ${JSON.stringify(text.slice(0, 40))}`);
    assert.equal(tokenizer.decode(got), text); // byte-level BPE is lossless
  }
}

test('the tokenizer gives the ids Python tokenizers recorded', () => {
  const reference = JSON.parse(readFileSync(path.resolve('test/fixtures/shipped-model/reference.json'), 'utf8')) as { tokenizer_samples: Case[] };
  assert.equal(reference.tokenizer_samples.length, 4);
  checkCases(reference.tokenizer_samples);
});

test('the tokenizer gives the recorded ids of whitespace, contractions, digits, scripts and code', () => {
  const recorded = JSON.parse(readFileSync(path.resolve('test/fixtures/shipped-model/tokenizer_cases.json'), 'utf8')) as { cases: Case[] };
  assert.ok(recorded.cases.length >= 40);
  checkCases(recorded.cases);
});

test('special tokens written in the text become their ids; lookups', () => {
  assert.equal(tokenizer.vocabSize, 8192);
  assert.equal(tokenizer.tokenId('<|file_sep|>'), 8);
  assert.equal(tokenizer.tokenId('<|endoftext|>'), 0);
  assert.equal(tokenizer.tokenId('no such token'), undefined);
  const ids = tokenizer.encode('<|file_sep|>x<|file_sep|>');
  assert.ok(ids.length >= 3);
  assert.equal(ids[0], 8);
  assert.equal(ids.at(-1), 8);
  assert.equal(tokenizer.decode(ids), '<|file_sep|>x<|file_sep|>');
});

test('random text round-trips', () => {
  const next = random(7);
  const alphabet = [' ', '\n', '\t', 'a', 'b', '1', "'", '(', 'é', '日', '🌊', '\r', '\u00a0', '\u0301'];
  for (let trial = 0; trial < 200; trial++) {
    let text = '';
    const length = Math.floor(next() * 64);
    for (let i = 0; i < length; i++) text += trial % 2 ? String.fromCodePoint(Math.floor(next() * 0xd7ff) + 1) : alphabet[Math.floor(next() * alphabet.length)];
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text, JSON.stringify(text));
  }
});

test('--tokenizer takes a tokenizer.json or its folder', () => {
  assert.deepEqual(loadEvalTokenizer(modelDir, path.join(modelDir, 'tokenizer.json')).encode('x = 1\n'), tokenizer.encode('x = 1\n'));
  assert.equal(loadEvalTokenizer(modelDir, modelDir).vocabSize, 8192);
  assert.throws(() => loadEvalTokenizer(modelDir, path.join(modelDir, 'config.json')), /takes a tokenizer\.json or the folder/);
  assert.throws(() => loadEvalTokenizer(path.resolve('test/fixtures/models/llama3-gqa-f32'), undefined), /no tokenizer\.json/);
});
