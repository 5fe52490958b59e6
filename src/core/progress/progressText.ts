// How progress reads to a person: counts, time left, and a request's prefill ("reading the
// context") as the chat panel and the status bar show it. Pure, so every text is unit-tested.
import type { PrefillProgress } from '../protocol/protocol';

/** 950 → "950", 4_500 → "4.5K", 45_000 → "45K". */
export function compactCount(count: number): string {
  return count >= 10_000 ? `${Math.round(count / 1000)}K` : count >= 1000 ? `${(count / 1000).toFixed(1)}K` : String(count);
}

/** 12_300 → "12 s", 150_000 → "3 min"; undefined when unknown. */
export function timeLeft(etaMs: number | undefined): string | undefined {
  if (etaMs === undefined || !Number.isFinite(etaMs) || etaMs < 0) return undefined;
  const seconds = Math.max(1, Math.round(etaMs / 1000));
  return seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

/** "Reading the context: 6,000 of 14,239 tokens, 3 s left" (the time only when known). */
export function prefillProgressText(progress: Pick<PrefillProgress, 'done' | 'total' | 'etaMs'>): string {
  const left = progress.done < progress.total ? timeLeft(progress.etaMs) : undefined;
  return `Reading the context: ${progress.done.toLocaleString('en-US')} of ${progress.total.toLocaleString('en-US')} tokens${left ? `, ${left} left` : ''}`;
}
