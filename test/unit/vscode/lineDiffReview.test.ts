// The pure parts of the reviewable edit: the line diff against a brute-force LCS, the pending
// review's accept/reject in random order reconstructing the expected text, the answer's code,
// and where a chat code block applies.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { codeBlockPath, placeCodeBlock, replaceLines } from '../../../src/core/edit/applyTarget';
import { extractCode, fitToSelection } from '../../../src/core/edit/editPrompt';
import { applyHunks, diffLines, lineTexts, splitLines } from '../../../src/core/edit/lineDiff';
import { PendingEdit } from '../../../src/core/edit/pendingEdit';
import { wholeLinesEnd } from '../../../src/core/chat/selectionPrompt';
import { random } from '../seededRandom';

function randomText(next: () => number, maxLines: number): string {
  const count = Math.floor(next() * (maxLines + 1));
  let text = '';
  for (let i = 0; i < count; i += 1) text += `${'abc'[Math.floor(next() * 3)]}${i === count - 1 && next() < 0.3 ? '' : '\n'}`;
  return text;
}

/** LCS length by trying every subsequence of `a` (small inputs only). */
function bruteLcs(a: string[], b: string[]): number {
  let best = 0;
  for (let mask = 0; mask < 1 << a.length; mask += 1) {
    const picked = a.filter((_, i) => mask & (1 << i));
    let j = 0;
    for (const line of b) if (j < picked.length && picked[j] === line) j += 1;
    if (j === picked.length) best = Math.max(best, picked.length);
  }
  return best;
}

test('diffLines: all hunks give the proposal, none the original, and the kept lines are a longest common subsequence', () => {
  const next = random(1);
  for (let round = 0; round < 400; round += 1) {
    const a = splitLines(randomText(next, 8));
    const b = splitLines(randomText(next, 8));
    const hunks = diffLines(a, b);
    assert.equal(
      applyHunks(
        a,
        hunks,
        hunks.map(() => true),
      ),
      b.join(''),
    );
    assert.equal(
      applyHunks(
        a,
        hunks,
        hunks.map(() => false),
      ),
      a.join(''),
    );
    const kept = a.length - hunks.reduce((sum, hunk) => sum + hunk.original.length, 0);
    assert.equal(kept, bruteLcs(a, b), JSON.stringify({ a, b }));
  }
});

test('PendingEdit: random accept/reject in random order leaves exactly the chosen text', () => {
  const next = random(7);
  for (let round = 0; round < 400; round += 1) {
    const original = randomText(next, 10);
    const proposal = randomText(next, 10);
    const pending = new PendingEdit(original, proposal);
    const hunks = diffLines(splitLines(original), splitLines(proposal));
    const take = hunks.map(() => next() < 0.5);
    const expected = applyHunks(splitLines(original), hunks, take);
    let document = proposal;
    const order = pending.hunks.map((hunk) => hunk.id).sort(() => next() - 0.5);
    for (const id of order) {
      if (take[id]) {
        pending.accept(id);
        continue;
      }
      const edit = pending.reject(id)!;
      // Apply the edit as VS Code would, and report the change as VS Code does (range clamped to the end).
      const lines = splitLines(document);
      const start = lines.slice(0, edit.startLine).join('').length;
      const end = lines.slice(0, edit.endLine).join('').length;
      const lastLine = Math.max(0, document.split('\n').length - 1);
      const clamped = edit.endLine > lastLine;
      document = document.slice(0, start) + edit.text + document.slice(end);
      pending.documentChanged({
        startLine: edit.startLine,
        endLine: clamped ? lastLine : edit.endLine,
        endCharacter: clamped ? document.length : 0,
        insertedLineBreaks: edit.text.split('\n').length - 1,
      });
    }
    assert.equal(document, expected, JSON.stringify({ original, proposal, take }));
    assert.equal(pending.done, true);
  }
});

test('PendingEdit.originalOf gives the original back while every hunk is pending', () => {
  const next = random(3);
  for (let round = 0; round < 200; round += 1) {
    const original = randomText(next, 10);
    const proposal = randomText(next, 10);
    assert.equal(new PendingEdit(original, proposal).originalOf(proposal), original);
  }
});

test('extractCode: first fenced block, an unclosed one to the end, else the whole answer', () => {
  assert.equal(extractCode('Here:\n```ts\nconst a = 1;\n```\nmore\n```\nx\n```'), 'const a = 1;\n');
  assert.equal(extractCode('~~~~\na\n```\nb\n~~~~'), 'a\n```\nb\n');
  assert.equal(extractCode('```py\ndef f():\n    pass'), 'def f():\n    pass\n');
  assert.equal(extractCode('\n\nreturn 1;\n\n'), 'return 1;\n');
  assert.equal(fitToSelection('a\nb\n', '    x\n    y\n'), '    a\n    b\n');
  assert.equal(fitToSelection('a\n', 'x'), 'a');
  assert.equal(fitToSelection('a\nb', 'x\r\n'), 'a\r\nb\r\n');
});

test('codeBlockPath: the fence info, then the line before, else none', () => {
  assert.equal(codeBlockPath('ts src/a.ts', ''), 'src/a.ts');
  assert.equal(codeBlockPath('ts:src/a.ts', ''), 'src/a.ts');
  assert.equal(codeBlockPath('src/lib/b.py', ''), 'src/lib/b.py');
  assert.equal(codeBlockPath('ts title="c.ts"', ''), 'c.ts');
  assert.equal(codeBlockPath('ts', 'In `src/d.ts`:'), 'src/d.ts');
  assert.equal(codeBlockPath('ts', 'Change src/e.ts:'), 'src/e.ts');
  assert.equal(codeBlockPath('ts', 'Here is the fix.'), undefined);
  assert.equal(codeBlockPath('python', 'Version 1.2 works'), undefined);
});

test('placeCodeBlock: selection, whole file, matched region, else the cursor', () => {
  const file = 'import x\n\ndef f():\n    return 1\n\ndef g():\n    return 2\n\nprint(f())\nprint(g())\n';
  assert.deepEqual(placeCodeBlock(file, 'y\n', { startLine: 2, endLine: 4 }, 0), { startLine: 2, endLine: 4, how: 'selection' });
  assert.equal(placeCodeBlock(file, 'import x\nprint(g())\n', undefined, 0).how, 'wholeFile');
  const region = placeCodeBlock(file, 'def g():\n    return 3\n', undefined, 0);
  assert.deepEqual(region, { startLine: 5, endLine: 7, how: 'matchedRegion' });
  assert.equal(replaceLines(file, region, 'def g():\n    return 3'), file.replace('return 2', 'return 3'));
  assert.deepEqual(placeCodeBlock(file, 'z = 1\n', undefined, 8), { startLine: 8, endLine: 8, how: 'cursor' });
  assert.equal(replaceLines('a\nb', { startLine: 2, endLine: 2 }, 'c\n'), 'a\nb\nc');
});

test('lineTexts is splitLines without the line breaks, on random texts with LF, CRLF and no final break', () => {
  const next = random(77);
  const pieces = ['a', 'bc', ' ', '\n', '\r\n', '\t', 'x = 1'];
  for (let round = 0; round < 300; round += 1) {
    const text = Array.from({ length: Math.floor(next() * 12) }, () => pieces[Math.floor(next() * pieces.length)]).join('');
    assert.deepEqual(
      lineTexts(text),
      splitLines(text).map((line) => line.replace(/\r?\n$/, '')),
      JSON.stringify(text),
    );
  }
  assert.deepEqual(lineTexts(''), []);
  assert.deepEqual(lineTexts('\n'), ['']);
});

test('a selection as whole lines ends after its last line, or before a line it only touches at column 0', () => {
  const at = (startLine: number, endLine: number, character: number) => wholeLinesEnd({ start: { line: startLine }, end: { line: endLine, character } });
  assert.equal(at(3, 5, 4), 6);
  assert.equal(at(3, 5, 0), 5, 'ends at the start of line 5: lines 3-4');
  assert.equal(at(3, 3, 0), 4, 'an empty selection at column 0 is its own line');
  assert.equal(at(3, 3, 7), 4);
});
