// The `tidal-eval` program (dist/tidal-eval.js): its options and their errors, RoPE
// extrapolation through --max-positions, shards that split the samples of one run, and a whole
// run on the shipped model whose records equal the ones the C++ `tidal eval` wrote for the same
// corpus and options (recorded before it was replaced).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { DEFAULT_CORPUS, parseEvalArgs, RunArgs } from '../../src/eval/evalArgs';
import { appendResults, EvalResults, serializeResults } from '../../src/eval/report';
import { loadEvalModel, runEval } from '../../src/eval/runEval';
import { loadAddon } from '../../src/native/addon';
import { random } from './seededRandom';

const script = path.resolve('dist/tidal-eval.js');
const modelDir = path.resolve('models/tidal-code-mini');

// Five files of made-up code (one not counted: .txt), the same bytes on every machine.
function writeSyntheticCorpus(dir: string): void {
  const next = random(17);
  const below = (n: number) => Math.floor(next() * n);
  const words = ['count', 'total', 'index', 'value', 'name', 'items', 'result', 'offset', 'limit', 'buffer'];
  const files: [string, string][] = [
    ['lib/alpha.py', 'py'],
    ['lib/beta.py', 'py'],
    ['lib/gamma.ts', 'ts'],
    ['lib/sub/delta.cpp', 'cpp'],
    ['lib/readme.txt', 'txt'],
  ];
  for (const [name, kind] of files) {
    let text = '';
    for (let line = 0; line < 120; line++) {
      const a = words[below(words.length)];
      const b = words[below(words.length)];
      const indent = ' '.repeat(4 * below(3));
      if (kind === 'py') text += `${indent}${a}_${line} = ${b} + ${below(1000)}  # ${a} of ${b}\n`;
      else if (kind === 'ts') text += `${indent}const ${a}${line} = ${b}.length * ${below(100)};\n`;
      else text += `${indent}int ${a}_${line} = ${b}[${below(64)}] >> ${below(8)};\n`;
    }
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
}

const RUN_OPTIONS = [
  '--corpus',
  'lib',
  '--contexts',
  '600,1500',
  '--depths',
  '0.2,0.8',
  '--trials',
  '1',
  '--distractors',
  '1',
  '--budgets',
  '16,256',
  '--selection-choices',
  '2;2,4',
  '--perplexity-windows',
  '1',
  '--perplexity-length',
  '400',
  '--perplexity-scored',
  '24',
  '--threads',
  '2',
];

// What the C++ `tidal eval --model models/tidal-code-mini --corpus-base CORPUS ${RUN_OPTIONS}` saved
// for the shipped weights (the C++ eval was deleted in be9739a; its parent builds it, CPU only).
const CPP_RECORDS = `passkey\t600\t0.2000\t0\tfull\t-\t0\t1
passkey\t600\t0.2000\t0\ttidal\t2\t16\t0
passkey\t600\t0.2000\t0\ttidal\t2\t256\t0
passkey\t600\t0.2000\t0\ttidal\t2,4\t16\t1
passkey\t600\t0.2000\t0\ttidal\t2,4\t256\t1
passkey\t600\t0.2000\t0\tquest\t-\t16\t0
passkey\t600\t0.2000\t0\tquest\t-\t256\t1
passkey\t600\t0.8000\t0\tfull\t-\t0\t1
passkey\t600\t0.8000\t0\ttidal\t2\t16\t0
passkey\t600\t0.8000\t0\ttidal\t2\t256\t0
passkey\t600\t0.8000\t0\ttidal\t2,4\t16\t1
passkey\t600\t0.8000\t0\ttidal\t2,4\t256\t1
passkey\t600\t0.8000\t0\tquest\t-\t16\t0
passkey\t600\t0.8000\t0\tquest\t-\t256\t1
passkey\t1500\t0.2000\t0\tfull\t-\t0\t1
passkey\t1500\t0.2000\t0\ttidal\t2\t16\t0
passkey\t1500\t0.2000\t0\ttidal\t2\t256\t0
passkey\t1500\t0.2000\t0\ttidal\t2,4\t16\t0
passkey\t1500\t0.2000\t0\ttidal\t2,4\t256\t0
passkey\t1500\t0.2000\t0\tquest\t-\t16\t0
passkey\t1500\t0.2000\t0\tquest\t-\t256\t1
passkey\t1500\t0.8000\t0\tfull\t-\t0\t1
passkey\t1500\t0.8000\t0\ttidal\t2\t16\t0
passkey\t1500\t0.8000\t0\ttidal\t2\t256\t0
passkey\t1500\t0.8000\t0\ttidal\t2,4\t16\t1
passkey\t1500\t0.8000\t0\ttidal\t2,4\t256\t1
passkey\t1500\t0.8000\t0\tquest\t-\t16\t0
passkey\t1500\t0.8000\t0\tquest\t-\t256\t1
perplexity\t0\t400\tfull-prefill\t-\t0\t41.6951396\t24
perplexity\t0\t400\tfull\t-\t0\t41.6951396\t24
perplexity\t0\t400\ttidal\t2\t16\t92.2815502\t24
perplexity\t0\t400\ttidal\t2\t256\t42.8322848\t24
perplexity\t0\t400\ttidal\t2,4\t16\t46.2250708\t24
perplexity\t0\t400\ttidal\t2,4\t256\t41.5659089\t24
perplexity\t0\t400\tquest\t-\t16\t135.011752\t24
perplexity\t0\t400\tquest\t-\t256\t44.145479\t24
`;

function compareRecords(actual: string, expected: string): void {
  const got: EvalResults = { passkey: [], perplexity: [] };
  const want: EvalResults = { passkey: [], perplexity: [] };
  appendResults(actual, 'actual', got);
  appendResults(expected, 'expected', want);
  assert.equal(serializeResults({ passkey: got.passkey, perplexity: [] }), serializeResults({ passkey: want.passkey, perplexity: [] }));
  assert.equal(got.perplexity.length, want.perplexity.length);
  got.perplexity.forEach((r, i) => {
    const w = want.perplexity[i];
    assert.deepEqual([r.window, r.windowTokens, r.config, r.tokens], [w.window, w.windowTokens, w.config, w.tokens]);
    assert.ok(Math.abs(r.nll - w.nll) < 1e-5 * Math.abs(w.nll), `perplexity record ${i}: ${r.nll} vs ${w.nll}`);
  });
}

test('options: the C++ defaults, ranges and messages', () => {
  const defaults = parseEvalArgs(['--model', 'm']) as RunArgs;
  assert.equal(defaults.kind, 'run');
  assert.deepEqual(defaults.contexts, [4096, 8192, 16384, 32768]);
  assert.deepEqual(defaults.depths, [0.1, 0.3, 0.5, 0.7, 0.9]);
  assert.deepEqual(defaults.budgets, [64, 128, 256, 512, 1024, 2048, 4096]);
  assert.deepEqual(defaults.selectionChoices, [[2], [2, 4], [2, 3]]);
  assert.deepEqual(defaults.corpus, DEFAULT_CORPUS);
  assert.deepEqual([defaults.trials, defaults.firstTrial, defaults.distractors, defaults.seed, defaults.shard, defaults.shards], [4, 0, 0, 1234, 0, 1]);
  assert.deepEqual([defaults.perplexityWindows, defaults.perplexityLength, defaults.perplexityScored, defaults.trainedLength], [2, 4096, 256, 8192]);
  assert.deepEqual(
    [defaults.withQuest, defaults.backend, defaults.threads, defaults.maxPositions, defaults.kvFp8Simulation, defaults.kvCache, defaults.sparsePrefill],
    [true, 'cpu', 0, 0, false, 'bf16', 0],
  );
  assert.equal((parseEvalArgs(['--model', 'm', '--sparse-prefill', '256']) as RunArgs).sparsePrefill, 256);
  assert.equal((parseEvalArgs(['--model', 'm', '--sparse-prefill', '256', '--backend', 'cuda']) as RunArgs).sparsePrefill, 256);
  assert.deepEqual(defaults.selectionPolicies, ['perQueryHead']);
  assert.deepEqual((parseEvalArgs(['--model', 'm', '--selection-policies', 'perKvHeadMax,perKvHeadSum']) as RunArgs).selectionPolicies, [
    'perKvHeadMax',
    'perKvHeadSum',
  ]);
  assert.equal((parseEvalArgs(['--model', 'm', '--kv-fp8-simulation']) as RunArgs).kvFp8Simulation, true);
  assert.equal((parseEvalArgs(['--model', 'm', '--backend', 'cuda', '--kv-cache', 'fp8']) as RunArgs).kvCache, 'fp8');
  const given = parseEvalArgs([
    '--model=m',
    '--no-quest',
    '--shard',
    '1/4',
    '--selection-choices',
    '2;3,5;',
    '--contexts',
    '100,200,',
    '--backend',
    'cuda',
  ]) as RunArgs;
  assert.deepEqual([given.withQuest, given.shard, given.shards, given.backend], [false, 1, 4, 'cuda']);
  assert.deepEqual(given.selectionChoices, [[2], [3, 5]]);
  assert.deepEqual(given.contexts, [100, 200]);
  assert.deepEqual(parseEvalArgs(['--load', 'a.tsv,b.tsv', '--trained-length', '4096']), {
    kind: 'load',
    load: ['a.tsv', 'b.tsv'],
    trainedLength: 4096,
    output: undefined,
  });
  const refused: [string[], RegExp][] = [
    [[], /missing option --model/],
    [['--model', 'm', '--trials', 'x'], /option --trials expects an integer in \[0, 1048576\], got 'x'/],
    [['--model', 'm', '--contexts', '0'], /option --contexts must be in \[1, 16777216\]/],
    [['--model', 'm', '--depths', '0.5,1.5'], /--depths takes fractions in \[0, 1\]/],
    [['--model', 'm', '--shard', '4/4'], /--shard takes I\/N/],
    [['--model', 'm', '--selection-choices', ''], /needs at least one list/],
    [['--model', 'm', '--perplexity-length', '100', '--perplexity-scored', '99'], /--perplexity-scored must be in/],
    [['--model', 'm', '--bogus', '1'], /unknown option --bogus/],
    [['--model', 'm', '--sparse-prefill', '64', '--backend', 'webgpu'], /--sparse-prefill runs on the CPU and CUDA backends/],
    [['--model', 'm', '--selection-policies', 'perKvHead'], /--selection-policies takes perQueryHead, perKvHeadMax, perKvHeadSum, got 'perKvHead'/],
    [['--load', 'a.tsv', '--model', 'm'], /unknown option --model/],
    [['model'], /unexpected argument 'model'/],
    [['--model'], /option --model needs a value/],
    [['--model', 'm', '--backend', 'metal'], /--backend takes cpu, cuda or webgpu/],
    [['--model', 'm', '--kv-fp8-simulation', '--backend', 'cuda'], /--kv-fp8-simulation runs on the CPU backend only/],
    [['--model', 'm', '--kv-fp8-simulation', '--save', 'a.tsv'], /--kv-fp8-simulation cannot be combined with --save/],
    [['--model', 'm', '--kv-cache', 'fp8'], /--kv-cache fp8 runs on the CUDA backend only/],
    [['--model', 'm', '--backend', 'cuda', '--kv-cache', 'fp16'], /--kv-cache takes bf16 or fp8, got 'fp16'/],
    [['--model', 'm', '--backend', 'cuda', '--kv-cache', 'fp8', '--save', 'a.tsv'], /--kv-cache fp8 cannot be combined with --save/],
  ];
  for (const [argv, message] of refused) assert.throws(() => parseEvalArgs(argv), message, argv.join(' '));
});

test("--max-positions lets contexts past the model's positions run (a folder of links, removed afterwards)", async () => {
  const addon = loadAddon(path.resolve('dist'));
  const fixture = path.resolve('test/fixtures/models/llama3-gqa-f32'); // max_position_embeddings 4096
  const base = { modelPath: fixture, backend: 'cpu' as const, threads: 2 };
  await assert.rejects(loadEvalModel(addon, { ...base, maxPositions: 0 }, 5000), /context 5000 is past the model's 4096 positions; pass --max-positions/);
  const before = readdirSync(os.tmpdir()).filter((name) => name.startsWith('tidal-eval-model-')).length;
  const model = await loadEvalModel(addon, { ...base, maxPositions: 8192 }, 5000);
  try {
    assert.equal(model.engine.modelInfo.maxPositionEmbeddings, 8192);
    assert.equal(model.engine.modelInfo.maxContext, 5000);
  } finally {
    await model.dispose();
  }
  assert.equal(readdirSync(os.tmpdir()).filter((name) => name.startsWith('tidal-eval-model-')).length, before);
  const plain = await loadEvalModel(addon, { ...base, maxPositions: 0 }, 300);
  assert.equal(plain.engine.modelInfo.maxPositionEmbeddings, 4096);
  await plain.dispose();
});

test('a run on the shipped model saves the records the C++ tidal eval saved; --load renders them', { timeout: 300_000 }, () => {
  assert.ok(existsSync(script), 'dist/tidal-eval.js is missing: run `node esbuild.mjs` first');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tidal-eval-run-'));
  try {
    writeSyntheticCorpus(path.join(dir, 'corpus'));
    const saved = path.join(dir, 'saved.tsv');
    const output = path.join(dir, 'report.md');
    const run = spawnSync(
      process.execPath,
      [script, '--model', modelDir, '--corpus-base', path.join(dir, 'corpus'), ...RUN_OPTIONS, '--save', saved, '--output', output],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /corpus: 4 files, \d+ tokens/);
    assert.match(run.stderr, /passkey 1500: full attention 2\/2/);
    compareRecords(readFileSync(saved, 'utf8'), CPP_RECORDS);
    assert.equal(readFileSync(output, 'utf8'), run.stdout);
    assert.match(run.stdout, /### Passkey retrieval, full attention \(context x depth\)/);
    assert.match(run.stdout, /### Held-out code perplexity \(teacher-forced decode, 1 windows of 400 tokens, 24 scored tokens\)/);
    const loaded = spawnSync(process.execPath, [script, '--load', saved], { encoding: 'utf8' });
    assert.equal(loaded.status, 0, loaded.stderr);
    assert.equal(loaded.stdout, run.stdout);

    const usage = spawnSync(process.execPath, [script, '--model', modelDir, '--trials', 'many'], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /tidal-eval: option --trials expects an integer[\s\S]*usage: tidal-eval/);
    const missing = spawnSync(process.execPath, [script, '--model', modelDir, '--corpus-base', dir, '--corpus', 'nothing'], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /tidal-eval: code folder .*nothing does not exist/);
    // A model whose embedding has 512 rows cannot take the shipped tokenizer's ids up to 8191.
    const mismatched = spawnSync(process.execPath, [script, '--model', path.resolve('test/fixtures/models/llama3-gqa-f32'), '--tokenizer', modelDir], {
      encoding: 'utf8',
    });
    assert.equal(mismatched.status, 1);
    assert.match(mismatched.stderr, /holds only 512 token ids/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--kv-fp8-simulation: the same run with every K/V row rounded as FP8 says so and scores differently', { timeout: 300_000 }, () => {
  assert.ok(existsSync(script), 'dist/tidal-eval.js is missing: run `node esbuild.mjs` first');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tidal-eval-fp8-'));
  try {
    writeSyntheticCorpus(path.join(dir, 'corpus'));
    const args = [script, '--model', modelDir, '--corpus-base', path.join(dir, 'corpus'), ...RUN_OPTIONS];
    const exact = spawnSync(process.execPath, args, { encoding: 'utf8' });
    const rounded = spawnSync(process.execPath, [...args, '--kv-fp8-simulation'], { encoding: 'utf8' });
    assert.equal(exact.status, 0, exact.stderr);
    assert.equal(rounded.status, 0, rounded.stderr);
    assert.ok(rounded.stdout.startsWith('**KV cache rounded as FP8 E4M3**'), rounded.stdout.slice(0, 200));
    assert.ok(!exact.stdout.includes('FP8'));
    // Same tables, other perplexities: the perplexity rows are where the rounding shows.
    const perplexity = (text: string) => text.slice(text.indexOf('### Held-out code perplexity'));
    assert.match(perplexity(rounded.stdout), /### Held-out code perplexity/);
    assert.notEqual(perplexity(rounded.stdout), perplexity(exact.stdout));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("shards split one run's samples: together they hold every record of the whole run", { timeout: 300_000 }, async () => {
  const addon = loadAddon(path.resolve('dist'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tidal-eval-shards-'));
  try {
    writeSyntheticCorpus(dir);
    const options = (extra: string[]) =>
      parseEvalArgs([
        '--model',
        modelDir,
        '--corpus-base',
        dir,
        ...RUN_OPTIONS,
        '--budgets',
        '16',
        '--selection-choices',
        '2',
        '--no-quest',
        ...extra,
      ]) as RunArgs;
    const quiet = () => {};
    const whole = await runEval(addon, options([]), quiet);
    const parts = [
      await runEval(addon, options(['--shard', '0/3']), quiet),
      await runEval(addon, options(['--shard', '2/3']), quiet),
      await runEval(addon, options(['--shard', '1/3']), quiet),
    ];
    assert.equal(whole.passkey.length, 4 * 2); // 4 samples x (full, tidal)
    assert.ok(parts.every((part) => part.passkey.length + part.perplexity.length > 0));
    const lines = (results: EvalResults) => serializeResults(results).split('\n').filter(Boolean).sort();
    assert.deepEqual(parts.flatMap(lines).sort(), lines(whole));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
