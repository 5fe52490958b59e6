// The engine host's repository: the workspace's files laid out as the repository part of every
// prompt (repositoryLayout.ts), warmed in the background and kept on disk.
//
// Warm-up: whenever the layout changes (open, file events, a model load), the repository part
// is prefilled in steps at the lowest queue priority. Each step is sized from the measured
// prefill rate. While requests come, a step takes about STEP_SECONDS and runs to its end, so a
// request waits at most one short step and the warm-up still advances between keystrokes.
// After IDLE_MS without a request, steps take about LONG_STEP_SECONDS (long passes use the GPU
// better) and any request preempts them: the engine stops the pass between two layers, the
// step's work is dropped, and the steps are short again until the next quiet spell. Requests
// run first and the warm-up resumes after them. Progress (tokens done of total, time left) is
// reported as RepositoryStatus.
//
// A completion never waits for a cold repository: while warm-up is far from done, its prompt
// takes the repository blocks whose KV is already there (reusable exactly or by moving), plus
// the missing ones only if they are few (a saved file). Chat takes the whole repository part.
//
// Persistence: once warm and idle for a while after a change, the slot holding the repository
// is saved to the KV store; at open, a stored entry for the same workspace and model is
// loaded and the prefix cache reuses whatever of it still matches, token for token.
import type { CancelToken } from '../native/addon';
import { KvStore } from './kvStore';
import { blocksWithin, type PrefixCache, type PromptLayout } from './prefixCache';
import type { RepositoryStatus, WorkspaceFileEvent, WorkspaceOpenParams } from '../core/protocol/protocol';
import { RepositoryLayout, type LaidOutRepository, type RepositoryTokenizer } from './repositoryLayout';

/** Target duration of one warm-up step while requests come (a request waits at most about this long). */
const STEP_SECONDS = 0.2;
/** Target duration of a preemptible warm-up step, after IDLE_MS without a request. */
const LONG_STEP_SECONDS = 1.0;
const IDLE_MS = 1000;
const MIN_STEP_TOKENS = 64;
const MAX_STEP_TOKENS = 16384;
/** Tokens per engine pass of a step (a pass's activations grow with it: ~1 GB at 8192 on an 8B model). */
const MAX_PASS_TOKENS = 8192;
/** Missing repository tokens a completion still computes itself rather than leaving files out. */
const COLD_TOKENS_FOR_COMPLETION = 4096;
/** Quiet time after the last request before a changed repository's KV is saved. */
const DEFAULT_SAVE_IDLE_MS = 10_000;

export interface RepositoryHostDeps {
  prefixCache: PrefixCache;
  engine: {
    saveSequence(sequence: number, path: string, options?: { cancel?: CancelToken }): Promise<number>;
    loadSequence(path: string): Promise<number>;
    sequenceTokens(sequence: number): Promise<Int32Array>;
  };
  tokenizer: RepositoryTokenizer;
  /** Runs a job in the request queue at background priority; a preemptible one is cancelled by any request. */
  runInBackground<T>(id: string, job: (cancel: CancelToken) => Promise<T>, options?: { preemptible?: boolean }): Promise<T>;
  /** Identifies the model and its settings for the KV store (same key: same KV). */
  modelKey: string;
  log?: (message: string) => void;
  saveIdleMs?: number;
  /** Target duration of one warm-up step while requests come; default STEP_SECONDS. */
  stepSeconds?: number;
  /** Target duration of a preemptible step after a quiet spell; default LONG_STEP_SECONDS. */
  longStepSeconds?: number;
  /** Quiet time before steps become long and preemptible; default IDLE_MS. */
  idleMs?: number;
}

/**
 * What identifies a workspace's saved KV: its folder, or for several folders every folder's
 * name and path in order (the same folders in another order lay out differently).
 */
export function workspaceIdentity(params: Pick<WorkspaceOpenParams, 'root' | 'folders'>): string {
  if (!params.folders || params.folders.length <= 1) return params.root;
  return params.folders.map((folder) => `${folder.name}\t${folder.path}`).join('\n');
}

export class RepositoryService {
  private layout: RepositoryLayout | undefined;
  private params: WorkspaceOpenParams | undefined;
  private store: KvStore | undefined;
  private storeKey = '';
  private state: RepositoryStatus['state'] = 'closed';
  private message: string | undefined;
  private restoredTokens: number | undefined;
  private warming: Promise<void> | undefined;
  private tokensPerSecond = 0;
  private closed = true;
  private openGeneration = 0;
  private savedVersion = -1;
  private saveTimer: NodeJS.Timeout | undefined;
  private lastRequestAt = 0;
  private readonly listeners = new Set<(status: RepositoryStatus) => void>();
  private readyWaiters: ((status: RepositoryStatus) => void)[] = [];

  constructor(private readonly deps: RepositoryHostDeps) {}

  onStatus(listener: (status: RepositoryStatus) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  get reuseShifted(): boolean {
    return this.params?.reuseShiftedKv ?? true;
  }

  /** Scans the workspace (resolves after the scan), restores stored KV, starts the warm-up. */
  async open(params: WorkspaceOpenParams): Promise<RepositoryStatus> {
    await this.close();
    const generation = ++this.openGeneration;
    this.closed = false;
    this.params = params;
    this.restoredTokens = undefined;
    this.message = undefined;
    this.layout = new RepositoryLayout(
      { root: params.root, folders: params.folders, include: params.include, exclude: params.exclude, repoName: params.repoName, maxTokens: params.maxTokens },
      this.deps.tokenizer,
    );
    this.setState('scanning');
    try {
      await this.layout.scan();
    } catch (error) {
      this.message = `Could not read the workspace ${params.root}: ${(error as Error).message}`;
      this.setState('error');
      return this.status();
    }
    if (generation !== this.openGeneration) return this.status();
    if (params.persistDir) {
      this.store = new KvStore(params.persistDir, params.persistMaxBytes ?? 20 * 2 ** 30);
      this.storeKey = KvStore.entryKey(workspaceIdentity(params), this.deps.modelKey);
      await this.restore(generation);
    }
    this.scheduleWarm();
    return this.status();
  }

  applyEvents(events: readonly WorkspaceFileEvent[]): Promise<void> {
    const layout = this.layout;
    if (!layout || this.closed) return Promise.resolve();
    return layout.apply(events).then(() => this.scheduleWarm());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.openGeneration++;
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.warming?.catch(() => undefined);
    this.layout = undefined;
    this.params = undefined;
    this.store = undefined;
    this.savedVersion = -1;
    this.setState('closed');
  }

  status(): RepositoryStatus {
    const laid = this.layout && !this.closed ? this.layout.layout() : undefined;
    const warm = laid ? this.warmTokens(laid) : 0;
    const total = laid?.tokens.length ?? 0;
    const etaMs = this.state === 'warming' && this.tokensPerSecond > 0 ? Math.round(((total - warm) / this.tokensPerSecond) * 1000) : undefined;
    return {
      state: this.state,
      files: laid?.files ?? 0,
      droppedFiles: laid?.droppedFiles ?? 0,
      skippedFiles: laid?.skippedFiles ?? 0,
      totalTokens: total,
      warmTokens: warm,
      ...(etaMs !== undefined ? { etaMs } : {}),
      ...(this.restoredTokens !== undefined ? { restoredTokens: this.restoredTokens } : {}),
      ...(this.message !== undefined ? { message: this.message } : {}),
    };
  }

  /** Resolves once the warm-up is done (or the workspace is closed / failed). */
  whenReady(): Promise<RepositoryStatus> {
    if (this.state !== 'warming' && this.state !== 'scanning') return Promise.resolve(this.status());
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * The repository part for a request. Chat takes all of it. A completion takes the blocks
   * whose KV is reusable, and the rest only when it is small (see COLD_TOKENS_FOR_COMPLETION).
   */
  promptPart(kind: 'chat' | 'completion'): LaidOutRepository | undefined {
    if (!this.layout || this.closed) return undefined;
    this.lastRequestAt = Date.now();
    const laid = this.layout.layout();
    if (laid.tokens.length === 0 || kind === 'chat') return laid;
    const reusable = this.deps.prefixCache.bestReuse(laid, this.reuseShifted);
    if (laid.tokens.length - reusable <= COLD_TOKENS_FOR_COMPLETION) return laid;
    const blocks = blocksWithin(laid.blocks, reusable);
    if (blocks.length === 0) return undefined;
    const end = blocks[blocks.length - 1].start + blocks[blocks.length - 1].length;
    return { ...laid, tokens: laid.tokens.subarray(0, end), blocks, files: blocks.length, droppedFiles: laid.droppedFiles + laid.files - blocks.length };
  }

  /** Saves the repository's KV now (when warm and a store is configured). */
  async flush(): Promise<{ saved: boolean; bytes: number }> {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.warming?.catch(() => undefined);
    return this.save();
  }

  // ---- warm-up ----

  private warmTokens(laid: PromptLayout): number {
    const holder = this.deps.prefixCache.exactHolder(laid);
    return holder?.tokens ?? 0;
  }

  private scheduleWarm(): void {
    if (this.closed || this.warming) return;
    this.warming = this.warmLoop().finally(() => {
      this.warming = undefined;
    });
  }

  private async warmLoop(): Promise<void> {
    const generation = this.openGeneration;
    for (;;) {
      if (this.closed || generation !== this.openGeneration || !this.layout) return;
      const version = this.layout.version;
      const laid = this.layout.layout();
      const total = laid.tokens.length;
      const warm = this.warmTokens(laid);
      if (warm >= total) {
        this.setState('ready');
        this.scheduleSave();
        return;
      }
      if (this.state !== 'warming') this.setState('warming');
      const reusable = this.deps.prefixCache.bestReuse(laid, this.reuseShifted);
      const long = Date.now() - this.lastRequestAt >= (this.deps.idleMs ?? IDLE_MS);
      const stepTokens = this.stepTokensFor(long ? (this.deps.longStepSeconds ?? LONG_STEP_SECONDS) : (this.deps.stepSeconds ?? STEP_SECONDS));
      const end = Math.min(total, Math.max(reusable, warm) + stepTokens);
      const step: PromptLayout = { tokens: laid.tokens.subarray(0, end), blocks: blocksWithin(laid.blocks, end) };
      const started = performance.now();
      let recomputed = 0;
      try {
        recomputed = await this.deps.runInBackground(
          `warm-${generation}-${version}-${end}`,
          async (cancel) => {
            if (this.closed || generation !== this.openGeneration) return 0;
            const chunk = Math.min(stepTokens, MAX_PASS_TOKENS);
            const prepared = await this.deps.prefixCache.prepare(step, { holdAll: true, reuseShifted: this.reuseShifted, chunk, cancel });
            return prepared.recomputedTokens;
          },
          { preemptible: long },
        );
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (this.closed || generation !== this.openGeneration) return;
        if (code === 'ERR_TIDAL_CANCELLED') {
          // A long step preempted by a request: short steps until the next quiet spell.
          if (!long) return;
          this.lastRequestAt = Date.now();
          continue;
        }
        this.message =
          code === 'ERR_TIDAL_OUT_OF_MEMORY'
            ? `The repository part (${total} tokens) does not fit the KV memory: ${(error as Error).message} Lower tidal.context.maxTokens, or raise tidal.engine.maxKvMemoryGB.`
            : `Warming the repository failed: ${(error as Error).message}`;
        this.setState('error');
        this.deps.log?.(this.message);
        return;
      }
      const seconds = (performance.now() - started) / 1000;
      if (recomputed >= MIN_STEP_TOKENS && seconds > 0) this.tokensPerSecond = recomputed / seconds;
      this.emit();
    }
  }

  /** Tokens of a step that takes about `seconds` at the measured rate (1024 before any rate). */
  private stepTokensFor(seconds: number): number {
    if (this.tokensPerSecond <= 0) return 1024;
    return Math.round(Math.min(MAX_STEP_TOKENS, Math.max(MIN_STEP_TOKENS, this.tokensPerSecond * seconds)));
  }

  // ---- persistence ----

  private scheduleSave(): void {
    if (!this.store || !this.layout || this.savedVersion === this.layout.version) return;
    clearTimeout(this.saveTimer);
    const idle = this.deps.saveIdleMs ?? DEFAULT_SAVE_IDLE_MS;
    // Checked again when the time is up: a request meanwhile starts the wait over.
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      if (Date.now() - this.lastRequestAt < idle) {
        this.scheduleSave();
        return;
      }
      void this.save().catch((error) => this.deps.log?.(`saving the repository KV failed: ${(error as Error).message}`));
    }, idle);
    this.saveTimer.unref?.();
  }

  private async save(): Promise<{ saved: boolean; bytes: number }> {
    const store = this.store;
    const layout = this.layout;
    const params = this.params;
    if (!store || !layout || !params || this.closed) return { saved: false, bytes: 0 };
    const version = layout.version;
    // The save holds the engine for seconds (12 GiB at 100K tokens of an 8B model): a request
    // arriving meanwhile cancels it, and it is tried again after the next quiet spell.
    return this.deps
      .runInBackground(
        `save-${version}`,
        async (cancel) => {
          const laid = layout.layout();
          const holder = this.deps.prefixCache.exactHolder(laid);
          if (!holder || holder.tokens < laid.tokens.length || laid.tokens.length === 0) return { saved: false, bytes: 0 };
          const started = performance.now();
          const result = await store.save(
            this.storeKey,
            { root: workspaceIdentity(params), modelKey: this.deps.modelKey, tokens: holder.tokens, blocks: holder.blocks },
            (kvPath) => this.deps.engine.saveSequence(holder.sequence, kvPath, { cancel }),
          );
          if (result.saved) this.savedVersion = version;
          this.deps.log?.(
            result.saved
              ? `saved the repository KV (${holder.tokens} tokens, ${(result.bytes / 2 ** 30).toFixed(2)} GiB) in ${Math.round(performance.now() - started)} ms`
              : `the repository KV (${(result.bytes / 2 ** 30).toFixed(2)} GiB) is larger than tidal.context.persistMaxGB: not kept on disk`,
          );
          return result;
        },
        { preemptible: true },
      )
      .catch((error) => {
        if ((error as { code?: string }).code !== 'ERR_TIDAL_CANCELLED') throw error;
        this.deps.log?.('saving the repository KV gave way to a request; it is saved after the next quiet spell');
        this.scheduleSave();
        return { saved: false, bytes: 0 };
      });
  }

  private async restore(generation: number): Promise<void> {
    const store = this.store;
    const params = this.params;
    if (!store || !params) return;
    const found = await store.find(this.storeKey, workspaceIdentity(params), this.deps.modelKey).catch(() => undefined);
    if (!found) return;
    try {
      await this.deps.runInBackground(`restore-${generation}`, async () => {
        if (generation !== this.openGeneration) return;
        const started = performance.now();
        const sequence = await this.deps.engine.loadSequence(found.kvPath);
        const tokens = await this.deps.engine.sequenceTokens(sequence);
        await this.deps.prefixCache.adopt(sequence, tokens, found.record.blocks);
        const laid = this.layout?.layout();
        this.restoredTokens = laid ? this.deps.prefixCache.bestReuse(laid, this.reuseShifted) : 0;
        this.deps.log?.(
          `restored ${tokens.length} tokens of repository KV from disk in ${Math.round(performance.now() - started)} ms; ${this.restoredTokens} still match the workspace`,
        );
      });
    } catch (error) {
      this.deps.log?.(`the stored repository KV could not be used (${(error as Error).message}); computing it again`);
      await store.remove(this.storeKey);
    }
  }

  // ---- status ----

  private setState(state: RepositoryStatus['state']): void {
    this.state = state;
    if (state === 'closed') this.message = undefined;
    this.emit();
    if (state !== 'warming' && state !== 'scanning') for (const resolve of this.readyWaiters.splice(0)) resolve(this.status());
  }

  private emit(): void {
    const status = this.status();
    for (const listener of this.listeners) {
      try {
        listener(status);
      } catch {
        // A listener that fails must not stop the warm-up.
      }
    }
  }
}
