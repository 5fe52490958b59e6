// Passkey prompts of `tidal-eval`: the random numbers are C++'s std::mt19937_64 and
// std::seed_seq (values the standard fixes, and values libstdc++ gave), needle shapes, exact
// prompt length, placement after a line break at the asked depth, and the rest of the prompt
// being an untouched window of the code stream, all through the shipped model's tokenizer.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { TextTokenizer } from '../../src/core/tokenizer/tokenizer';
import { Mt19937_64, sampleRandom, seedSequence, uniformBelow } from '../../src/eval/mersenneTwister';
import { buildCodeStream, buildPasskeyPrompt, CodeFile, CodeStream, collectCodeFiles, randomDistractors, randomNeedle } from '../../src/eval/passkey';
import { random } from './seededRandom';

const tokenizer = TextTokenizer.fromDirectory(path.resolve('models/tidal-code-mini'));

// A stream of made-up code: lines of varying length so line breaks fall unevenly.
function syntheticFiles(lines: number): CodeFile[] {
  const next = random(3);
  const below = (n: number) => Math.floor(next() * n);
  return Array.from({ length: 4 }, (_, f) => {
    let text = '';
    for (let i = 0; i < lines / 4; i++) {
      text += `${' '.repeat(below(9))}value_${i} = compute(${below(1000)})`;
      if (below(3) === 0) text += `  # ${'x'.repeat(below(40))}`;
      text += '\n';
    }
    return { path: `dir/file${f}.py`, text };
  });
}

function syntheticStream(lines: number): CodeStream {
  return buildCodeStream(tokenizer, syntheticFiles(lines));
}

function indexOfRun(haystack: ArrayLike<number>, needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

test('std::mt19937_64 and std::seed_seq: the values the C++ standard and libstdc++ give', () => {
  // [rand.predef]: the 10000th output of a default-constructed mt19937_64 (seed 5489).
  const standard = Mt19937_64.fromSeed(5489n);
  for (let i = 0; i < 9999; i++) standard.next();
  assert.equal(standard.next(), 9981545732273789042n);
  // Recorded from libstdc++ (g++ 12): mt19937_64(5), seed_seq{1,2,3}.generate(8 words), and the
  // per-sample generator of `tidal eval` (seed_seq of seed low/high, context, depth, trial).
  const five = Mt19937_64.fromSeed(5n);
  assert.deepEqual([five.next(), five.next(), five.next()], [12415856028556828342n, 710100233786309728n, 4155840352752516200n]);
  assert.deepEqual(Array.from(seedSequence([1, 2, 3], 8)), [3275708407, 3360503653, 2494732693, 2179803546, 3073202457, 3129723206, 1631503729, 3486643711]);
  const sample = sampleRandom(1234, 4096, 0, 0);
  assert.deepEqual(
    [sample.next(), sample.next(), sample.next(), sample.next()],
    [501661619364970979n, 9823566224939118510n, 2108531011723428343n, 9863001043565407249n],
  );
  const wide = sampleRandom(0x123456789abc, 0xc0de, 3, 0);
  assert.deepEqual([wide.next(), wide.next()], [2100341038317594346n, 11470080276244375826n]);
  const draws = sampleRandom(1234, 8192, 2, 1);
  assert.deepEqual(
    Array.from({ length: 8 }, () => uniformBelow(draws, 24)),
    [15, 12, 11, 9, 15, 11, 3, 23],
  );
});

test('uniformBelow covers its range evenly', () => {
  const rng = Mt19937_64.fromSeed(5n);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) {
    const v = uniformBelow(rng, 7);
    assert.ok(Number.isInteger(v) && v >= 0 && v < 7);
    counts[v]++;
  }
  for (const c of counts) assert.ok(c > 850 && c < 1150, `counts ${counts}`);
});

test('needles have the training shapes', () => {
  const rng = Mt19937_64.fromSeed(11n);
  const shapes = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const n = randomNeedle(rng);
    const digits = n.answer.replace(/[^0-9]/g, '');
    assert.ok(digits.length >= 5 && digits.length <= 8, n.answer);
    assert.notEqual(digits[0], '0');
    assert.ok(n.definition.includes(digits));
    assert.ok(n.answer.startsWith(' ') && n.answer.endsWith('\n'));
    assert.ok(n.definition.endsWith('\n'));
    assert.match(n.name, /^[A-Z]{4,9}$/);
    shapes.add(n.definition.slice(0, 4));
  }
  assert.deepEqual([...shapes].sort(), ['    ', '#def', 'SECR']);
});

test('the code stream marks files and line ends', () => {
  const stream = buildCodeStream(tokenizer, [
    { path: 'a.py', text: 'x = 1\ny = 2\n' },
    { path: 'b.ts', text: 'let z;\n' },
  ]);
  const separator = tokenizer.tokenId('<|file_sep|>');
  assert.equal(separator, 8); // the shipped tokenizer.json's added token
  assert.equal(stream.ids[0], separator);
  assert.equal(stream.ids.filter((id) => id === separator).length, 2);
  assert.equal(tokenizer.decode(stream.ids), '<|file_sep|>a.py\nx = 1\ny = 2\n<|file_sep|>b.ts\nlet z;\n');
  let ends = 0;
  stream.ids.forEach((id, i) => {
    assert.equal(stream.lineEnd[i] === 1, tokenizer.decode([id]).endsWith('\n'));
    ends += stream.lineEnd[i];
  });
  assert.equal(ends, 5); // each header line and each code line
  assert.throws(() => buildCodeStream({ encode: () => [], decode: () => '', tokenId: () => undefined }, []), /no <\|file_sep\|> token/);
});

test('a passkey prompt has the asked length and puts the needle after a line break at the depth', () => {
  const stream = syntheticStream(4000);
  assert.ok(stream.ids.length > 20000);
  for (const length of [300, 1000, 4096]) {
    for (const depth of [0, 0.1, 0.5, 0.9, 1]) {
      const rng = Mt19937_64.fromSeed(BigInt(length * 31 + Math.round(depth * 10)));
      const needle = randomNeedle(rng);
      const p = buildPasskeyPrompt(tokenizer, stream, length, depth, needle, rng);
      assert.equal(p.prompt.length + p.answer.length, length);
      assert.equal(tokenizer.decode(p.answer), needle.answer);
      const planted = tokenizer.encode(needle.definition);
      const query = tokenizer.encode(`\n${needle.query}`);
      assert.deepEqual(p.prompt.slice(p.needlePosition, p.needlePosition + planted.length), planted);
      assert.deepEqual(p.prompt.slice(-query.length), query);
      // Without needle and query, the prompt is one contiguous window of the stream.
      const context = [...p.prompt.slice(0, p.needlePosition), ...p.prompt.slice(p.needlePosition + planted.length, -query.length)];
      const start = indexOfRun(stream.ids, context);
      assert.ok(start >= 0, `length ${length} depth ${depth}: the context is not a window of the stream`);
      // The needle follows a line break; none lies between the asked depth and it.
      const position = p.needlePosition;
      assert.ok(position >= 1);
      assert.ok(tokenizer.decode([context[position - 1]]).endsWith('\n'));
      const target = Math.trunc(depth * context.length);
      if (position >= target) {
        for (let i = Math.max(target, 1); i < position; i++) assert.equal(stream.lineEnd[start + i - 1], 0);
      } else {
        assert.equal(depth, 1); // only past the last line break does it go back before the target
      }
    }
  }
});

test('a passkey prompt longer than the corpus asks for more code', () => {
  const stream = syntheticStream(40);
  const rng = Mt19937_64.fromSeed(1n);
  assert.throws(() => buildPasskeyPrompt(tokenizer, stream, 100000, 0.5, randomNeedle(rng), rng), /--corpus/);
});

test('distractors keep the length and the needle, with names of their own', () => {
  const stream = syntheticStream(4000);
  for (let seed = 0n; seed < 20n; seed++) {
    const rng = Mt19937_64.fromSeed(seed);
    const needle = randomNeedle(rng);
    const others = randomDistractors(rng, needle, 3);
    assert.equal(others.length, 3);
    assert.equal(new Set([needle.name, ...others.map((o) => o.name)]).size, 4);
    const p = buildPasskeyPrompt(tokenizer, stream, 2000, 0.5, needle, rng, others);
    assert.equal(p.prompt.length + p.answer.length, 2000);
    const planted = tokenizer.encode(needle.definition);
    assert.deepEqual(p.prompt.slice(p.needlePosition, p.needlePosition + planted.length), planted);
    const text = tokenizer.decode(p.prompt);
    for (const o of others) assert.ok(text.includes(o.definition));
    assert.ok(text.includes(needle.definition));
  }
});

test('code files are collected sorted, by extension and size', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tidal-eval-corpus-'));
  try {
    mkdirSync(path.join(dir, 'pkg', 'sub'), { recursive: true });
    const write = (name: string, bytes: number) => writeFileSync(path.join(dir, name), 'a'.repeat(bytes));
    write('pkg/sub/b.cpp', 500);
    write('pkg/a.ts', 300);
    write('pkg/small.py', 100); // under 200 B
    write('pkg/huge.h', 200 * 1024); // over 160 KB
    write('pkg/notes.txt', 500); // not code
    writeFileSync(path.join(dir, 'pkg', 'nul.js'), `${'a'.repeat(300)}\0`);
    const files = collectCodeFiles(dir, ['pkg']);
    assert.deepEqual(
      files.map((f) => f.path),
      ['pkg/a.ts', 'pkg/sub/b.cpp'],
    );
    assert.equal(files[1].text.length, 500);
    assert.deepEqual(
      collectCodeFiles(dir, ['pkg/notes.txt']).map((f) => f.path),
      ['pkg/notes.txt'],
    ); // a file named as a root is taken as it is
    assert.throws(() => collectCodeFiles(dir, ['missing']), /does not exist/);
    assert.throws(() => collectCodeFiles(dir, ['pkg/small.py']), /no source files/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
