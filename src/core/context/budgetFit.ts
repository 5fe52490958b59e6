// Chooses which files fit a token budget and renders them in context order.
//
// Relevant files (tiers above the background) are taken first, most relevant first, so the
// active and recently edited files survive a small budget. The background files then fill
// what is left in path order, skipping any that do not fit. Filling the background from its
// start means a budget squeezed by a few tokens (the active file grew) drops files at the end
// of the background only; everything before the first dropped file stays byte-identical.
import { Tier, type RankedPath } from './relevanceOrder';
import type { RenderedContext, RenderedFile } from './types';

export interface Segment {
  /** Separator, path line and contents, exactly as rendered. */
  text: string;
  tokens: number;
}

export function renderWithinBudget(ordered: readonly RankedPath[], segmentOf: (path: string) => Segment, budgetTokens: number): RenderedContext {
  const chosen = new Set<string>();
  const dropped: string[] = [];
  let remaining = Math.max(0, Math.floor(budgetTokens));
  const consider = (path: string) => {
    const { tokens } = segmentOf(path);
    if (tokens <= remaining) {
      chosen.add(path);
      remaining -= tokens;
    } else {
      dropped.push(path);
    }
  };
  for (let i = ordered.length - 1; i >= 0 && ordered[i].tier !== Tier.Background; i--) consider(ordered[i].path);
  for (let i = 0; i < ordered.length && ordered[i].tier === Tier.Background; i++) consider(ordered[i].path);

  const parts: string[] = [];
  const files: RenderedFile[] = [];
  let offset = 0;
  let tokensSoFar = 0;
  for (const { path } of ordered) {
    if (!chosen.has(path)) continue;
    const segment = segmentOf(path);
    files.push({ path, tokens: segment.tokens, startOffset: offset, startToken: tokensSoFar });
    parts.push(segment.text);
    offset += segment.text.length;
    tokensSoFar += segment.tokens;
  }
  return { text: parts.join(''), files, totalTokens: tokensSoFar, droppedFiles: dropped };
}

/** `separator + path + newline + contents`, the contents closed with a newline. */
export function formatSegment(separator: string, path: string, contents: string): string {
  const body = contents.length === 0 || contents.endsWith('\n') ? contents : `${contents}\n`;
  return `${separator}${path}\n${body}`;
}
