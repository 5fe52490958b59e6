// The file window around the cursor: nearest text kept, budgets respected, line-aligned cuts,
// and a prefix start that stays put while typing (checked against a brute-force reference on
// random documents).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cutPromptWindow } from '../../../src/core/completion/promptWindow';
import { random as seeded } from '../seededRandom';

function randomDocument(random: () => number, length: number): string {
  const alphabet = 'abc def\n\n  x();{}\t';
  let text = '';
  for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
  return text;
}

test('a short document goes in whole', () => {
  const text = 'const a = 1;\nconst b = 2;\n';
  const window = cutPromptWindow(text, 13, { maxPrefixChars: 100, maxSuffixChars: 100 });
  assert.deepEqual(window, { prefix: 'const a = 1;\n', suffix: 'const b = 2;\n', prefixStart: 0 });
});

test('long prefixes and suffixes are cut at line boundaries, keeping the text nearest the cursor', () => {
  const lines = Array.from({ length: 100 }, (_, i) => `line ${String(i).padStart(2, '0')}`);
  const text = lines.join('\n');
  const cursor = text.indexOf('line 50') + 4;
  const window = cutPromptWindow(text, cursor, { maxPrefixChars: 80, maxSuffixChars: 30 });
  assert.ok(window.prefix.endsWith('line 49\nline'));
  assert.ok(window.prefix.length <= 80);
  assert.equal(text[window.prefixStart - 1], '\n', 'the prefix starts at a line start');
  assert.equal(window.suffix, ' 50\nline 51\nline 52\nline 53\n'); // 28 of 30 characters
  // A first line longer than the suffix budget is cut inside it.
  assert.equal(cutPromptWindow('ab' + 'x'.repeat(50), 1, { maxPrefixChars: 10, maxSuffixChars: 5 }).suffix, 'bxxxx');
  assert.throws(() => cutPromptWindow('abc', 4, { maxPrefixChars: 1, maxSuffixChars: 1 }), /outside the document/);
});

test('random documents: the window matches a brute-force reference and the prefix start moves only in steps while typing', () => {
  const random = seeded(7);
  for (let round = 0; round < 200; round++) {
    const text = randomDocument(random, 50 + Math.floor(random() * 400));
    const maxPrefixChars = 8 + Math.floor(random() * 120);
    const maxSuffixChars = Math.floor(random() * 60);
    const offset = Math.floor(random() * (text.length + 1));
    const window = cutPromptWindow(text, offset, { maxPrefixChars, maxSuffixChars });

    // Reference: the prefix is the text right before the cursor, within budget.
    assert.equal(text.slice(window.prefixStart, offset), window.prefix);
    assert.ok(window.prefix.length <= maxPrefixChars, `prefix ${window.prefix.length} > ${maxPrefixChars}`);
    if (offset <= maxPrefixChars) assert.equal(window.prefixStart, 0);
    else {
      // The first line start at or after the stepped start, before the cursor; else the stepped start.
      const step = Math.max(1, Math.floor(maxPrefixChars / 4));
      const stepped = Math.min(offset, Math.ceil((offset - maxPrefixChars) / step) * step);
      let expected = stepped;
      for (let p = stepped; p < offset; p++) {
        if (text[p - 1] === '\n') {
          expected = p;
          break;
        }
      }
      assert.equal(window.prefixStart, expected);
    }
    // Reference: the suffix is the text right after the cursor, whole lines unless one line is too long.
    assert.ok(text.startsWith(window.suffix, offset));
    assert.ok(window.suffix.length <= maxSuffixChars || offset + maxSuffixChars >= text.length);
    const rest = text.slice(offset);
    if (rest.length <= maxSuffixChars) assert.equal(window.suffix, rest);
    else {
      const budget = rest.slice(0, maxSuffixChars);
      const last = budget.lastIndexOf('\n');
      assert.equal(window.suffix, last >= 0 ? budget.slice(0, last + 1) : budget);
    }

    // Typing one character at the cursor keeps the prefix start unless the cursor crossed a step.
    const typed = text.slice(0, offset) + 'q' + text.slice(offset);
    const next = cutPromptWindow(typed, offset + 1, { maxPrefixChars, maxSuffixChars });
    if (offset + 1 <= maxPrefixChars || window.prefixStart === 0) continue;
    const step = Math.max(1, Math.floor(maxPrefixChars / 4));
    const crossed = Math.ceil((offset + 1 - maxPrefixChars) / step) !== Math.ceil((offset - maxPrefixChars) / step);
    if (!crossed) assert.equal(next.prefixStart, window.prefixStart, `round ${round}: the prefix start moved without crossing a step`);
  }
});
