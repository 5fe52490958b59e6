// What the panel says under an answer that did not end on its own, and which buttons it offers
// there: Continue after the token limit, Regenerate where asking again can succeed.
import type { Turn } from './conversation';

/** The marker under an answer the engine stopped: at the token limit, or because it repeated itself. */
export function stopMarker(turn: Turn): string | undefined {
  if (turn.role !== 'assistant' || turn.status !== 'done' || !turn.meta) return undefined;
  switch (turn.meta.finishReason) {
    case 'length':
      return turn.meta.tokens > 0 ? `Stopped at the ${turn.meta.tokens.toLocaleString('en-US')}-token limit.` : 'Stopped at the length limit.';
    case 'context_full':
      return "Stopped: the model's context is full.";
    case 'repetition':
      return 'Stopped: the answer kept repeating itself.';
    default:
      return undefined;
  }
}

/** Continue: on the last answer, stopped at its token limit, where the backend can continue it. */
export function offersContinue(turn: Turn, isLast: boolean): boolean {
  return isLast && turn.role === 'assistant' && turn.status === 'done' && turn.meta?.finishReason === 'length' && turn.meta.canContinue === true;
}

/** Regenerate: on the last answer once it ended, unless it failed in a way asking again repeats. */
export function offersRegenerate(turn: Turn, isLast: boolean): boolean {
  return isLast && turn.role === 'assistant' && turn.status !== 'streaming' && turn.canRetry !== false;
}
