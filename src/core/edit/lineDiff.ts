// A line diff for reviewing a proposed edit: the text as lines (each keeps its own line break,
// so joining them gives the text back byte for byte), the longest common subsequence of the
// two line lists, and the runs between common lines as hunks. No `vscode` import.
//
// The LCS is the textbook dynamic programme on what is left once the common first and last
// lines are set aside (an edit of a selection leaves a small middle). When that middle is
// larger than MAX_TABLE_CELLS it is one hunk: still exact, only not minimal.

/** One changed run: `original` lines at `originalStart` become `proposed` lines at `proposedStart`. */
export interface LineHunk {
  originalStart: number; // 0-based line index in the original
  original: string[];
  proposedStart: number; // 0-based line index in the proposal
  proposed: string[];
}

/** Largest LCS table (lines × lines of the changed middle) computed; beyond it, one hunk. */
export const MAX_TABLE_CELLS = 4_000_000;

/** `text` as lines, each with its line break ('\n' or '\r\n'); the last may have none. '' is no lines. */
export function splitLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', start)) {
    lines.push(text.slice(start, at + 1));
    start = at + 1;
  }
  if (start < text.length) lines.push(text.slice(start));
  return lines;
}

/** `text`'s lines without their line breaks ('\r\n' read as '\n'; '' is no lines, a final break starts none). */
export function lineTexts(text: string): string[] {
  if (text === '') return [];
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** The hunks that turn `original` into `proposed`, in order, none adjacent to another. */
export function diffLines(original: readonly string[], proposed: readonly string[]): LineHunk[] {
  let head = 0;
  while (head < original.length && head < proposed.length && original[head] === proposed[head]) head += 1;
  let tail = 0;
  while (tail < original.length - head && tail < proposed.length - head && original[original.length - 1 - tail] === proposed[proposed.length - 1 - tail])
    tail += 1;
  const a = original.slice(head, original.length - tail);
  const b = proposed.slice(head, proposed.length - tail);
  if (a.length === 0 && b.length === 0) return [];
  if (a.length * b.length > MAX_TABLE_CELLS || a.length === 0 || b.length === 0) {
    return [{ originalStart: head, original: a, proposedStart: head, proposed: b }];
  }

  // common[i * width + j]: length of the LCS of a[i..] and b[j..].
  const width = b.length + 1;
  const common = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      common[i * width + j] = a[i] === b[j] ? common[(i + 1) * width + j + 1] + 1 : Math.max(common[(i + 1) * width + j], common[i * width + j + 1]);
    }
  }

  // Walk the table forwards; lines off the LCS gather into the current hunk.
  const hunks: LineHunk[] = [];
  let open: LineHunk | undefined;
  const close = () => {
    if (open) hunks.push(open);
    open = undefined;
  };
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      close();
      i += 1;
      j += 1;
      continue;
    }
    open ??= { originalStart: head + i, original: [], proposedStart: head + j, proposed: [] };
    // Drop the original line when that keeps the LCS as long (deletions before insertions).
    if (i < a.length && (j === b.length || common[(i + 1) * width + j] >= common[i * width + j + 1])) {
      open.original.push(a[i]);
      i += 1;
    } else {
      open.proposed.push(b[j]);
      j += 1;
    }
  }
  close();
  return hunks;
}

/** `original` with each hunk taken (`true`) or left as it was (`false`), as text. */
export function applyHunks(original: readonly string[], hunks: readonly LineHunk[], take: readonly boolean[]): string {
  const out: string[] = [];
  let at = 0;
  hunks.forEach((hunk, index) => {
    out.push(...original.slice(at, hunk.originalStart));
    out.push(...(take[index] ? hunk.proposed : hunk.original));
    at = hunk.originalStart + hunk.original.length;
  });
  out.push(...original.slice(at));
  return out.join('');
}
