// `tidal-eval` results: saved lines round-trip, the tables count what the records say, numbers
// are written as C's printf writes them, and the committed records in bench/eval/raw render to
// the committed tables (written from them by the C++ `tidal eval`), byte for byte.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { formatFixed, formatGeneral } from '../../src/eval/printfNumber';
import { appendResults, ConfigKey, EvalResults, renderReport, serializeResults } from '../../src/eval/report';

function handmade(): EvalResults {
  const r: EvalResults = { passkey: [], perplexity: [] };
  // 4K: full 4/4, tidal {2,4} b64 2/4 and b128 4/4, quest b64 1/4 and b128 3/4.
  // 16K (beyond an 8K training length): full 1/4, everything else 0/4.
  const full: ConfigKey = { mode: 'full', selection: '-', budget: 0 };
  const t64: ConfigKey = { mode: 'tidal', selection: '2,4', budget: 64 };
  const t128: ConfigKey = { mode: 'tidal', selection: '2,4', budget: 128 };
  const q64: ConfigKey = { mode: 'quest', selection: '-', budget: 64 };
  const q128: ConfigKey = { mode: 'quest', selection: '-', budget: 128 };
  for (let trial = 0; trial < 2; trial++) {
    for (const depth of [0.1, 0.9]) {
      const i = trial * 2 + (depth > 0.5 ? 1 : 0);
      r.passkey.push({ context: 4096, depth, trial, config: full, correct: true });
      r.passkey.push({ context: 4096, depth, trial, config: t64, correct: i < 2 });
      r.passkey.push({ context: 4096, depth, trial, config: t128, correct: true });
      r.passkey.push({ context: 4096, depth, trial, config: q64, correct: i === 0 });
      r.passkey.push({ context: 4096, depth, trial, config: q128, correct: i < 3 });
      r.passkey.push({ context: 16384, depth, trial, config: full, correct: i === 3 });
      for (const config of [t64, t128, q64, q128]) r.passkey.push({ context: 16384, depth, trial, config, correct: false });
    }
  }
  r.perplexity.push({ window: 0, windowTokens: 4096, config: full, nll: 100, tokens: 50 });
  r.perplexity.push({ window: 1, windowTokens: 4096, config: full, nll: 110, tokens: 50 });
  r.perplexity.push({ window: 0, windowTokens: 4096, config: t64, nll: 120, tokens: 50 });
  r.perplexity.push({ window: 1, windowTokens: 4096, config: t64, nll: 130, tokens: 50 });
  return r;
}

const includes = (report: string, part: string) => assert.ok(report.includes(part), `the report lacks: ${part}\n${report}`);

test('results round-trip through the saved lines; a malformed line names its file and line', () => {
  const r = handmade();
  const back: EvalResults = { passkey: [], perplexity: [] };
  appendResults(serializeResults(r), 'saved.tsv', back);
  assert.equal(back.passkey.length, r.passkey.length);
  assert.equal(back.perplexity.length, r.perplexity.length);
  assert.equal(serializeResults(back), serializeResults(r));
  assert.deepEqual(back.passkey[1].config, { mode: 'tidal', selection: '2,4', budget: 64 });
  assert.equal(serializeResults(r).split('\n')[0], 'passkey\t4096\t0.1000\t0\tfull\t-\t0\t1');
  assert.throws(() => appendResults('passkey\t1\tx\n', 'bad.tsv', back), /bad\.tsv:1: not a line/);
  assert.throws(() => appendResults('\nperplexity\t0\t4096\tfull\t-\t0\tmany\t50\n', 'bad.tsv', back), /bad\.tsv:2/);
});

test('the report counts the records', () => {
  const report = renderReport(handmade(), 8192);
  includes(report, '| 4K | 100% | 100% | 100% | 4 |');
  includes(report, '| 16K (beyond training) | 0% | 50% | 25% | 4 |');
  includes(report, '| tidal | 2,4 | 64 | 50% | 0% |');
  includes(report, '| quest | - | 128 | 75% | 0% |');
  includes(report, '- 4K: full attention 100% (>= 95%: met); budgets at which it is matched: tidal {2,4}: 128; quest: none');
  includes(report, '- 16K: full attention 25% (beyond the trained length)');
  // 4K b64 50% > 25%, b128 100% > 75%; 16K is past the trained length and not counted.
  includes(report, 'tidal {2,4} vs quest at equal budget, over (budget, context) cells within the trained length: 2 better, 0 equal, 0 worse');
  // full: 210 nats / 100 tokens; tidal: 250 / 100 -> exp(0.4) - 1 = +49.18%.
  includes(report, '| full | - | - | 2.1000 | 8.166 | +0.00% |');
  includes(report, '| tidal | 2,4 | 64 | 2.5000 | 12.182 | +49.18% |');
  includes(report, '2 windows of 4K tokens, 100 scored tokens');
});

test('a sparse prefill is compared with the dense prefill of the same configuration, sample by sample', () => {
  const r = handmade();
  // tidal+prefill256 {2,4} b64 at 4K: dense was right on samples 0 and 1; sparse on 2 only.
  const sparse: ConfigKey = { mode: 'tidal+prefill256', selection: '2,4', budget: 64 };
  const quest: ConfigKey = { mode: 'quest+prefill256', selection: '-', budget: 128 };
  for (let trial = 0; trial < 2; trial++) {
    for (const depth of [0.1, 0.9]) {
      const i = trial * 2 + (depth > 0.5 ? 1 : 0);
      r.passkey.push({ context: 4096, depth, trial, config: sparse, correct: i === 2 });
      r.passkey.push({ context: 4096, depth, trial, config: quest, correct: i < 3 });
    }
  }
  const report = renderReport(r, 8192);
  includes(report, '#### Sparse prefill against a dense prefill (the same samples)');
  includes(report, '- tidal+prefill256 {2,4} at 64 against tidal {2,4} with a dense prefill: 4K 25% against 50% (2 lost, 1 gained of 4)');
  includes(report, '- quest+prefill256 at 128 against quest with a dense prefill: 4K 75% against 75% (0 lost, 0 gained of 4)');
  includes(report, '| tidal+prefill256 | 2,4 | 64 | 25% | - |');
  // Without such configurations, no such section.
  assert.ok(!renderReport(handmade(), 8192).includes('Sparse prefill'));
  assert.ok(!renderReport(handmade(), 8192).includes('+prefill rows'));
  r.perplexity.push({ window: 0, windowTokens: 4096, config: sparse, nll: 125, tokens: 50 });
  includes(renderReport(r, 8192), '| tidal+prefill256 | 2,4 | 64 | 2.5000 | 12.182 |');
  includes(renderReport(r, 8192), 'The +prefill rows score the same tokens from one sparse prefill of them');
  // The records round-trip with their modes.
  const again: EvalResults = { passkey: [], perplexity: [] };
  appendResults(serializeResults(r), 'sparse.tsv', again);
  assert.deepEqual(again, r);
});

test('the report skips comparisons where full attention retrieves nothing', () => {
  const r: EvalResults = { passkey: [], perplexity: [] };
  r.passkey.push({ context: 32768, depth: 0.5, trial: 0, config: { mode: 'full', selection: '-', budget: 0 }, correct: false });
  r.passkey.push({ context: 32768, depth: 0.5, trial: 0, config: { mode: 'tidal', selection: '2,4', budget: 64 }, correct: false });
  r.passkey.push({ context: 32768, depth: 0.5, trial: 0, config: { mode: 'quest', selection: '-', budget: 64 }, correct: true });
  const report = renderReport(r, 8192);
  includes(report, '- 32K: full attention 0% (beyond the trained length); with nothing retrieved by full attention');
  includes(report, 'cells within the trained length: 0 better, 0 equal, 0 worse');
  assert.equal(renderReport({ passkey: [], perplexity: [] }, 8192), '');
});

test('numbers are written as glibc printf writes them (ties to even, from the exact binary value)', () => {
  // Each row: value, then printf("%.0f %.2f %+.4f %.9g %.3g") of it, recorded with glibc.
  const rows: [number, string][] = [
    [12.5, '12 12.50 +12.5000 12.5 12.5'],
    [0.5, '0 0.50 +0.5000 0.5 0.5'],
    [1.5, '2 1.50 +1.5000 1.5 1.5'],
    [2.5, '2 2.50 +2.5000 2.5 2.5'],
    [1e-5, '0 0.00 +0.0000 1e-05 1e-05'],
    [123456789.5, '123456790 123456789.50 +123456789.5000 123456790 1.23e+08'],
    [0.000123456789, '0 0.00 +0.0001 0.000123456789 0.000123'],
    [1e21, '1000000000000000000000 1000000000000000000000.00 +1000000000000000000000.0000 1e+21 1e+21'],
    [1234567890123, '1234567890123 1234567890123.00 +1234567890123.0000 1.23456789e+12 1.23e+12'],
    [-0.0001, '-0 -0.00 -0.0001 -0.0001 -0.0001'],
    [5e-324, '0 0.00 +0.0000 4.94065646e-324 4.94e-324'],
    [2.675, '3 2.67 +2.6750 2.675 2.67'],
    [1.0005, '1 1.00 +1.0005 1.0005 1'],
    [99.995, '100 100.00 +99.9950 99.995 100'],
    [0.125, '0 0.12 +0.1250 0.125 0.125'],
    [100, '100 100.00 +100.0000 100 100'],
    [0, '0 0.00 +0.0000 0 0'],
  ];
  for (const [value, expected] of rows) {
    const written = [
      formatFixed(value, 0),
      formatFixed(value, 2),
      formatFixed(value, 4, { plus: true }),
      formatGeneral(value, 9),
      formatGeneral(value, 3),
    ].join(' ');
    assert.equal(written, expected, String(value));
  }
  assert.deepEqual([formatFixed(NaN, 2), formatGeneral(-Infinity, 9)], ['nan', '-inf']);
});

test('the committed records render to the committed tables, and re-save to the same lines', () => {
  const dir = path.resolve('bench/eval');
  const raw = readdirSync(path.join(dir, 'raw'))
    .filter((name) => name.endsWith('.tsv'))
    .sort();
  const load = (names: string[]) => {
    const results: EvalResults = { passkey: [], perplexity: [] };
    for (const name of names) {
      const text = readFileSync(path.join(dir, 'raw', name), 'utf8');
      const one: EvalResults = { passkey: [], perplexity: [] };
      appendResults(text, name, one);
      assert.equal(serializeResults(one), text, name); // passkey lines come before perplexity lines in every file
      appendResults(text, name, results);
    }
    return results;
  };
  const distract = raw.filter((name) => name.startsWith('distract'));
  assert.ok(distract.length > 0 && raw.length > distract.length);
  assert.equal(renderReport(load(raw.filter((name) => !distract.includes(name))), 8192), readFileSync(path.join(dir, 'eval.md'), 'utf8'));
  assert.equal(renderReport(load(distract), 8192), readFileSync(path.join(dir, 'eval_distractors.md'), 'utf8'));
});

test('the long-context records (raw-long/, the testbed model) render to their committed tables and re-save to the same lines', () => {
  const dir = path.resolve('bench/eval');
  const names = readdirSync(path.join(dir, 'raw-long')).filter((name) => name.endsWith('.tsv'));
  assert.ok(names.length >= 2);
  for (const name of names) {
    const text = readFileSync(path.join(dir, 'raw-long', name), 'utf8');
    const results: EvalResults = { passkey: [], perplexity: [], crossfile: [] };
    appendResults(text, name, results);
    assert.equal(serializeResults(results), text, name);
    assert.ok((results.crossfile ?? []).length > 0, name);
    assert.equal(renderReport(results, 131072), readFileSync(path.join(dir, name.replace(/\.tsv$/, '.md')), 'utf8'), name);
  }
});
