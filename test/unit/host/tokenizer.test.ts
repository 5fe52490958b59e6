// The tokenizer wrapper, streaming detokenization and chat templates, against the hand-made
// byte-level BPE fixture (test/fixtures/tokenizers/chatml-byte-bpe, made by make-byte-bpe.mjs).
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { renderChat } from '../../../src/core/prompt/chatTemplate';
import { StreamDecoder } from '../../../src/core/tokenizer/streamDecoder';
import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import { TidalError } from '../../../src/native/errors';

const fixtureDir = path.resolve('test/fixtures/tokenizers/chatml-byte-bpe');
const tokenizer = TextTokenizer.fromDirectory(fixtureDir);

test('tokenizer round-trips code, accents, CJK and emoji, with every id inside the fixture models vocabulary', () => {
  assert.ok(tokenizer.vocabSize <= 512, `vocabulary of ${tokenizer.vocabSize}`);
  for (const text of ['function add(a, b) {\n  return a + b;\n}\n', 'héllo wörld — 世界 🌊🏄‍♀️', '  indented\ttabs\r\n', '']) {
    const ids = tokenizer.encode(text);
    assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 512));
    assert.equal(tokenizer.decode(ids), text);
  }
  // Learned merges make common code shorter than its bytes.
  const code = 'function add(a, b) { return a + b; }';
  assert.ok(tokenizer.encode(code).length < Buffer.byteLength(code) / 2);
});

test('special tokens in text become single ids and can be skipped when decoding', () => {
  const imStart = tokenizer.tokenId('<|im_start|>');
  const imEnd = tokenizer.tokenId('<|im_end|>');
  assert.ok(imStart !== undefined && imEnd !== undefined);
  const ids = tokenizer.encode('<|im_start|>user\nhi<|im_end|>');
  assert.equal(ids[0], imStart);
  assert.equal(ids.at(-1), imEnd);
  assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), 'user\nhi');
  assert.equal(tokenizer.eosToken, '<|im_end|>');
  assert.ok(tokenizer.specialTokens.has('<|fim_middle|>'));
  assert.ok(tokenizer.endOfTurnTokenIds().includes(imEnd));
});

test('streaming detokenization never emits half of a multi-byte character', () => {
  const text = 'a 🌊 b é 世界 x🏄‍♀️y';
  const ids = tokenizer.encode(text);
  // The fixture vocabulary has no merges for these characters, so they arrive byte by byte.
  assert.ok(ids.length > [...text].length);
  const decoder = tokenizer.createStreamDecoder();
  const chunks = ids.map((id) => decoder.push(id));
  chunks.push(decoder.flush());
  assert.equal(chunks.join(''), text);
  for (const chunk of chunks) assert.ok(!chunk.includes('\uFFFD'), `garbled chunk ${JSON.stringify(chunk)}`);
  // The wave (4 bytes) is held back until its last byte arrives.
  const waveStart = chunks.findIndex((chunk) => chunk.includes('🌊'));
  assert.ok(waveStart >= 3 && chunks.slice(waveStart - 3, waveStart).every((chunk) => chunk === '' || !chunk.includes('🌊')));
});

test('a stream decoder flushes an unfinished character at the end instead of losing it', () => {
  const bytes = Buffer.from('é');
  // A decode function over raw bytes, as a byte-fallback tokenizer behaves.
  const decoder = new StreamDecoder((tokens) => Buffer.from(tokens).toString('utf8'));
  assert.equal(decoder.push(0x41), 'A');
  assert.equal(decoder.push(bytes[0]), '');
  assert.equal(decoder.push(bytes[1]), 'é');
  assert.equal(decoder.push(0xe4), '');
  assert.equal(decoder.flush(), '\uFFFD');
});

test('the ChatML template renders system, user and assistant turns and opens the next one', () => {
  const text = renderChat(tokenizer.config, [
    { role: 'user', content: 'What does add do?' },
    { role: 'assistant', content: 'It adds.' },
    { role: 'user', content: 'Thanks' },
  ]);
  assert.equal(
    text,
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
      '<|im_start|>user\nWhat does add do?<|im_end|>\n' +
      '<|im_start|>assistant\nIt adds.<|im_end|>\n' +
      '<|im_start|>user\nThanks<|im_end|>\n' +
      '<|im_start|>assistant\n',
  );
  const withSystem = renderChat(
    tokenizer.config,
    [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ],
    {
      addGenerationPrompt: false,
    },
  );
  assert.equal(withSystem, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n');
  const ids = tokenizer.encode(text);
  assert.equal(ids.filter((id) => id === tokenizer.tokenId('<|im_start|>')).length, 5);
});

test('a model without a chat template, or without a tokenizer, gets an error that says what to do', () => {
  assert.throws(
    () => renderChat({}, [{ role: 'user', content: 'hi' }], { modelName: 'base-model' }),
    (error: Error) => {
      assert.ok(error instanceof TidalError && error.code === 'ERR_TIDAL_REQUEST');
      assert.match(error.message, /base-model has no chat template/);
      assert.match(error.message, /instruction-tuned/);
      return true;
    },
  );
  assert.throws(
    () => TextTokenizer.fromDirectory(path.resolve('test/fixtures/models/llama2-mha-bf16')),
    (error: Error) => {
      assert.ok(error instanceof TidalError && error.code === 'ERR_TIDAL_MODEL');
      assert.match(error.message, /no tokenizer\.json/);
      return true;
    },
  );
});
