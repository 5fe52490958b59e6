// Single-line or multi-line: how much text a completion at this cursor may bring.
//   single-line: the cursor sits in the middle of a line, or after a statement in progress;
//   multi-line: the cursor is on an empty (or indentation-only) line, or right after
//   something that opens a block ('{', '(', '[', ':', '=>', 'then', 'do').

export type CompletionMode = 'single-line' | 'multi-line';
export type CompletionModeSetting = 'auto' | CompletionMode;

const CLOSERS_ONLY = /^[\s)\]}>"'`;,]*$/;
const BLOCK_OPENER = /(?:[{([:]|=>|\bthen|\bdo)\s*$/;

export function chooseCompletionMode(linePrefix: string, lineSuffix: string, setting: CompletionModeSetting = 'auto'): CompletionMode {
  if (setting !== 'auto') return setting;
  // Real text after the cursor: only the rest of this line is wanted.
  if (!CLOSERS_ONLY.test(lineSuffix)) return 'single-line';
  if (linePrefix.trim().length === 0) return 'multi-line';
  return BLOCK_OPENER.test(linePrefix) ? 'multi-line' : 'single-line';
}

/** The leading whitespace of a line. */
export function indentationOf(line: string): string {
  return /^[ \t]*/.exec(line)![0];
}

/** Width of an indentation, a tab counting `tabSize` columns. */
export function indentWidth(indentation: string, tabSize = 4): number {
  let width = 0;
  for (const ch of indentation) width += ch === '\t' ? tabSize : 1;
  return width;
}
