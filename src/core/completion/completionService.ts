// One inline completion from cursor to ghost text, with no editor dependency: the prompt
// window around the cursor, the cache, the typing pause, supersession of the previous request,
// the streamed generation with its stop rules (a rule that fires cancels the engine request),
// and de-duplication against the text after the cursor. The VS Code provider is a thin
// adapter over this (src/vscode/inlineCompletionProvider.ts); the typing benchmark drives
// it directly.
import type { AttentionOptions, GenerateParams, GenerateResult, SamplingOptions } from '../protocol/protocol';
import type { GenerationBackend } from '../backend/generationBackend';
import { NO_REPOSITORY, repositoryParams, type RepositoryPart } from '../backend/repositoryPart';
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
  /**
   * How many different completions to look for (1 while typing; ALTERNATIVE_COUNT on a manual
   * trigger, so the editor can cycle through them). At most MAX_CANDIDATES.
   */
  candidates?: number;
}

/** Candidates asked for on a manual trigger: the greedy one and two sampled ones. */
export const ALTERNATIVE_COUNT = 3;
export const MAX_CANDIDATES = 5;
/** Sampling of the alternatives after the greedy one: varied, still likely code. */
export const ALTERNATIVE_TEMPERATURE = 0.8;
export const ALTERNATIVE_TOP_P = 0.95;

interface Candidate {
  text: string;
  /** Undefined when the text came from the cache. */
  requestId?: string;
  firstTokenMs?: number;
  stoppedEarly: boolean;
  rawText?: string;
  result?: GenerateResult;
}

/**
 * The completions worth showing, in order: empty ones and repeats left out. Two that differ
 * only in trailing white space look the same as ghost text, so they count as one.
 */
export function distinctCompletions(texts: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const text of texts) {
    const key = text.trimEnd();
    if (key.length === 0 || seen.has(key)) continue;
    seen.add(key);
    out.push(text);
  }
  return out;
}

export interface CompletionServiceDeps {
  backend: () => GenerationBackend;
  config: () => CompletionConfig;
  /**
   * The repository part of a request in `excludePath`: the engine host's own, or the files
   * rendered by the extension with that file left out.
   */
  repositoryPart?: (excludePath: string | undefined) => Promise<RepositoryPart>;
  newRequestId: () => string;
  now?: () => number;
  /** Seeds of the sampled alternatives; default random. */
  seed?: () => number;
}

export interface CompletionOutcome {
  text: string;
  /** The distinct non-empty completions found, `text` first when it is not empty (one unless more were asked for). */
  alternatives: string[];
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
  sampling: SamplingOptions = { temperature: 0 },
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
    sampling,
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

  /** Drops the last outcome's figures (another model is loading: they describe the old one). */
  forgetFigures(): void {
    this.last = undefined;
    this.lastFromEngine = undefined;
    this.lastError = undefined;
    for (const listener of this.listeners) listener();
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
    const repository = this.deps.repositoryPart ? await this.deps.repositoryPart(request.filePath) : NO_REPOSITORY;
    backend.prefetch(completionParams(this.deps.newRequestId(), window, request, config, repository, 1));
  }

  /**
   * The completion at the cursor, or undefined when there is none to show: completions are
   * off, `signal` aborted (the editor moved on), or the request failed (see `lastError`).
   *
   * With `request.candidates` above 1 (a manual trigger) there is no typing pause, and after
   * the greedy completion the engine is asked for more, one after another, sampled with a
   * temperature and a seed each; the distinct ones are in `alternatives`, the greedy one first.
   */
  async complete(request: CompletionRequest, signal?: AbortSignal): Promise<CompletionOutcome | undefined> {
    const config = this.deps.config();
    if (!config.enabled || signal?.aborted) return undefined;
    const candidates = Math.max(1, Math.min(MAX_CANDIDATES, Math.floor(request.candidates ?? 1)));
    const { text, offset } = request;
    const window = cutPromptWindow(text, offset, { maxPrefixChars: config.maxPrefixChars, maxSuffixChars: config.maxSuffixChars });
    const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
    const lineEnd = text.indexOf('\n', offset);
    const linePrefix = text.slice(lineStart, offset);
    const lineSuffix = text.slice(offset, lineEnd < 0 ? text.length : lineEnd);
    const mode = chooseCompletionMode(linePrefix, lineSuffix, config.mode);
    const cacheKey = { documentKey: request.documentKey, prefix: window.prefix, suffix: window.suffix };

    const cached = this.cache.get(cacheKey);
    if (cached !== undefined && candidates === 1) {
      this.counters.cacheHits++;
      this.last = { text: cached, alternatives: [cached], source: 'cache', mode, totalMs: 0, stoppedEarly: false };
      this.changed();
      return this.last;
    }
    if (candidates === 1 && !(await pause(config.debounceMs, signal))) return undefined;

    // A newer request supersedes the one still running, all the way into the engine.
    this.current?.abort();
    const request$ = linkedAbortController(signal);
    this.current = request$;
    const stopContext: StopContext = { mode, linePrefix, suffix: window.suffix, maxLines: config.maxLines, tabSize: request.tabSize };
    const maxTokens = mode === 'single-line' ? config.maxTokens.singleLine : config.maxTokens.multiLine;
    const started = this.now();
    this.counters.inFlight++;
    this.changed();
    try {
      const repository = this.deps.repositoryPart ? await this.deps.repositoryPart(request.filePath) : NO_REPOSITORY;
      // Superseded before any engine request: nothing started, so nothing counts as cancelled
      // (started = finished + cancelled + failed).
      if (request$.signal.aborted) return undefined;
      const generateOne = (sampling: SamplingOptions) =>
        this.generateCandidate(window, request, config, repository, maxTokens, sampling, stopContext, request$.signal);

      let first: Candidate | 'cancelled' | 'failed';
      if (cached !== undefined) {
        this.counters.cacheHits++;
        first = { text: cached, stoppedEarly: false };
      } else {
        first = await generateOne({ temperature: 0 });
        if (first === 'cancelled' || first === 'failed') return undefined;
        this.cache.set(cacheKey, first.text);
      }
      const alternatives = [first.text];
      for (let i = 1; i < candidates; i++) {
        const other = await generateOne({ temperature: ALTERNATIVE_TEMPERATURE, topP: ALTERNATIVE_TOP_P, seed: this.seed() });
        if (other === 'cancelled') return undefined;
        // A failed alternative leaves the ones already there; the next may still come.
        if (other !== 'failed') alternatives.push(other.text);
      }
      const distinct = distinctCompletions(alternatives);
      this.last = {
        text: first.text,
        alternatives: distinct,
        source: first.requestId === undefined ? 'cache' : 'engine',
        mode,
        requestId: first.requestId,
        firstTokenMs: first.firstTokenMs,
        totalMs: this.now() - started,
        stoppedEarly: first.stoppedEarly,
        rawText: first.rawText,
        result: first.result,
        repositoryTokens: first.result ? (first.result.repositoryTokens ?? repository.tokens) : undefined,
      };
      if (first.result) this.lastFromEngine = this.last;
      return this.last;
    } finally {
      this.counters.inFlight--;
      if (this.current === request$) this.current = undefined;
      this.changed();
    }
  }

  /**
   * One engine request at the window: its text after the stop rules and de-duplication against
   * the suffix, 'cancelled' when `cancelSignal` aborted (or the engine cancelled it), 'failed'
   * when it failed (lastError says why).
   */
  private async generateCandidate(
    window: { prefix: string; suffix: string },
    request: CompletionRequest,
    config: CompletionConfig,
    repository: RepositoryPart,
    maxTokens: number,
    sampling: SamplingOptions,
    stopContext: StopContext,
    cancelSignal: AbortSignal,
  ): Promise<Candidate | 'cancelled' | 'failed'> {
    const generation = linkedAbortController(cancelSignal);
    const requestId = this.deps.newRequestId();
    const started = this.now();
    let firstTokenAt: number | undefined;
    let generated = '';
    let stop: StopResult = { text: '', done: false };
    this.counters.started++;
    this.changed();
    try {
      const result = await this.deps.backend().generate(
        completionParams(requestId, window, request, config, repository, maxTokens, sampling),
        (chunk) => {
          firstTokenAt ??= this.now();
          generated += chunk;
          if (stop.done) return;
          stop = applyStopRules(generated, stopContext, false);
          if (stop.done) generation.abort();
        },
        generation.signal,
      );
      if (cancelSignal.aborted || (result.finishReason === 'cancelled' && !stop.done)) {
        this.counters.cancelled++;
        return 'cancelled';
      }
      const stoppedEarly = stop.done;
      if (!stop.done) stop = applyStopRules(generated, stopContext, true);
      this.counters.finished++;
      this.lastError = undefined;
      return {
        text: removeSuffixOverlap(stop.text, window.suffix),
        requestId,
        firstTokenMs: firstTokenAt === undefined ? undefined : firstTokenAt - started,
        stoppedEarly,
        rawText: generated,
        result,
      };
    } catch (error) {
      if (cancelSignal.aborted) {
        this.counters.cancelled++;
        return 'cancelled';
      }
      this.counters.failed++;
      this.lastError = (error as Error).message ?? String(error);
      return 'failed';
    }
  }

  private seed(): number {
    return this.deps.seed ? this.deps.seed() : Math.floor(Math.random() * 2 ** 31);
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
