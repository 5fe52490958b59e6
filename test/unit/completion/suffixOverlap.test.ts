// No completion repeats the text already after the cursor: checked by inserting the completion
// into the document and comparing with the document the model meant.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { removeSuffixOverlap } from '../../../src/core/completion/suffixOverlap';

// Document after accepting `completion` at the cursor.
const accept = (prefix: string, completion: string, suffix: string) => prefix + removeSuffixOverlap(completion, suffix) + suffix;

test('closing characters already after the cursor are not repeated', () => {
  assert.equal(removeSuffixOverlap('a, b)', ')'), 'a, b');
  assert.equal(removeSuffixOverlap("'hello');", "');\n"), "'hello");
  assert.equal(accept('print(', 'total)', ')\n'), 'print(total)\n');
  assert.equal(removeSuffixOverlap('value', 'e.g'), 'value', 'a one-letter word overlap is not trusted');
  assert.equal(removeSuffixOverlap('x + length', 'length'), 'x + ', 'the whole rest of the line');
});

test('trailing lines that repeat the lines after the cursor are dropped', () => {
  const prefix = 'function f(a) {\n';
  const suffix = '\n}\n';
  assert.equal(removeSuffixOverlap('  return a;\n}', suffix), '  return a;');
  assert.equal(accept(prefix, '  return a;\n}', suffix), 'function f(a) {\n  return a;\n}\n');
  assert.equal(removeSuffixOverlap('  a();\n  b();\n}', '\n  b();\n}\n'), '  a();');
});

test('a completion that is exactly what follows brings nothing', () => {
  assert.equal(removeSuffixOverlap('return x;', '\n  return x;\n'), '');
  assert.equal(removeSuffixOverlap('   ', 'abc'), '');
  assert.equal(removeSuffixOverlap('', ')'), '');
  assert.equal(removeSuffixOverlap('foo()', '\nbar()\n'), 'foo()');
  assert.equal(removeSuffixOverlap('x', '\nx_total = 3\n'), 'x', 'the start of a longer word is not a repeat');
  assert.equal(removeSuffixOverlap('total', '\ntotal = 3\n'), '');
});
