// Keeps the configured model loaded in the engine host: the embedded default model or
// `tidal.modelPath`, on the backend `tidal.backend` asks for. It loads when the engine becomes
// ready (also after a crash and restart), reloads when those settings change, and tells
// listeners (status bar, chat header) what is loaded or why nothing is.
import * as vscode from 'vscode';

import { loadModelRequest, type EngineOptions, type LoadedModel } from '../core/protocol/protocol';
import type { EngineClient } from './engineClient';
import { addonLoadResultOf, localEngineOffer, platformName, type LocalEngineOffer } from './localEngine';
import { engineBackendFor, missingModelProblem, resolveModelLocation } from './modelLocation';
import { explainKvCap } from '../core/backend/localBackend';
import { maxKvBytesOf, type TidalSettings } from './settings';
import { Disposable } from './lifecycle';

export type ModelState =
  | { state: 'idle'; message: string }
  | { state: 'loading'; modelDir: string }
  | { state: 'ready'; loaded: LoadedModel; loadMs: number; embedded: boolean }
  | { state: 'error'; modelDir: string; message: string; embedded: boolean; cause: ModelErrorCause };

/**
 * Why a model failed to load: `path` (tidal.modelPath names nothing loadable: no such path, or a
 * file that is not a .gguf), `model` (the engine read the files and refused them: not a model,
 * an unsupported architecture, a broken file), `memory` (out of memory or over the KV cap),
 * `engine` (anything else, e.g. no usable GPU for tidal.backend = cuda).
 */
export type ModelErrorCause = 'path' | 'model' | 'memory' | 'engine';

export class ModelController extends Disposable {
  private current: ModelState = { state: 'idle', message: 'Waiting for the engine…' };
  private loading: Promise<void> | undefined;
  private generation = 0;
  private readonly changed = this._register(new vscode.EventEmitter<ModelState>());
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly engine: EngineClient,
    private readonly embeddedModelDir: string,
    private readonly settings: () => TidalSettings,
    private readonly log: vscode.LogOutputChannel,
    private readonly workspaceRoot: () => string | undefined,
  ) {
    super();
    this._register(
      engine.onDidChangeStatus((status) => {
        // Unavailable: no engine will come; reload() says so, or shows the remote backend.
        if (status.state === 'ready' || status.state === 'unavailable') void this.reload();
        else {
          this.generation++;
          this.loading = undefined;
          this.set({ state: 'idle', message: status.state === 'error' ? `Engine error: ${status.message ?? 'unknown'}` : `Engine ${status.state}…` });
        }
      }),
    );
  }

  get state(): ModelState {
    return this.current;
  }

  get loaded(): LoadedModel | undefined {
    return this.current.state === 'ready' ? this.current.loaded : undefined;
  }

  /** Resolves once a model is loaded; rejects with a message for the user when none can be. */
  async whenReady(timeoutMs = 120_000): Promise<LoadedModel> {
    if (this.settings().backend === 'remote') throw new Error('The remote backend is selected; no local model is loaded.');
    const offer = this.localEngine();
    if (!offer.local) throw new Error(offer.modelMessage);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = this.current;
      if (state.state === 'ready') return state.loaded;
      if (state.state === 'error') throw new Error(state.message);
      if (Date.now() > deadline) throw new Error('The model is still loading; try again in a moment.');
      if (this.loading) await this.loading;
      else
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          const listener = this.onDidChange(() => {
            clearTimeout(timer);
            listener.dispose();
            resolve();
          });
        });
    }
  }

  /** Loads the configured model now (also when one is loaded already). */
  reload(): Promise<void> {
    const settings = this.settings();
    if (settings.backend === 'remote') {
      this.generation++;
      this.loading = undefined;
      this.set({ state: 'idle', message: `Remote backend: ${settings.remoteUrl}` });
      return Promise.resolve();
    }
    const offer = this.localEngine();
    if (!offer.local) {
      this.generation++;
      this.loading = undefined;
      this.set({ state: 'idle', message: offer.modelMessage });
      return Promise.resolve();
    }
    const ticket = ++this.generation;
    const work = this.load(ticket, settings).finally(() => {
      if (this.loading === work) this.loading = undefined;
    });
    this.loading = work;
    return work;
  }

  /** Whether this machine has a local engine, as the engine client found. */
  localEngine(): LocalEngineOffer {
    return localEngineOffer(platformName(process.platform, process.arch), addonLoadResultOf(this.engine.currentStatus));
  }

  private async load(ticket: number, settings: TidalSettings): Promise<void> {
    const rpc = this.engine.rpc;
    const info = this.engine.currentStatus.info;
    if (!rpc || !info) return;
    const location = resolveModelLocation(settings.modelPath, this.embeddedModelDir, this.workspaceRoot());
    const problem = missingModelProblem(location);
    if (problem) {
      this.log.error(`model ${location.modelDir}: ${problem}`);
      this.set({ state: 'error', modelDir: location.modelDir, message: problem, embedded: location.embedded, cause: 'path' });
      return;
    }
    this.set({ state: 'loading', modelDir: location.modelDir });
    const backend = engineBackendFor(settings.backend, info.cuda.usable, info.compiledBackends);
    const started = Date.now();
    const attempt = (options: EngineOptions) =>
      rpc.sendRequest(loadModelRequest, { modelDir: location.modelDir, tokenizerDir: location.tokenizerDir, options });
    const maxKvBytes = maxKvBytesOf(settings);
    try {
      let loaded: LoadedModel;
      try {
        // The FP8 cache is a CUDA option; the CPU engine keeps float K/V.
        const kvFp8 = backend === 'cuda' && settings.engine.kvCache === 'fp8' ? true : undefined;
        loaded = await attempt({ backend, prefillChunk: prefillChunkFor(backend), maxKvBytes, kvFp8 });
      } catch (error) {
        // 'auto' may fall back to the CPU; an explicit 'cuda' setting reports the failure.
        if (backend !== 'cuda' || settings.backend !== 'auto') throw error;
        this.log.warn(`loading on CUDA failed (${(error as Error).message}); loading on the CPU instead`);
        loaded = await attempt({ backend: 'cpu', prefillChunk: prefillChunkFor('cpu'), maxKvBytes });
      }
      if (ticket !== this.generation) return;
      const loadMs = Date.now() - started;
      this.log.info(
        `model ${location.embedded ? 'tidal-code-mini (embedded)' : location.modelDir}: ${loaded.model.architecture}, ` +
          `${loaded.model.numLayers} layers, context ${loaded.model.maxContext}, ${loaded.model.backend}, loaded in ${loadMs} ms`,
      );
      this.set({ state: 'ready', loaded, loadMs, embedded: location.embedded });
    } catch (error) {
      if (ticket !== this.generation) return;
      const message = explainKvCap((error as Error).message ?? String(error));
      this.log.error(`loading the model ${location.modelDir} failed: ${message}`);
      this.set({
        state: 'error',
        modelDir: location.modelDir,
        message: `Could not load the model: ${message}`,
        embedded: location.embedded,
        cause: loadErrorCause(error, message),
      });
    }
  }

  private set(state: ModelState): void {
    this.current = state;
    this.changed.fire(state);
  }
}

/** The cause of a failed engine/loadModel, from the engine's error code (carried in the response's data). */
function loadErrorCause(error: unknown, message: string): ModelErrorCause {
  const code = (error as { data?: { code?: unknown } }).data?.code;
  if (code === 'ERR_TIDAL_MODEL') return 'model';
  if (code === 'ERR_TIDAL_OUT_OF_MEMORY' || message.includes('tidal.engine.maxKvMemoryGB')) return 'memory';
  return 'engine';
}

/**
 * Tokens per prefill pass. The engine reads a cancel between the layers of a pass, and on the
 * CPU short passes still let a superseded completion give way sooner (bench/completions measured
 * p50 257 ms with 256-token passes, 28 ms with 32, at the same time to first token, when a cancel
 * was read only between passes); the GPU takes the engine's default (2048), where long passes
 * are what makes prefill fast.
 */
function prefillChunkFor(backend: 'cpu' | 'cuda' | 'webgpu'): number | undefined {
  return backend === 'cpu' ? 32 : undefined;
}
