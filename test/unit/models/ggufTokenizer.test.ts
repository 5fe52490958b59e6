// GGUF tokenizer metadata (read by the engine: readGgufTokenizer) -> tokenizer.json: byte-level
// BPE files written from the fixture tokenizers must encode every text to the same ids as the
// original tokenizer.json; a SentencePiece-style ('llama') vocabulary must encode as
// SentencePiece BPE merging does (a brute-force reference below); malformed metadata and
// broken headers are refused with a clear error, never a crash.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import { checkGgufTokenizer, loadGgufTokenizer as loadWith } from '../../../src/core/tokenizer/ggufTokenizer';
import { TidalError } from '../../../src/native/errors';
import type { NativeAddon } from '../../../src/native/addon';
import { random as seeded } from '../seededRandom';
import { testReader } from './testReader';
import { GgufEntry, ggufImage, gpt2TokenizerMetadata } from './ggufImage';

// The native addon, or the WebAssembly build with TIDAL_TEST_ADDON=wasm (testReader.ts).
let addon: NativeAddon;
before(async () => {
  addon = await testReader();
});
const loadGgufTokenizer = (file: string) => loadWith(file, addon);

const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-gguf-tok-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let fileCount = 0;
function writeGguf(metadata: Record<string, GgufEntry>): string {
  const file = path.join(scratch, `t${fileCount++}.gguf`);
  writeFileSync(file, ggufImage({ 'general.architecture': { type: 'string', value: 'qwen2' }, ...metadata }));
  return file;
}

// A small deterministic generator (xorshift32) for random texts.
function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

const CODE_TEXTS = [
  'function add(a, b) {\n  return a + b;\n}\n',
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  '#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; for (auto x : v) printf("%d\\n", x); }\n',
  "const s = `it's ${name}'s turn`; // don't\r\n\tlet x = 12345678 * 0.5;",
  'héllo wörld — 世界 🌊🏄‍♀️  \n\n\n   trailing   ',
  '<|im_start|>user\nWrite a loop<|im_end|>\n<|im_start|>assistant\n',
  '<|fim_prefix|>def f(x):\n    <|fim_suffix|>\n    return y<|fim_middle|>',
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%ann%';",
  '',
];

function randomTexts(seed: number, count: number): string[] {
  const next = random(seed);
  const pool = [...'abcdefxyz_ABCXYZ0123456789(){}[]<>;:,.=+-*/\'"`\\ \t\n\r#@$%&|!?~^éü世界🌊'];
  const words = ['return', 'function', 'const', 'self', ' if', ' else', '    ', '\n', "'s", "'ll", '<|im_end|>', '1234', 'x1'];
  return Array.from({ length: count }, () => {
    let text = '';
    const length = Math.floor(next() * 60);
    for (let i = 0; i < length; i++) text += next() < 0.3 ? words[Math.floor(next() * words.length)] : pool[Math.floor(next() * pool.length)];
    return text;
  });
}

for (const [name, dir, pre] of [
  ['chatml byte-level BPE fixture (GPT-2 regex)', 'test/fixtures/tokenizers/chatml-byte-bpe', 'gpt-2'],
  ['shipped tidal-code-mini tokenizer (Qwen2 regex)', 'models/tidal-code-mini', 'qwen2'],
] as const) {
  test(`GGUF of the ${name} encodes like the original tokenizer.json`, () => {
    const json = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    const original = TextTokenizer.fromJson(json, config);
    const file = writeGguf(gpt2TokenizerMetadata(json, config, pre));
    const converted = loadGgufTokenizer(file);
    const fromGguf = TextTokenizer.fromJson(converted.tokenizerJson, converted.tokenizerConfig);

    assert.equal(fromGguf.vocabSize, original.vocabSize);
    assert.deepEqual([...fromGguf.specialTokens].sort(), [...original.specialTokens].sort());
    assert.equal(fromGguf.eosToken, original.eosToken);
    assert.equal(fromGguf.config.chat_template, config.chat_template);
    let compared = 0;
    let merged = 0;
    for (const text of [...CODE_TEXTS, ...randomTexts(dir.length, 300)]) {
      const expected = original.encode(text);
      assert.deepEqual(fromGguf.encode(text), expected, `ids of ${JSON.stringify(text)}`);
      assert.equal(fromGguf.decode(expected), original.decode(expected));
      compared++;
      if (expected.length < Buffer.byteLength(text)) merged++;
    }
    assert.equal(compared, CODE_TEXTS.length + 300);
    // The comparison exercises learned merges, not byte-by-byte encodings only.
    assert.ok(merged > compared / 2, `${merged} of ${compared} texts merged`);
  });
}

test('a wrong pre-tokenizer family changes ids (the pattern matters)', () => {
  const dir = 'models/tidal-code-mini';
  const json = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  const original = TextTokenizer.fromJson(json, config);
  const converted = loadGgufTokenizer(writeGguf(gpt2TokenizerMetadata(json, config, 'gpt-2')));
  const wrong = TextTokenizer.fromJson(converted.tokenizerJson, converted.tokenizerConfig);
  const differing = [...CODE_TEXTS, ...randomTexts(3, 100)].filter((text) => wrong.encode(text).join() !== original.encode(text).join());
  assert.ok(differing.length > 5, `${differing.length} texts differ`);
});

// ---- SentencePiece-style ('llama') vocabularies ----

const SPACE = '\u2581';

// Learns `count` merges over the corpus (characters with spaces as ▁), most frequent pair
// first; pieces are scored by -rank, as SentencePiece BPE models store them.
function trainPieces(corpus: string[], count: number): string[] {
  let words = corpus.map((text) => Array.from(SPACE + text.replaceAll(' ', SPACE)));
  const pieces: string[] = [];
  for (let step = 0; step < count; step++) {
    const counts = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.length; i++) {
        const key = `${w[i]}\u0000${w[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    let best: string | undefined;
    for (const [key, c] of counts) if (best === undefined || c > counts.get(best)! || (c === counts.get(best)! && key < best)) best = key;
    if (best === undefined || counts.get(best)! < 2) break;
    const [a, b] = best.split('\u0000');
    pieces.push(a + b);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w[i]);
      }
      return out;
    });
  }
  return pieces;
}

// SentencePiece BPE encoding spelled out: prefix a space, spaces become ▁, then merge the
// adjacent pair whose union is in the vocabulary; empty text is no tokens with the best score (leftmost on ties) until
// none is left; pieces outside the vocabulary become their UTF-8 bytes <0xXX>.
function referenceSentencePiece(text: string, ids: Map<string, number>, score: (id: number) => number): number[] {
  if (text === '') return [];
  const symbols = Array.from(SPACE + text.replaceAll(' ', SPACE));
  for (;;) {
    let bestAt = -1;
    let bestScore = -Infinity;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const id = ids.get(symbols[i] + symbols[i + 1]);
      if (id !== undefined && score(id) > bestScore) {
        bestScore = score(id);
        bestAt = i;
      }
    }
    if (bestAt < 0) break;
    symbols.splice(bestAt, 2, symbols[bestAt] + symbols[bestAt + 1]);
  }
  return symbols.flatMap((s) => ids.get(s) ?? [...Buffer.from(s, 'utf8')].map((byte) => ids.get(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`)!));
}

test('a SentencePiece-style GGUF tokenizer encodes as SentencePiece BPE merging does, with byte fallback', () => {
  const corpus = [...CODE_TEXTS.filter((t) => !t.includes('<|')), 'for i in range(10): print(i)', 'return self.value if self.value else None'];
  // Characters left out of the vocabulary (with every piece holding them) fall back to bytes.
  const bytesOnly = ['🌊', '世', '🏄', '\r'];
  const pieces = trainPieces(corpus, 150).filter((p) => !bytesOnly.some((c) => p.includes(c)));
  const chars = [...new Set(corpus.flatMap((t) => Array.from(SPACE + t.replaceAll(' ', SPACE))))].filter((c) => !bytesOnly.includes(c));
  const tokens = [
    '<unk>',
    '<s>',
    '</s>',
    ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
    ...chars,
    ...pieces,
  ];
  const types = tokens.map((t, id) => (id === 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1));
  // Single characters score below every merged piece; merged pieces by -rank.
  const scores = tokens.map((_, id) => (id < 259 + chars.length ? -1e6 - id : -(id - 259 - chars.length)));
  const file = writeGguf({
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.tokens': { type: 'strings', value: tokens },
    'tokenizer.ggml.scores': { type: 'f32s', value: scores },
    'tokenizer.ggml.token_type': { type: 'i32s', value: types },
    'tokenizer.ggml.unknown_token_id': { type: 'u32', value: 0 },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: 1 },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: 2 },
  });
  const converted = loadGgufTokenizer(file);
  const tokenizer = TextTokenizer.fromJson(converted.tokenizerJson, converted.tokenizerConfig);
  assert.equal(tokenizer.bosToken, '<s>');
  assert.equal(tokenizer.config.add_bos_token, true);
  assert.deepEqual(tokenizer.encode('hi', { addSpecialTokens: true })[0], 1);
  const ids = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (types[id] === 1 || types[id] === 6) ids.set(t, id);
  });
  let merged = 0;
  const texts = [
    ...corpus,
    ...randomTexts(7, 200)
      .map((t) => t.replaceAll('<|im_end|>', ''))
      .filter((t) => t.length > 0),
  ];
  for (const text of texts) {
    const expected = referenceSentencePiece(text, ids, (id) => scores[id]);
    assert.deepEqual(tokenizer.encode(text), expected, `ids of ${JSON.stringify(text)}`);
    assert.equal(tokenizer.decode(expected), text);
    if (expected.length < Array.from(text).length) merged++;
  }
  assert.ok(merged > texts.length / 3, `${merged} of ${texts.length} texts merged`);
});

test('malformed GGUF tokenizer metadata is refused with a message that says what to do', () => {
  const base = gpt2TokenizerMetadata(JSON.parse(readFileSync('test/fixtures/tokenizers/chatml-byte-bpe/tokenizer.json', 'utf8')), {}, 'gpt-2');
  // 'converter': refused while building tokenizer.json; 'engine': refused by the engine's reader.
  const cases: [Record<string, GgufEntry>, RegExp, 'converter' | 'engine'][] = [
    [{}, /no tokenizer.*Hugging Face folder/, 'converter'],
    [{ ...base, 'tokenizer.ggml.model': { type: 'string', value: 'bert' } }, /'bert' is not supported/, 'converter'],
    [{ ...base, 'tokenizer.ggml.pre': { type: 'string', value: 'mystery' } }, /'mystery' pre-tokenizer.*Hugging Face folder/, 'converter'],
    [{ ...base, 'tokenizer.ggml.merges': { type: 'strings', value: ['a b c'] } }, /merge 0 'a b c'/, 'converter'],
    [{ ...base, 'tokenizer.ggml.token_type': { type: 'i32s', value: [1, 2] } }, /token_type has 2 entries but tokenizer\.ggml\.tokens has \d+/, 'engine'],
    [{ ...base, 'tokenizer.ggml.eos_token_id': { type: 'u32', value: 100000 } }, /'tokenizer\.ggml\.eos_token_id' = 100000 is not a token id/, 'engine'],
    [{ ...base, 'tokenizer.ggml.tokens': { type: 'u32', value: 3 } }, /'tokenizer\.ggml\.tokens' must be an array of strings, found u32 3/, 'engine'],
    [{ ...base, 'tokenizer.ggml.scores': { type: 'i32s', value: [1] } }, /'tokenizer\.ggml\.scores' must be an array of f32/, 'engine'],
  ];
  for (const [metadata, message, by] of cases) {
    const file = writeGguf(metadata);
    assert.throws(
      () => loadGgufTokenizer(file),
      (error: Error & { code?: string }) =>
        error.code === 'ERR_TIDAL_MODEL' && error instanceof TidalError === (by === 'converter') && message.test(error.message),
      String(message),
    );
    // The quick check before loading catches the same tokenizer-level problems.
    if (by === 'converter' && !/merge/.test(String(message)))
      assert.throws(
        () => checkGgufTokenizer(addon.readGgufTokenizer(file)),
        (error: Error) => message.test(error.message),
      );
  }
  checkGgufTokenizer(addon.readGgufTokenizer(writeGguf(base)));
  assert.throws(
    () => checkGgufTokenizer(addon.readGgufTokenizer(writeGguf({ ...base, 'tokenizer.ggml.model': { type: 'string', value: 'llama' } }))),
    /no tokenizer\.ggml\.scores/,
  );
});

test('the engine reads every tokenizer field the converter uses', () => {
  const tokens = ['<unk>', '<s>', '</s>', 'a', 'b', 'ab'];
  const metadata = addon.readGgufTokenizer(
    writeGguf({
      'tokenizer.ggml.model': { type: 'string', value: 'llama' },
      'tokenizer.ggml.pre': { type: 'string', value: 'default' },
      'tokenizer.ggml.tokens': { type: 'strings', value: tokens },
      'tokenizer.ggml.scores': { type: 'f32s', value: [0, 0, 0, -1, -2, -0.5] },
      'tokenizer.ggml.token_type': { type: 'i32s', value: [2, 3, 3, 1, 1, 1] },
      'tokenizer.ggml.merges': { type: 'strings', value: ['a b'] },
      'tokenizer.ggml.unknown_token_id': { type: 'u32', value: 0 },
      'tokenizer.ggml.bos_token_id': { type: 'u32', value: 1 },
      'tokenizer.ggml.eos_token_id': { type: 'u32', value: 2 },
      'tokenizer.ggml.padding_token_id': { type: 'u32', value: 2 },
      'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
      'tokenizer.ggml.add_space_prefix': { type: 'bool', value: false },
      'tokenizer.chat_template': { type: 'string', value: '{{ messages }}' },
    }),
  );
  assert.equal(metadata.model, 'llama');
  assert.equal(metadata.pre, 'default');
  assert.deepEqual(metadata.tokens, tokens);
  assert.deepEqual(Array.from(metadata.scores), [0, 0, 0, -1, -2, -0.5]);
  assert.deepEqual(Array.from(metadata.tokenTypes), [2, 3, 3, 1, 1, 1]);
  assert.deepEqual(metadata.merges, ['a b']);
  assert.deepEqual([metadata.unknownId, metadata.bosId, metadata.eosId, metadata.paddingId, metadata.eotId], [0, 1, 2, 2, undefined]);
  assert.deepEqual([metadata.addBos, metadata.addEos, metadata.addSpacePrefix], [false, undefined, false]);
  assert.equal(metadata.chatTemplate, '{{ messages }}');
  const absent = addon.readGgufTokenizer(writeGguf({}));
  assert.deepEqual([absent.model, absent.tokens.length, absent.scores.length, absent.bosId, absent.chatTemplate], ['', 0, 0, undefined, '']);
});

test('broken GGUF headers are refused: magic, version, truncation, absurd counts', () => {
  const good = ggufImage({ 'general.architecture': { type: 'string', value: 'llama' }, 'tokenizer.ggml.tokens': { type: 'strings', value: ['a', 'b'] } });
  const variants: [string, Buffer, RegExp][] = [
    ['magic', Buffer.concat([Buffer.from('GGUG'), good.subarray(4)]), /expected the magic "GGUF", found "GGUG"/],
    [
      'version',
      (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(9, 4);
        return b;
      })(),
      /unsupported GGUF version 9/,
    ],
    ['truncated', good.subarray(0, 40), /truncated/],
    [
      'count',
      (() => {
        const b = Buffer.from(good);
        b.writeBigUInt64LE(1n << 40n, 16);
        return b;
      })(),
      /metadata count 1099511627776 is larger than the file allows/,
    ],
  ];
  for (const [name, bytes, message] of variants) {
    const file = path.join(scratch, `broken-${name}.gguf`);
    writeFileSync(file, bytes);
    assert.throws(
      () => addon.readGgufTokenizer(file),
      (e: Error & { code?: string }) => e.code === 'ERR_TIDAL_MODEL' && message.test(e.message),
      name,
    );
    const inspection = addon.inspectModel(file);
    assert.ok(
      inspection.problems.some((p) => message.test(p.message)),
      `${name}: ${JSON.stringify(inspection.problems)}`,
    );
  }
  const file = path.join(scratch, 'good.gguf');
  writeFileSync(file, good);
  assert.deepEqual(addon.readGgufTokenizer(file).tokens, ['a', 'b']);
  const inspection = addon.inspectModel(file);
  assert.equal(inspection.format, 'gguf');
  assert.equal(inspection.architecture, 'llama');
  assert.equal(inspection.tokenizerTokens, 2);
  assert.match(inspection.problems.map((p) => p.message).join(), /required metadata 'llama\.block_count' is missing/);
});

test('random truncations and corrupted bytes of a GGUF header end in problems or errors, never a crash', () => {
  const json = JSON.parse(readFileSync('test/fixtures/tokenizers/chatml-byte-bpe/tokenizer.json', 'utf8'));
  const image = ggufImage({ 'general.architecture': { type: 'string', value: 'qwen2' }, ...gpt2TokenizerMetadata(json, { eos_token: '<|im_end|>' }, 'gpt-2') });
  const next = seeded(1217);
  const file = path.join(scratch, 'mangled.gguf');
  let refused = 0;
  for (let i = 0; i < 300; i++) {
    const bytes = Buffer.from(i % 2 === 0 ? image.subarray(0, Math.floor(next() * image.length)) : image);
    if (i % 2 === 1)
      for (let flips = 1 + Math.floor(next() * 4); flips > 0; flips--) bytes[Math.floor(next() * Math.min(bytes.length, 4096))] = Math.floor(next() * 256);
    writeFileSync(file, bytes);
    const inspection = addon.inspectModel(file);
    assert.ok(inspection.problems.length > 0); // no model metadata at all: never loadable
    for (const problem of inspection.problems) assert.ok(['missing', 'truncated', 'malformed', 'unsupported', 'mismatch'].includes(problem.kind));
    try {
      const metadata = addon.readGgufTokenizer(file);
      assert.ok(Array.isArray(metadata.tokens));
    } catch (error) {
      assert.equal((error as { code?: string }).code, 'ERR_TIDAL_MODEL', (error as Error).message);
      refused++;
    }
  }
  assert.ok(refused > 150, `${refused} of 300 refused`);
});
