// One inline completion from cursor to ghost text, with no editor dependency: the prompt
// window around the cursor, the cache, the typing pause, supersession of the previous request,
// the streamed generation with its stop rules (a rule that fires cancels the engine request),
// and de-duplication against the text after the cursor. The VS Code provider is a thin
// adapter over this (src/extension/inlineCompletionProvider.ts); the typing benchmark drives
// it directly.
import type { AttentionOptions, GenerateParams, GenerateResult } from '../engine/protocol';
import type { GenerationBackend } from '../extension/generationBackend';
import { NO_REPOSITORY, repositoryParams, type RepositoryPart } from '../extension/repositoryPart';
import { CompletionCache } from './completionCache';
import { chooseCompletionMode, type CompletionMode, type CompletionModeSetting } from './completionMode';
import { linkedAbortController, pause } from './debounce';
import { cutPromptWindow } from './promptWindow';
import { applyStopRules, type StopContext, type StopResult } from './stopRules';
import { removeSuffixOverlap } from './suffixOverlap';

export interface CompletionConfig {
  enabled: boolean;
  debounceMs: number;
  mode: CompletionModeSetting;
  maxPrefixChars: number;
  maxSuffixChars: number;
  maxLines: number;
  maxTokens: { singleLine: number; multiLine: number };
  attention?: AttentionOptions;
  repoName?: string;
}

export interface CompletionRequest {
  /** Identifies the document (its URI); the cache is per document. */
  documentKey: string;
  /** Workspace-relative path (left out of the repository files rendered by the extension). */
  filePath?: string;
  text: string;
  /** Cursor offset in `text` (UTF-16). */
  offset: number;
  tabSize?: number;
}

export interface CompletionServiceDeps {
  backend: () => GenerationBackend;
  config: () => CompletionConfig;
  /**
   * The repository part of a request in `excludePath`: the engine host's own, or the files
   * rendered by the extension with that file left out.
   */
  repositoryContext?: (excludePath: string | undefined) => Promise<RepositoryPart>;
  newRequestId: () => string;
  now?: () => number;
}

export interface CompletionOutcome {
  text: string;
  source: 'engine' | 'cache';
  mode: CompletionMode;
  requestId?: string;
  /** From the request to the engine (after the pause) to its first streamed text. */
  firstTokenMs?: number;
  totalMs: number;
  /** A stop rule ended the generation before the engine did. */
  stoppedEarly: boolean;
  /** The model's text before stop rules and de-duplication. */
  rawText?: string;
  result?: GenerateResult;
  repositoryTokens?: number;
}

export interface CompletionCounters {
  /** Requests sent to the engine. */
  started: number;
  finished: number;
  /** Requests superseded or cancelled by the editor before they finished. */
  cancelled: number;
  failed: number;
  cacheHits: number;
  inFlight: number;
}

/** The engine request of a completion (or of its prefetch) at the cursor window `window`. */
function completionParams(
  requestId: string,
  window: { prefix: string; suffix: string },
  request: CompletionRequest,
  config: CompletionConfig,
  repository: RepositoryPart,
  maxTokens: number,
): GenerateParams {
  return {
    requestId,
    kind: 'completion',
    prefix: window.prefix,
    suffix: window.suffix,
    filePath: request.filePath,
    repoName: config.repoName,
    ...repositoryParams(repository),
    maxTokens,
    attention: config.attention,
    sampling: { temperature: 0 },
  };
}

export class CompletionService {
  private readonly cache = new CompletionCache();
  private current: AbortController | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly now: () => number;
  readonly counters: CompletionCounters = { started: 0, finished: 0, cancelled: 0, failed: 0, cacheHits: 0, inFlight: 0 };
  last: CompletionOutcome | undefined;
  /** The last outcome that came from the engine (not the cache): its latency and prompt size. */
  lastFromEngine: CompletionOutcome | undefined;
  lastError: string | undefined;

  constructor(private readonly deps: CompletionServiceDeps) {
    this.now = deps.now ?? (() => performance.now());
  }

  /** Called whenever the counters or the last outcome change. */
  onDidChange(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  clearCache(documentKey?: string): void {
    this.cache.clear(documentKey);
  }

  /**
   * Computes the prompt of a completion at `request`'s cursor ahead of time (the editor
   * switched to a file): the engine prefills it in the background, so the first completion
   * there costs what a keystroke costs. Only backends that keep a KV cache do anything.
   */
  async prefetch(request: CompletionRequest): Promise<void> {
    const config = this.deps.config();
    const backend = this.deps.backend();
    if (!config.enabled || backend.prefetch === undefined) return;
    const window = cutPromptWindow(request.text, request.offset, { maxPrefixChars: config.maxPrefixChars, maxSuffixChars: config.maxSuffixChars });
    const repository = this.deps.repositoryContext ? await this.deps.repositoryContext(request.filePath) : NO_REPOSITORY;
    backend.prefetch(completionParams(this.deps.newRequestId(), window, request, config, repository, 1));
  }

  /**
   * The completion at the cursor, or undefined when there is none to show: completions are
   * off, `signal` aborted (the editor moved on), or the request failed (see `lastError`).
   */
  async complete(request: CompletionRequest, signal?: AbortSignal): Promise<CompletionOutcome | undefined> {
    const config = this.deps.config();
    if (!config.enabled || signal?.aborted) return undefined;
    const { text, offset } = request;
    const window = cutPromptWindow(text, offset, { maxPrefixChars: config.maxPrefixChars, maxSuffixChars: config.maxSuffixChars });
    const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
    const lineEnd = text.indexOf('\n', offset);
    const linePrefix = text.slice(lineStart, offset);
    const lineSuffix = text.slice(offset, lineEnd < 0 ? text.length : lineEnd);
    const mode = chooseCompletionMode(linePrefix, lineSuffix, config.mode);
    const cacheKey = { documentKey: request.documentKey, prefix: window.prefix, suffix: window.suffix };

    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) {
      this.counters.cacheHits++;
      this.last = { text: cached, source: 'cache', mode, totalMs: 0, stoppedEarly: false };
      this.changed();
      return this.last;
    }
    if (!(await pause(config.debounceMs, signal))) return undefined;

    // A newer request supersedes the one still running, all the way into the engine.
    this.current?.abort();
    const request$ = linkedAbortController(signal);
    this.current = request$;
    const generation = linkedAbortController(request$.signal);
    const stopContext: StopContext = { mode, linePrefix, suffix: window.suffix, maxLines: config.maxLines, tabSize: request.tabSize };
    const requestId = this.deps.newRequestId();
    const started = this.now();
    let firstTokenAt: number | undefined;
    let generated = '';
    let stop: StopResult = { text: '', done: false };
    this.counters.started++;
    this.counters.inFlight++;
    this.changed();
    try {
      const repository = this.deps.repositoryContext ? await this.deps.repositoryContext(request.filePath) : NO_REPOSITORY;
      if (request$.signal.aborted) {
        this.counters.cancelled++;
        return undefined;
      }
      const result = await this.deps.backend().generate(
        completionParams(requestId, window, request, config, repository, mode === 'single-line' ? config.maxTokens.singleLine : config.maxTokens.multiLine),
        (chunk) => {
          firstTokenAt ??= this.now();
          generated += chunk;
          if (stop.done) return;
          stop = applyStopRules(generated, stopContext, false);
          if (stop.done) generation.abort();
        },
        generation.signal,
      );
      if (request$.signal.aborted || (result.finishReason === 'cancelled' && !stop.done)) {
        this.counters.cancelled++;
        return undefined;
      }
      const stoppedEarly = stop.done;
      if (!stop.done) stop = applyStopRules(generated, stopContext, true);
      const completion = removeSuffixOverlap(stop.text, window.suffix);
      this.cache.set(cacheKey, completion);
      this.counters.finished++;
      this.lastError = undefined;
      this.last = {
        text: completion,
        source: 'engine',
        mode,
        requestId,
        firstTokenMs: firstTokenAt === undefined ? undefined : firstTokenAt - started,
        totalMs: this.now() - started,
        stoppedEarly,
        rawText: generated,
        result,
        repositoryTokens: result.repositoryTokens ?? repository.tokens,
      };
      this.lastFromEngine = this.last;
      return this.last;
    } catch (error) {
      if (request$.signal.aborted) {
        this.counters.cancelled++;
        return undefined;
      }
      this.counters.failed++;
      this.lastError = (error as Error).message ?? String(error);
      return undefined;
    } finally {
      this.counters.inFlight--;
      if (this.current === request$) this.current = undefined;
      this.changed();
    }
  }

  /** Cancels the request in flight, if any (completions turned off, editor closed). */
  cancelAll(): void {
    this.current?.abort();
  }

  private changed(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // A failing listener must not break completions.
      }
    }
  }
}
