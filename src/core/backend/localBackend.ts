// GenerationBackend over the engine host process: engine/generate requests, their text
// streamed back as engine/token notifications, engine/cancel when the caller aborts.
import { ConnectionError, ConnectionErrors, ErrorCodes, type MessageConnection } from 'vscode-jsonrpc';

import {
  cancelRequest,
  generateRequest,
  prefetchNotification,
  type GenerateParams,
  type GenerateResult,
  type PrefillProgress,
  type TokenChunk,
} from '../protocol/protocol';
import { cancelledResult, guardedListener } from '../protocol/generation';
import { modelUnavailable, type GenerationBackend } from './generationBackend';
import { TidalError } from '../../native/errors';

/** What the local backend needs of the engine process (EngineClient provides it). */
export interface EngineConnection {
  /** The JSON-RPC connection while the engine is ready, else undefined. */
  readonly rpc: MessageConnection | undefined;
  /** Every engine/token notification of the current process. */
  onToken(listener: (chunk: TokenChunk) => void): { dispose(): void };
  /** Every engine/progress notification of the current process. */
  onProgress(listener: (progress: PrefillProgress) => void): { dispose(): void };
  /** Waits for the model to be loaded; rejects with a message for the user when it cannot be. */
  whenModelReady(): Promise<void>;
}

/**
 * Whether a request failed because the engine host's connection went away (it stopped), by
 * vscode-jsonrpc's codes: a request sent on a closed or disposed connection throws its
 * ConnectionError; one still waiting when the connection is disposed is rejected with
 * PendingResponseRejected.
 */
export function isConnectionGone(error: unknown): boolean {
  if (error instanceof ConnectionError) return error.code === ConnectionErrors.Closed || error.code === ConnectionErrors.Disposed;
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === ErrorCodes.PendingResponseRejected;
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

  async generate(
    params: GenerateParams,
    onText: (chunk: string) => void,
    signal?: AbortSignal,
    onProgress?: (progress: PrefillProgress) => void,
  ): Promise<GenerateResult> {
    if (signal?.aborted) return cancelledResult(params.requestId);
    try {
      await this.engine.whenModelReady();
    } catch (error) {
      throw modelUnavailable(error);
    }
    if (signal?.aborted) return cancelledResult(params.requestId);
    const rpc = this.engine.rpc;
    if (!rpc)
      throw new TidalError(
        'ERR_TIDAL_NOT_READY',
        'The Tidal engine is not running right now (it may be restarting). Try again in a moment, or run "Tidal: Restart Engine".',
      );

    const listener = guardedListener(onText);
    const subscription = this.engine.onToken((chunk) => {
      if (chunk.requestId === params.requestId) listener(chunk.text);
    });
    const progressSubscription = onProgress
      ? this.engine.onProgress((progress) => {
          if (progress.requestId !== params.requestId) return;
          try {
            onProgress(progress);
          } catch {
            // A progress listener that fails must not stop the request.
          }
        })
      : undefined;
    const onAbort = () => {
      void rpc.sendRequest(cancelRequest, { requestId: params.requestId }).catch(() => undefined);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await rpc.sendRequest(generateRequest, params);
    } catch (error) {
      if (signal?.aborted) return cancelledResult(params.requestId);
      if (isConnectionGone(error)) {
        throw new TidalError('ERR_TIDAL_NOT_READY', 'The Tidal engine stopped while answering; it is being restarted. See "Tidal: Show Engine Log" for why.');
      }
      const message = (error as Error).message ?? String(error);
      const explained = explainKvCap(message);
      if (explained !== message) throw new Error(explained);
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      subscription.dispose();
      progressSubscription?.dispose();
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
