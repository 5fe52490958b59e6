// The serve layer's guard against huge prompts counts tokens a slice at a time
// (TextTokenizer.countTokensAtLeast): exact where it encodes, never above the real count,
// early out at the limit, and the event loop keeps turning while it works.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import { random } from '../seededRandom';

const byteLevel = ['models/tidal-code-mini', 'test/fixtures/tokenizers/chatml-byte-bpe'].map((dir) => ({ dir, tokenizer: TextTokenizer.fromDirectory(dir) }));
// Llama 2 / Mistral style: spaces as "▁", a "▁" in front, byte fallback, no cuts.
const metaspace = { dir: 'test/fixtures/tokenizers/llama-sp-bpe', tokenizer: TextTokenizer.fromDirectory('test/fixtures/tokenizers/llama-sp-bpe') };
const tokenizers = [...byteLevel, metaspace];

// Pieces that stress the places where slices are cut: line breaks, spaces before letters,
// \r\n, tabs, combining marks, special tokens, letters outside ASCII and the BMP.
const pieces = [
  '▁',
  'a',
  'b',
  'Z',
  'é',
  ' ',
  ' ',
  '\n',
  '\n',
  '\r',
  '\t',
  '1',
  '2',
  '{',
  '}',
  ';',
  "'",
  's',
  '<|im_end|>',
  'e\u0301',
  '\u0301',
  '🚨',
  'я',
  '  ',
  'll',
  '.',
  '_',
];

function randomText(next: () => number, count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) text += pieces[Math.floor(next() * pieces.length)];
  return text;
}

test('a long text counted in slices gives the very count of encoding it whole', async () => {
  const code = readFileSync('src/host/modelSession.ts', 'utf8').repeat(4);
  const next = random(5);
  for (const { dir, tokenizer } of byteLevel) {
    for (const text of [code, randomText(next, 60_000)]) {
      assert.ok(text.length > 64 * 1024, 'long enough to be cut into several slices');
      assert.equal(await tokenizer.countTokensAtLeast(text, { stopAt: Infinity, standalone: true }), tokenizer.encode(text).length, dir);
    }
  }
});

test('the count never exceeds the tokens of a text, alone or inside a longer one', async () => {
  const next = random(9);
  for (const { dir, tokenizer } of tokenizers) {
    for (let round = 0; round < 400; round++) {
      const text = randomText(next, 1 + Math.floor(next() * 40));
      const alone = tokenizer.encode(text).length;
      assert.equal(await tokenizer.countTokensAtLeast(text, { stopAt: Infinity, standalone: true }), alone, `${dir}: ${JSON.stringify(text)}`);
      const around = randomText(next, 3);
      const inside = tokenizer.encode(`${around}${text}${around}`).length;
      assert.ok(
        (await tokenizer.countTokensAtLeast(text, { stopAt: Infinity, standalone: false })) <= inside,
        `${dir}: ${JSON.stringify(text)} inside ${JSON.stringify(around)}`,
      );
    }
    // Long stretches without a cut are bounded by their bytes, not encoded.
    for (const text of ['x'.repeat(300_000), 'é'.repeat(200_000), `${'a b\n'.repeat(1000)}${'q'.repeat(100_000)}${'c d\n'.repeat(1000)}`]) {
      const bound = await tokenizer.countTokensAtLeast(text, { stopAt: Infinity, standalone: true });
      assert.ok(bound > 0 && bound <= tokenizer.encode(text).length, `${dir}: ${bound} for ${text.length} characters`);
    }
  }
});

test('a hostile text is refused after a little work, with the event loop turning all along', async () => {
  const { tokenizer } = tokenizers[0];
  for (const text of ['x'.repeat(2_000_000), 'a b\n'.repeat(480_000)]) {
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const started = performance.now();
    const count = await tokenizer.countTokensAtLeast(text, { stopAt: 16_384, standalone: true });
    clearInterval(ticker);
    assert.ok(count >= 16_384, `${count}`);
    // Encoding 'a b\n' x 480k whole takes seconds; the early stop reads a few slices of it.
    assert.ok(performance.now() - started < 5_000);
    if (text.startsWith('a')) assert.ok(turns > 0, 'timers ran between slices');
  }
});

test('a SentencePiece-style tokenizer is bounded too: never above the real count, and tight enough to refuse a huge prompt', async () => {
  const { tokenizer } = metaspace;
  const next = random(13);
  const code = readFileSync('src/host/modelSession.ts', 'utf8').repeat(4);
  for (const text of [code, randomText(next, 60_000), 'x'.repeat(300_000), ' '.repeat(100_000), '▁'.repeat(100_000), 'é🚨'.repeat(50_000)]) {
    const real = tokenizer.encode(text).length;
    for (const standalone of [true, false]) {
      const bound = await tokenizer.countTokensAtLeast(text, { stopAt: Infinity, standalone });
      assert.ok(bound > 0 && bound <= real, `${bound} of ${real} for ${JSON.stringify(text.slice(0, 20))}... (${text.length}), standalone ${standalone}`);
      // Not a token of the vocabulary is longer than a few dozen bytes: the bound is within reach.
      assert.ok(bound * 64 >= real, `${bound} is too loose for ${real}`);
    }
  }
  // A 4 MB prompt without spaces takes seconds to encode; its bound says at once that it cannot fit.
  const started = performance.now();
  const count = await tokenizer.countTokensAtLeast('q'.repeat(4_000_000), { stopAt: 131_072, standalone: true });
  assert.ok(count >= 131_072, `${count}`);
  assert.ok(performance.now() - started < 2_000);
});
