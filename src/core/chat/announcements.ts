// What the chat panel says to a screen reader (its one live region): that an answer started,
// that it ended and how (with the marker under it: the token limit, a repetition stop), and
// errors. Never the answer's text while it streams: that would be read again on every render.
import { offersContinue, stopMarker } from './answerMarkers';
import type { Turn } from './conversation';

/**
 * The announcement for a turn that changed from `before` (undefined: the panel had not seen it)
 * to `after`, or undefined when there is nothing to say. `isLast`: whether `after` is the
 * conversation's last turn (Continue is offered only there).
 */
export function turnAnnouncement(before: Turn | undefined, after: Turn, isLast = true): string | undefined {
  if (after.role !== 'assistant') return undefined;
  const wasStreaming = before?.status === 'streaming';
  if (after.status === 'streaming') return wasStreaming ? undefined : 'Tidal is answering.';
  if (after.status === 'error') return before?.status === 'error' ? undefined : `The answer failed. ${after.error ?? ''}`.trim();
  if (!wasStreaming) return undefined;
  if (after.status === 'stopped') return 'Answer stopped.';
  const marker = stopMarker(after);
  if (!marker) return 'Answer complete.';
  return offersContinue(after, isLast) ? `Answer ended. ${marker} Continue is available.` : `Answer ended. ${marker}`;
}
