// Where completions end: single-line at the newline, multi-line at the end of the block
// (dedent, closing bracket, blank line before the next statement at the same level), applied
// to streamed text so a rule can stop the generation early; and the mode decision.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { chooseCompletionMode } from '../../../src/core/completion/completionMode';
import { applyStopRules, type StopContext } from '../../../src/core/completion/stopRules';

const multi = (linePrefix: string, suffix = '', maxLines = 16): StopContext => ({ mode: 'multi-line', linePrefix, suffix, maxLines, tabSize: 4 });

// Feeds `text` in chunks of `size` characters and returns the result at the first `done`.
function stream(text: string, context: StopContext, size = 3): { text: string; done: boolean; consumed: number } {
  for (let end = size; end < text.length + size; end += size) {
    const piece = text.slice(0, Math.min(end, text.length));
    const result = applyStopRules(piece, context, false);
    if (result.done) return { ...result, consumed: piece.length };
  }
  return { ...applyStopRules(text, context, true), consumed: text.length };
}

test('mode: multi-line on an empty line or after a block opener, single-line inside a line', () => {
  assert.equal(chooseCompletionMode('    ', ''), 'multi-line');
  assert.equal(chooseCompletionMode('function f(a) {', ''), 'multi-line');
  assert.equal(chooseCompletionMode('def f(a):', ''), 'multi-line');
  assert.equal(chooseCompletionMode('items.map((x) =>', ')'), 'multi-line');
  assert.equal(chooseCompletionMode('const total = ', ''), 'single-line');
  assert.equal(chooseCompletionMode('foo(', 'bar, baz)'), 'single-line');
  assert.equal(chooseCompletionMode('', '  x = 1'), 'single-line');
  assert.equal(chooseCompletionMode('', '', 'single-line'), 'single-line');
  assert.equal(chooseCompletionMode('x = ', 'y', 'multi-line'), 'multi-line');
});

test('single-line: ends at the first newline, as soon as it streams in', () => {
  const context: StopContext = { mode: 'single-line', linePrefix: 'const total = ', suffix: '\n', maxLines: 16 };
  assert.deepEqual(applyStopRules('add(1, 2);', context, false), { text: 'add(1, 2);', done: false });
  assert.deepEqual(applyStopRules('add(1, 2);', context, true), { text: 'add(1, 2);', done: true });
  const streamed = stream('add(1, 2);\nconsole.log(total);\n', context);
  assert.deepEqual({ text: streamed.text, done: streamed.done }, { text: 'add(1, 2);', done: true });
  assert.ok(streamed.consumed < 16, 'stopped before the second line was generated');
  assert.equal(applyStopRules('\nfoo', context, false).text, '');
});

test('multi-line after a block opener: the body and the closer, not the next function', () => {
  const body = '\n  if (a > b) {\n    return a;\n  }\n  return b;\n}\n\nfunction min(a, b) {\n';
  const closed = stream(body, multi('function max(a, b) {'));
  assert.equal(closed.text, '\n  if (a > b) {\n    return a;\n  }\n  return b;\n}');
  assert.ok(closed.consumed < body.indexOf('function min') + 3);
  // The closer is already in the document after the cursor: left out.
  assert.equal(stream(body, multi('function max(a, b) {', '\n}\n')).text, '\n  if (a > b) {\n    return a;\n  }\n  return b;');
  // Python: the block ends at the first line back at the def's indentation.
  assert.equal(
    stream('\n    total = 0\n    for v in values:\n        total += v\n    return total\ndef other():\n', multi('def total(values):')).text,
    '\n    total = 0\n    for v in values:\n        total += v\n    return total',
  );
});

test('multi-line on an empty line in a body: stops at a dedent or after a blank line before the next statement', () => {
  const dedent = stream('const x = 1;\n  return x;\n}\n', multi('  '));
  assert.equal(dedent.text, 'const x = 1;\n  return x;');
  assert.equal(stream('x = 1\n    y = 2\n\n    z = 3\n', multi('    ')).text, 'x = 1\n    y = 2');
  // A blank line inside brackets does not end it.
  assert.equal(stream('call(\n\n  1,\n)\nnext()\n\nlater()\n', multi('')).text, 'call(\n\n  1,\n)\nnext()');
});

test('multi-line: a bracket closed that opened before the cursor ends the completion', () => {
  const context = multi('const values = items.map((item) =>', ');\n');
  assert.equal(stream(' item * 2);\nconsole.log(values);\n', context).text, ' item * 2);');
  assert.equal(stream('\n  item * 2,\n);\nconsole.log(values);\n', multi('const values = items.map((item) =>', '\n);\n')).text, '\n  item * 2,');
});

test('multi-line: at most maxLines lines; nothing is decided on a line still being written', () => {
  const lines = Array.from({ length: 10 }, (_, i) => `  step${i}();`).join('\n');
  assert.equal(applyStopRules(lines + '\n', multi('  ', '', 3), false).text, '  step0();\n  step1();\n  step2();');
  assert.deepEqual(applyStopRules('\n  return a', multi('function f(a) {'), false), { text: '\n  return a'.split('\n').slice(0, 1).join('\n'), done: false });
  // Whatever the chunking, the result is the same.
  const text = '\n  if (x) {\n    y();\n  }\n}\n\nfunction g() {}\n';
  const expected = stream(text, multi('function f(x) {'), 1).text;
  for (const size of [2, 5, 7, 100]) assert.equal(stream(text, multi('function f(x) {'), size).text, expected);
});
