// What the editor features (inline completions, chat, "ask about this repository") call to get
// text from a model. Two implementations: the local engine host process (JSON-RPC, see
// localBackend.ts) and an OpenAI-compatible server (`tidal serve`, vLLM, SGLang; see
// remoteBackend.ts). Neither depends on the `vscode` module, so both are unit-tested in Node.
import type { GenerateParams, GenerateResult } from '../engine/protocol';

export type BackendKind = 'local' | 'remote';

export interface GenerationBackend {
  readonly kind: BackendKind;
  /**
   * Runs one request. `onText` receives the generated text chunk by chunk, in order, before the
   * promise settles. Aborting `signal` cancels the request all the way into the engine; the
   * promise then resolves with finishReason 'cancelled' and whatever text came before.
   * Failures reject with an Error whose message says what the user can do next.
   */
  generate(params: GenerateParams, onText: (chunk: string) => void, signal?: AbortSignal): Promise<GenerateResult>;
  /**
   * Computes `params`' prompt in the background without generating (a completion's window
   * after the editor switched files). Best effort: nothing is reported back.
   */
  prefetch?(params: GenerateParams): void;
}
