// Cross-file completion prompts and records of `tidal-eval`: the helper's file lands whole at a
// file boundary near the asked depth, the last file names no helper, the prompt has exactly the
// asked length with the answer, the rest is an untouched window of the code stream; records
// round-trip through the saved lines and render to their own tables.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { TextTokenizer } from '../../src/core/tokenizer/tokenizer';
import { buildCrossFilePrompt, crossFileDistractors, randomCrossFileCase } from '../../src/eval/crossfile';
import { sampleRandom } from '../../src/eval/mersenneTwister';
import { buildCodeStream, CodeFile } from '../../src/eval/passkey';
import { appendResults, ConfigKey, EvalResults, renderReport, serializeResults } from '../../src/eval/report';
import { random } from './seededRandom';

const tokenizer = TextTokenizer.fromDirectory(path.resolve('models/tidal-code-mini'));

function files(count: number): CodeFile[] {
  const next = random(7);
  return Array.from({ length: count }, (_, f) => {
    let text = '';
    const lines = 5 + Math.floor(next() * 30);
    for (let i = 0; i < lines; i++) text += `const v${i} = compute(${Math.floor(next() * 1000)});\n`;
    return { path: `lib/part${f}.ts`, text };
  });
}

test('a cross-file prompt: the helper file at a file boundary near the depth, exact length, the rest untouched', () => {
  const stream = buildCodeStream(tokenizer, files(60));
  const separator = tokenizer.tokenId('<|file_sep|>')!;
  for (const [length, depth] of [
    [1500, 0.1],
    [1500, 0.5],
    [2500, 0.9],
  ] as const) {
    const rng = sampleRandom(99, length, Math.round(depth * 10), 0);
    const task = randomCrossFileCase(rng);
    const sample = buildCrossFilePrompt(tokenizer, stream, length, depth, task, rng);
    assert.equal(sample.prompt.length + sample.answer.length, length);
    assert.equal(tokenizer.decode(sample.answer), task.answer);
    assert.match(task.answer, /^ [a-z]+[A-Z][a-z]+\($/);
    // The helper's file sits whole at the recorded position, starting with a separator.
    const helper = [separator, ...tokenizer.encode(`${task.helperPath}\n${task.helperText}`)];
    assert.deepEqual(sample.prompt.slice(sample.helperPosition, sample.helperPosition + helper.length), helper);
    // ...right before another file of the window (a boundary), near the asked depth.
    assert.equal(sample.prompt[sample.helperPosition + helper.length], separator);
    const context = length - helper.length - sample.answer.length - (1 + tokenizer.encode(`${task.queryPath}\n${task.queryText}`).length);
    assert.ok(Math.abs(sample.helperPosition - depth * context) < 200, `${sample.helperPosition} vs ${depth * context}`);
    // The last file asks for the helper's work without naming it; the helper's doc comment
    // says the same words.
    const text = tokenizer.decode(sample.prompt);
    const last = text.slice(text.lastIndexOf(task.queryPath));
    assert.ok(!last.includes(task.name));
    const [, verb, noun, form] = /\/\/ (\w+) the (\w+) into its (\w+)\n/.exec(last)!;
    assert.ok(task.helperText.startsWith(`/** ${verb[0].toUpperCase()}${verb.slice(1)}s a ${noun} into its ${form}. */`));
    assert.ok(last.endsWith(`const ${form} =`));
    // Without the two inserted files, the prompt is one window of the stream.
    const rest = [...sample.prompt.slice(0, sample.helperPosition), ...sample.prompt.slice(sample.helperPosition + helper.length)];
    const window = rest.slice(0, rest.length - (1 + tokenizer.encode(`${task.queryPath}\n${task.queryText}`).length));
    const start = stream.ids.indexOf(window[0]);
    assert.ok(start >= 0);
    let found = false;
    for (let s = 0; s + window.length <= stream.ids.length && !found; s++) found = window.every((id, i) => stream.ids[s + i] === id);
    assert.ok(found);
  }
  // Different samples give different helpers; too short a corpus is refused.
  const names = new Set(Array.from({ length: 20 }, (_, i) => randomCrossFileCase(sampleRandom(1, i, 0, 0)).name));
  assert.ok(names.size >= 18);
  assert.throws(
    () => buildCrossFilePrompt(tokenizer, stream, stream.ids.length + 1000, 0.5, randomCrossFileCase(sampleRandom(1, 2, 3, 4)), sampleRandom(1, 2, 3, 4)),
    /needs more code/,
  );
});

test('distractor helpers: other names doing other things, each planted whole, the prompt still exact', () => {
  const stream = buildCodeStream(tokenizer, files(60));
  const separator = tokenizer.tokenId('<|file_sep|>')!;
  const rng = sampleRandom(5, 3000, 2, 1);
  const task = randomCrossFileCase(rng);
  const others = crossFileDistractors(rng, task, 3);
  assert.equal(others.length, 3);
  assert.equal(new Set([task, ...others].map((c) => c.name)).size, 4);
  assert.equal(new Set([task, ...others].map((c) => c.what)).size, 4);
  const sample = buildCrossFilePrompt(tokenizer, stream, 3000, 0.3, task, rng, others);
  assert.equal(sample.prompt.length + sample.answer.length, 3000);
  const text = tokenizer.decode(sample.prompt);
  for (const c of [task, ...others]) assert.equal(text.split(`${c.helperPath}\n${c.helperText}`).length, 2, c.name);
  const helper = [separator, ...tokenizer.encode(`${task.helperPath}\n${task.helperText}`)];
  assert.deepEqual(sample.prompt.slice(sample.helperPosition, sample.helperPosition + helper.length), helper);
  // The last file's request matches the helper's doc comment only.
  const request = /\/\/ (\w+) the (\w+) into its (\w+)\n/.exec(text.slice(text.lastIndexOf(task.queryPath)))!;
  assert.equal(`${request[1]} ${request[2]} ${request[3]}`, task.what);
  for (const c of others) assert.notEqual(c.what, task.what);
});

test('cross-file records round-trip through the saved lines and render their own tables', () => {
  const full: ConfigKey = { mode: 'full', selection: '-', budget: 0 };
  const tidal: ConfigKey = { mode: 'tidal', selection: '2,4', budget: 256 };
  const results: EvalResults = { passkey: [], perplexity: [], crossfile: [] };
  for (let trial = 0; trial < 2; trial++)
    for (const depth of [0.1, 0.7]) {
      results.crossfile!.push({ context: 8192, depth, trial, config: full, correct: depth < 0.5 || trial === 0 });
      results.crossfile!.push({ context: 8192, depth, trial, config: tidal, correct: depth < 0.5 });
    }
  const text = serializeResults(results);
  assert.equal(text.split('\n').filter((l) => l.startsWith('crossfile\t')).length, 8);
  const back: EvalResults = { passkey: [], perplexity: [] };
  appendResults(text, 'a.tsv', back);
  assert.deepEqual(back.crossfile, results.crossfile);
  const report = renderReport(back, 8192);
  assert.match(report, /### Cross-file completion, full attention/);
  assert.match(report, /\| 8K \| 100% \| 50% \| 4 \|/); // full: depth 10% 2/2, depth 70% 1/2
  assert.match(report, /\| full \| - \| - \| 75% \|/);
  assert.match(report, /\| tidal \| 2,4 \| 256 \| 50% \|/);
  assert.doesNotMatch(report, /Passkey/);
});
