// GenerationBackend over the engine host process: engine/generate requests, their text
// streamed back as engine/token notifications, engine/cancel when the caller aborts.
import type { MessageConnection } from 'vscode-jsonrpc';

import { cancelRequest, generateRequest, prefetchNotification, type GenerateParams, type GenerateResult, type TokenChunk } from '../protocol/protocol';
import { modelUnavailable, type GenerationBackend } from './generationBackend';

/** What the local backend needs of the engine process (EngineClient provides it). */
export interface EngineConnection {
  /** The JSON-RPC connection while the engine is ready, else undefined. */
  readonly rpc: MessageConnection | undefined;
  /** Every engine/token notification of the current process. */
  onToken(listener: (chunk: TokenChunk) => void): { dispose(): void };
  /** Waits for the model to be loaded; rejects with a message for the user when it cannot be. */
  whenModelReady(): Promise<void>;
}

export class EngineNotReadyError extends Error {
  readonly code = 'ERR_TIDAL_NOT_READY';
}

/** Whether a request failed because the engine host's connection went away (it stopped). */
export function isConnectionGone(message: string): boolean {
  return /connection (is )?(closed|disposed)|connection got disposed|pending response rejected/i.test(message);
}

let nextRequest = 0;

export function newRequestId(kind: string): string {
  nextRequest += 1;
  return `${kind}-${Date.now().toString(36)}-${nextRequest}`;
}

export class LocalBackend implements GenerationBackend {
  readonly kind = 'local' as const;

  constructor(private readonly engine: EngineConnection) {}

  prefetch(params: GenerateParams): void {
    void this.engine.rpc?.sendNotification(prefetchNotification, params).catch(() => undefined);
  }

  async generate(params: GenerateParams, onText: (chunk: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
    if (signal?.aborted) return cancelledResult(params.requestId);
    try {
      await this.engine.whenModelReady();
    } catch (error) {
      throw modelUnavailable(error);
    }
    if (signal?.aborted) return cancelledResult(params.requestId);
    const rpc = this.engine.rpc;
    if (!rpc)
      throw new EngineNotReadyError('The Tidal engine is not running right now (it may be restarting). Try again in a moment, or run "Tidal: Restart Engine".');

    const subscription = this.engine.onToken((chunk) => {
      if (chunk.requestId !== params.requestId) return;
      try {
        onText(chunk.text);
      } catch {
        // A listener that fails must not break the request.
      }
    });
    const onAbort = () => {
      void rpc.sendRequest(cancelRequest, { requestId: params.requestId }).catch(() => undefined);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await rpc.sendRequest(generateRequest, params);
    } catch (error) {
      if (signal?.aborted) return cancelledResult(params.requestId);
      const message = (error as Error).message ?? String(error);
      if (isConnectionGone(message)) {
        throw new EngineNotReadyError('The Tidal engine stopped while answering; it is being restarted. See "Tidal: Show Engine Log" for why.');
      }
      const explained = explainKvCap(message);
      if (explained !== message) throw new Error(explained);
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      subscription.dispose();
    }
  }
}

/**
 * An engine error about the KV cache cap (the native max_kv_bytes) names the setting that sets
 * it, tidal.engine.maxKvMemoryGB; any other message comes back as it is.
 */
export function explainKvCap(message: string): string {
  if (!/max_kv_bytes|KV memory cap/i.test(message) || message.includes('tidal.engine.maxKvMemoryGB')) return message;
  return `${message}. The KV cache cap is the setting tidal.engine.maxKvMemoryGB: raise it (0: no cap), or lower tidal.context.maxTokens.`;
}

function cancelledResult(requestId: string): GenerateResult {
  return {
    requestId,
    text: '',
    finishReason: 'cancelled',
    tokens: 0,
    promptTokens: 0,
    reusedTokens: 0,
    recomputedTokens: 0,
    timings: { queuedMs: 0, prefillMs: 0, decodeMs: 0, totalMs: 0 },
  };
}
