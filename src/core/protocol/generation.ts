// What every side of a generate request shares (the engine host, the local and remote backends,
// the chat budget): the default token limits, the result of a request cancelled before it
// produced anything, and how the streamed text's listener is called.
import type { GenerateParams, GenerateResult, GenerateTimings } from './protocol';

/** The tokens a request generates at most when it does not say (maxTokens), per kind. */
export const DEFAULT_MAX_TOKENS: Readonly<Record<GenerateParams['kind'], number>> = { chat: 1024, completion: 128, raw: 256 };

const NO_TIME: GenerateTimings = { queuedMs: 0, prefillMs: 0, decodeMs: 0, totalMs: 0 };

/** The result of a request cancelled before it generated anything (its prompt tokens, if counted). */
export function cancelledResult(requestId: string, promptTokens = 0, timings: GenerateTimings = NO_TIME): GenerateResult {
  return { requestId, text: '', finishReason: 'cancelled', tokens: 0, promptTokens, reusedTokens: 0, recomputedTokens: 0, timings: { ...timings } };
}

/** `onText` wrapped so that a listener that throws cannot stop the generation (nor the request). */
export function guardedListener(onText: ((chunk: string) => void) | undefined): (chunk: string) => void {
  return (chunk) => {
    try {
      onText?.(chunk);
    } catch {
      // A listener that fails must not stop the generation.
    }
  };
}
