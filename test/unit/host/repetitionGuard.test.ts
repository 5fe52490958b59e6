// The repetition guard: the running counts agree with the definition on random token streams,
// it fires exactly at its thresholds (one token short does not), and code with repetitive
// structure (tables of similar lines, similar cases) never trips it while a looped clause does.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { DEFAULT_REPETITION_LIMITS, firstRepetitionIndex, RepetitionGuard, type RepetitionLimits } from '../../../src/host/repetitionGuard';
import { TextTokenizer } from '../../../src/core/tokenizer/tokenizer';
import { random } from '../seededRandom';

function firstFiring(tokens: readonly number[], limits?: RepetitionLimits): number {
  const guard = new RepetitionGuard(limits);
  for (let i = 0; i < tokens.length; i++) if (guard.push(tokens[i])) return i;
  return -1;
}

function cycle(period: readonly number[], length: number): number[] {
  return Array.from({ length }, (_, i) => period[i % period.length]);
}

test('the guard agrees with the definition on random streams with planted cycles', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const next = random(seed);
    const limits: RepetitionLimits = {
      maxPeriod: 1 + Math.floor(next() * 24),
      minTokens: 1 + Math.floor(next() * 60),
      minRepeats: 2 + Math.floor(next() * 6),
    };
    const vocabulary = 2 + Math.floor(next() * 6); // small: accidental repeats happen too
    const tokens: number[] = [];
    while (tokens.length < 300) {
      if (next() < 0.3) {
        const period = Array.from({ length: 1 + Math.floor(next() * 30) }, () => Math.floor(next() * vocabulary));
        tokens.push(...cycle(period, Math.floor(next() * 120)));
      } else {
        tokens.push(Math.floor(next() * vocabulary));
      }
    }
    assert.equal(firstFiring(tokens, limits), firstRepetitionIndex(tokens, limits), `seed ${seed}, limits ${JSON.stringify(limits)}`);
  }
});

test('a cycle fires at exactly max(minTokens, minRepeats x period) tokens, not one token before', () => {
  const next = random(7);
  // The cycle test alone (the low-variety test also stops short cycles, up to 10% earlier).
  const { minTokens, minRepeats, maxPeriod } = DEFAULT_REPETITION_LIMITS;
  const cycles: RepetitionLimits = { minTokens, minRepeats, maxPeriod };
  for (let trial = 0; trial < 200; trial++) {
    const period = 1 + Math.floor(next() * maxPeriod);
    // Distinct tokens in the cycle: its smallest period is `period` itself.
    const unit = Array.from({ length: period }, (_, i) => 1000 + i);
    const needed = Math.max(minTokens, minRepeats * period);
    const noise = Array.from({ length: Math.floor(next() * 50) }, (_, i) => 5000 + i);
    const tokens = [...noise, ...cycle(unit, needed + 5)];
    assert.equal(firstFiring(tokens, cycles), noise.length + needed - 1, `period ${period}`);
    assert.equal(firstFiring(tokens.slice(0, noise.length + needed - 1), cycles), -1, `period ${period}: one token short`);
    const guard = new RepetitionGuard(cycles);
    tokens.forEach((token) => guard.push(token));
    assert.deepEqual(guard.repetition, { period, tokens: needed });
  }
});

test('the low-variety test agrees with its definition on random streams, and fires at its share exactly', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const next = random(1000 + seed);
    const limits: RepetitionLimits = {
      maxPeriod: 1 + Math.floor(next() * 8),
      minTokens: 40 + Math.floor(next() * 200),
      minRepeats: 2 + Math.floor(next() * 6),
      varietyWindow: 8 + Math.floor(next() * 60),
      varietyFew: 1 + Math.floor(next() * 4),
      varietyShare: 0.5 + next() * 0.5,
    };
    const tokens: number[] = [];
    while (tokens.length < 400) {
      // Stretches drawn from a few ids, between stretches drawn from many.
      const few = next() < 0.4;
      const ids = few ? 1 + Math.floor(next() * 5) : 50;
      for (let i = Math.floor(next() * 80); i > 0; i--) tokens.push((few ? 100 : 0) + Math.floor(next() * ids));
    }
    assert.equal(firstFiring(tokens, limits), firstRepetitionIndex(tokens, limits), `seed ${seed}, limits ${JSON.stringify(limits)}`);
  }
  // 4 ids in 180 of the 200 newest tokens fires; in 179 it does not.
  const spread = Array.from({ length: 400 }, (_, i) => 10_000 + i);
  const looped = (fewCount: number) => [...spread.slice(0, 200 - fewCount), ...cycle([1, 2, 1, 3, 4, 1], fewCount)];
  const off = { maxPeriod: 1, minTokens: 10_000, minRepeats: 2 }; // the cycle test out of the way
  const variety = { ...off, varietyWindow: 200, varietyFew: 4, varietyShare: 0.9 };
  assert.equal(firstFiring(looped(180), variety), 199);
  assert.equal(firstFiring(looped(179), variety), -1);
  const guard = new RepetitionGuard(variety);
  looped(180).forEach((token) => guard.push(token));
  assert.deepEqual(guard.repetition, { period: 0, tokens: 200 });
  assert.throws(() => new RepetitionGuard({ ...off, varietyWindow: 200 }), RangeError);
  assert.throws(() => new RepetitionGuard({ ...off, varietyWindow: 200, varietyFew: 4, varietyShare: 1.5 }), RangeError);
});

test('longer than maxPeriod is not a cycle the guard looks for', () => {
  const limits = { maxPeriod: 16, minTokens: 20, minRepeats: 3 };
  const unit = Array.from({ length: 17 }, (_, i) => i);
  assert.equal(firstFiring(cycle(unit, 17 * 20), limits), -1);
  assert.equal(firstFiring(cycle(unit.slice(0, 16), 16 * 3), limits), 16 * 3 - 1);
});

const tokenizer = TextTokenizer.fromDirectory(path.resolve('test/fixtures/tokenizers/chatml-byte-bpe'));

test('repetitive code does not trip it: tables of similar lines, similar cases, a long list of numbers', () => {
  const rows = Array.from({ length: 120 }, (_, i) => `| ${i} | value_${i} | ${i * 3} |`).join('\n');
  const cases = Array.from({ length: 80 }, (_, i) => `    case ${i}:\n      return handle${i % 7}(input);`).join('\n');
  const constants = Array.from({ length: 100 }, (_, i) => `export const LEVEL_${i} = ${i};`).join('\n');
  const numbers = `const table = [${Array.from({ length: 400 }, (_, i) => (i * 7919) % 1000).join(', ')}];`;
  const separators = ['// ' + '-'.repeat(76), '#'.repeat(80), '='.repeat(80)].join('\n\n');
  for (const [name, text] of Object.entries({ rows, cases, constants, numbers, separators })) {
    const tokens = tokenizer.encode(text);
    assert.ok(tokens.length > 150 || name === 'separators', `${name}: ${tokens.length} tokens`);
    assert.equal(firstFiring(tokens), -1, `${name} was taken for a repetition`);
  }
});

test('a few tokens in no fixed order (a loop of backtick runs) stop the answer, which the cycle test alone misses', () => {
  const next = random(11);
  const runs = Array.from({ length: 400 }, () => ' ' + '`'.repeat([4, 4, 4, 6, 5][Math.floor(next() * 5)])).join('');
  const tokens = tokenizer.encode('The functions are listed below.\n\n' + runs);
  assert.ok(tokens.length > 400, `${tokens.length} tokens`);
  const at = firstFiring(tokens);
  assert.ok(at > 0 && at < 400, `fired at ${at} of ${tokens.length}`);
  const { minTokens, minRepeats, maxPeriod } = DEFAULT_REPETITION_LIMITS;
  assert.equal(firstFiring(tokens, { minTokens, minRepeats, maxPeriod }), -1, 'the cycle test alone stops it too: the case is not the one this test is about');
});

test('a clause said again and again stops within a few repeats of the threshold', () => {
  const clause = 'The function returns the value of the cache and the cache returns the function. ';
  const tokens = tokenizer.encode('Here is what it does. ' + clause.repeat(60));
  const clauseTokens = tokenizer.encode(clause).length;
  const at = firstFiring(tokens);
  assert.ok(at > 0, 'the loop was not stopped');
  // It fires once the loop covers max(200, 8 cycles): far before the 60 repeats are written.
  assert.ok(at < tokens.length / 2, `fired at token ${at} of ${tokens.length} (clause of ${clauseTokens} tokens)`);
  // The same line repeated with a counter in it is a list, not a loop.
  const counted = tokenizer.encode(Array.from({ length: 60 }, (_, i) => `${i + 1}. ${clause}`).join('\n'));
  assert.equal(firstFiring(counted), -1);
});

test('limits are checked', () => {
  assert.throws(() => new RepetitionGuard({ maxPeriod: 0, minTokens: 10, minRepeats: 3 }), RangeError);
  assert.throws(() => new RepetitionGuard({ maxPeriod: 4, minTokens: 10, minRepeats: 1 }), RangeError);
});
