// What the editor features (inline completions, chat, "ask about this repository") call to get
// text from a model. Two implementations: the local engine host process (JSON-RPC, see
// localBackend.ts) and an OpenAI-compatible server (`tidal serve`, vLLM, SGLang; see
// remoteBackend.ts). Neither depends on the `vscode` module, so both are unit-tested in Node.
import type { GenerateParams, GenerateResult, PrefillProgress } from '../protocol/protocol';
import { TidalError, tidalErrorCode } from '../../native/errors';

export type BackendKind = 'local' | 'remote';

export interface GenerationBackend {
  readonly kind: BackendKind;
  /**
   * Runs one request. `onText` receives the generated text chunk by chunk, in order, before the
   * promise settles. Aborting `signal` cancels the request all the way into the engine; the
   * promise then resolves with finishReason 'cancelled' and whatever text came before.
   * Failures reject with an Error whose message says what the user can do next. `onProgress`
   * hears how far the prompt's prefill is, where the backend can tell (the local engine, for
   * prefills long enough to report in parts).
   */
  generate(
    params: GenerateParams,
    onText: (chunk: string) => void,
    signal?: AbortSignal,
    onProgress?: (progress: PrefillProgress) => void,
  ): Promise<GenerateResult>;
  /**
   * Computes `params`' prompt in the background without generating (a completion's window
   * after the editor switched files). Best effort: nothing is reported back.
   */
  prefetch?(params: GenerateParams): void;
}

/**
 * The rejection of waiting for the model, as the user meets it: a model that failed to load (or
 * none, or the remote backend chosen) is ERR_TIDAL_CONFIGURATION (a request that cannot succeed
 * until the user changes something; asking again fails the same way, so the chat offers no
 * Regenerate after it); a model still loading is not (a
 * moment later the same request succeeds).
 */
export function modelUnavailable(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (/still loading/i.test(message)) return error instanceof Error ? error : new Error(message);
  return new TidalError('ERR_TIDAL_CONFIGURATION', message);
}

/**
 * Whether asking again can succeed after `error`: not after a ConfigurationError, nor after the
 * engine refused the request itself (code ERR_TIDAL_REQUEST or ERR_TIDAL_MODEL in the JSON-RPC
 * error's data: no chat template, a prompt larger than the context, no model loaded); yes after
 * anything else (the engine stopped or restarted, a network error).
 */
export function canRetry(error: unknown): boolean {
  const code = tidalErrorCode(error);
  return !(code === 'ERR_TIDAL_CONFIGURATION' || code === 'ERR_TIDAL_REQUEST' || code === 'ERR_TIDAL_MODEL');
}
