// Where a chat code block's "Apply" goes, without the `vscode` module.
//
// The file: a path in the fence's info string (```ts src/a.ts, ```ts:src/a.ts, ```src/a.ts,
// ```ts title="src/a.ts"), else one named on the line before the block (`src/a.ts`, "In
// src/a.ts:"), else the active editor (the caller's choice).
//
// The place in it (placeCodeBlock), in this order:
// 1. a non-empty selection in the target: the block replaces it;
// 2. a block that looks like the whole file (its first and last non-blank lines are the file's,
//    or it is at least 60% of the file's length): it replaces the whole file;
// 3. a fragment: the region from a line equal to the block's first non-blank line to the next
//    line equal to its last (indentation ignored), the one holding most of the block's lines;
//    when no line equals its last, the block's length of lines from the first match;
// 4. nothing matches: the block is inserted at the cursor's line.
// Then the review shows the whole file's change hunk by hunk, so a wrong guess costs a Reject.

import { lineTexts } from './lineDiff';

const PATH_LIKE = /^(?:\.{0,2}\/)?[\w@.+-]+(?:\/[\w@.+-]+)*\.[\w+-]{1,12}$/;

function pathLike(word: string): string | undefined {
  const cleaned = word.replace(/^["'`(]+|["'`),:;.]+$/g, '');
  return PATH_LIKE.test(cleaned) && !/^\d+(\.\d+)*$/.test(cleaned) ? cleaned.replace(/^\.\//, '') : undefined;
}

/** The file path a code block names in its fence info or on the line before it, if any. */
export function codeBlockPath(info: string, lineBefore: string): string | undefined {
  const words = info.trim().split(/\s+/).filter(Boolean);
  const first = words[0] ?? '';
  const attribute = /(?:title|file|path|filename)=["']?([^"'\s]+)/.exec(info)?.[1];
  const candidates = [
    attribute,
    first.includes(':') ? first.slice(first.indexOf(':') + 1) : undefined,
    // ```a.ts alone names a file when it has a folder or an extension a language name lacks.
    first.includes('/') || (first.includes('.') && words.length === 1) ? first : undefined,
    ...words.slice(1),
  ];
  for (const candidate of candidates) {
    const found = candidate && pathLike(candidate);
    if (found) return found;
  }
  const before = lineBefore.trim();
  const quoted = [...before.matchAll(/`([^`]+)`/g)].map((match) => match[1]);
  for (const candidate of [...quoted, ...before.split(/\s+/).reverse()]) {
    const found = pathLike(candidate);
    if (found && found.includes('.')) return found;
  }
  return undefined;
}

export interface Placement {
  /** Replace lines [startLine, endLine) of the file (0-based). */
  startLine: number;
  endLine: number;
  how: 'selection' | 'wholeFile' | 'matchedRegion' | 'cursor';
}

/**
 * Where `code` goes in a file of `fileText`: the lines it replaces. `selection` is the target
 * editor's selection as whole lines ([startLine, endLine)), empty when there is none;
 * `cursorLine` is where to insert when nothing matches.
 */
export function placeCodeBlock(fileText: string, code: string, selection: { startLine: number; endLine: number } | undefined, cursorLine: number): Placement {
  const file = lineTexts(fileText);
  if (selection && selection.endLine > selection.startLine) return { ...selection, how: 'selection' };
  const block = lineTexts(code);
  const significant = (lines: string[]) => lines.map((line) => line.trim()).filter((line) => line !== '');
  const fileSig = significant(file);
  const blockSig = significant(block);
  if (fileSig.length === 0 || blockSig.length === 0) return { startLine: 0, endLine: file.length, how: 'wholeFile' };
  const sameEnds = fileSig[0] === blockSig[0] && fileSig.at(-1) === blockSig.at(-1);
  if (sameEnds || code.length >= 0.6 * fileText.length) return { startLine: 0, endLine: file.length, how: 'wholeFile' };

  const firstLine = blockSig[0];
  const lastLine = blockSig.at(-1)!;
  const blockSet = new Set(blockSig);
  let best: { start: number; end: number; score: number } | undefined;
  for (let start = 0; start < file.length; start += 1) {
    if (file[start].trim() !== firstLine) continue;
    // The next line equal to the block's last, within a reach that allows the block to grow or shrink.
    const reach = Math.min(file.length, start + 3 * block.length + 20);
    for (let end = start; end < reach; end += 1) {
      if (file[end].trim() !== lastLine || (end === start && blockSig.length > 1)) continue;
      const score = file.slice(start, end + 1).filter((line) => blockSet.has(line.trim())).length;
      if (!best || score > best.score) best = { start, end: end + 1, score };
      break;
    }
  }
  if (best) return { startLine: best.start, endLine: best.end, how: 'matchedRegion' };
  // Only the first line matches (the block changed its last): as many lines as the block has.
  const anchor = file.findIndex((line) => line.trim() === firstLine);
  if (anchor !== -1) return { startLine: anchor, endLine: Math.min(file.length, anchor + block.length), how: 'matchedRegion' };
  const line = Math.max(0, Math.min(cursorLine, file.length));
  return { startLine: line, endLine: line, how: 'cursor' };
}

/**
 * The file's text with lines [startLine, endLine) replaced by `code` (in the file's line break
 * style, ending with one unless it lands at the end of a file that had none).
 */
export function replaceLines(fileText: string, placement: { startLine: number; endLine: number }, code: string): string {
  const eol = fileText.includes('\r\n') ? '\r\n' : '\n';
  const lines = fileText === '' ? [] : fileText.split(/(?<=\n)/);
  const head = lines.slice(0, placement.startLine).join('');
  const tail = lines.slice(placement.endLine).join('');
  let body = lineTexts(code).join(eol);
  const endsFile = tail === '';
  const fileEndedWithBreak = fileText === '' || fileText.endsWith('\n');
  if (body !== '' && (!endsFile || fileEndedWithBreak)) body += eol;
  // The line before an insertion at the end of a file without a final break needs one.
  const glue = head !== '' && !head.endsWith('\n') && body !== '' ? eol : '';
  return head + glue + body + tail;
}
