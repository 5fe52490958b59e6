// The part of the current file that goes into a completion prompt: the text nearest the
// cursor, cut to a character budget at line boundaries. The prefix's start moves in steps
// (a quarter of the budget), not with every keystroke, so while someone types the prompt keeps
// the same beginning and the engine's prefix KV cache stays valid for it.

export interface PromptWindowLimits {
  maxPrefixChars: number;
  maxSuffixChars: number;
}

export interface PromptWindow {
  prefix: string;
  suffix: string;
  /** Offset in the document where `prefix` starts. */
  prefixStart: number;
}

export function cutPromptWindow(text: string, offset: number, limits: PromptWindowLimits): PromptWindow {
  if (!Number.isInteger(offset) || offset < 0 || offset > text.length) {
    throw new RangeError(`cursor offset ${offset} is outside the document (0..${text.length})`);
  }
  const maxPrefix = Math.max(0, Math.floor(limits.maxPrefixChars));
  const maxSuffix = Math.max(0, Math.floor(limits.maxSuffixChars));
  const prefixStart = windowStart(text, offset, maxPrefix);
  return { prefix: text.slice(prefixStart, offset), suffix: suffixWindow(text, offset, maxSuffix), prefixStart };
}

function windowStart(text: string, offset: number, maxChars: number): number {
  if (offset <= maxChars) return 0;
  const lowest = offset - maxChars;
  const step = Math.max(1, Math.floor(maxChars / 4));
  const stepped = Math.min(offset, Math.ceil(lowest / step) * step);
  // Begin at a line start when one lies between the stepped start and the cursor (never at
  // the cursor itself: that would leave no prefix).
  const newline = text.lastIndexOf('\n', stepped - 1);
  if (newline + 1 === stepped) return stepped;
  const next = text.indexOf('\n', stepped);
  return next >= 0 && next + 1 < offset ? next + 1 : stepped;
}

function suffixWindow(text: string, offset: number, maxChars: number): string {
  const end = Math.min(text.length, offset + maxChars);
  if (end === text.length) return text.slice(offset);
  const lastNewline = text.lastIndexOf('\n', end - 1);
  // Whole lines only, unless the first line alone is longer than the budget.
  return lastNewline >= offset ? text.slice(offset, lastNewline + 1) : text.slice(offset, end);
}
