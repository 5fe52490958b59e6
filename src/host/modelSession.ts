// A loaded model with everything around it: tokenizer, prompt building, prefix KV reuse,
// and the request queue. Text in, text out; tokens are streamed as text chunks.
import { createHash, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { AttentionOptions, CancelToken, NativeAddon, NativeEngine, SamplingOptions } from '../native/addon';
import { findChatTemplate, renderChat, startChatRenderer, withoutLeadingBos } from '../core/prompt/chatTemplate';
import {
  buildFimPrompt,
  currentFileParts,
  detectFimFormat,
  encodePromptParts,
  fimCursorParts,
  FimFormat,
  repositoryFileParts,
  type PromptPart,
} from '../core/prompt/fimPrompt';
import { PrefixCache, type PrepareOptions, type PromptBlock, type PromptLayout } from './prefixCache';
import type {
  EngineStats,
  GenerateParams,
  GenerateResult,
  LoadedModel,
  PrefillProgress,
  LoadModelParams,
  RepositoryStatus,
  WorkspaceFileEvent,
  WorkspaceOpenParams,
} from '../core/protocol/protocol';
import { RepetitionGuard } from './repetitionGuard';
import { RepositoryService } from './repositoryService';
import { PRIORITY_BACKGROUND, PRIORITY_CHAT, PRIORITY_COMPLETION, RequestQueue } from './requestQueue';
import { tokenizerForModel } from '../core/tokenizer/modelTokenizer';
import { TextTokenizer } from '../core/tokenizer/tokenizer';
import { cancelledResult, DEFAULT_MAX_TOKENS, guardedListener } from '../core/protocol/generation';
import { TidalError, tidalErrorCode } from '../native/errors';
import { withWebGpuDevice } from '../webgpu';

const ENCODE_CACHE_MIN_CHARS = 512;
const ENCODE_CACHE_ENTRIES = 4096;

// The engine refuses a maxTokens above this (native/addon/convert.cpp).
const ENGINE_MAX_TOKENS = 1 << 20;

export interface SessionOptions {
  // How long one request may hold the engine, from leaving the queue to its last token; past
  // it the request stops with finish reason 'length' and the text it has. Default 300 s.
  requestTimeLimitMs?: number;
}

const DEFAULT_REQUEST_TIME_LIMIT_MS = 300_000;
// Seeds drawn for sampling requests that gave none: any the engine takes (it takes up to 2^53).
const DRAWN_SEED_LIMIT = 2 ** 48 - 1;

// Prefill passes of a request are sized from the measured prefill rate. The engine reads a
// cancel between the layers of a pass and stops within about two layers, so a pass may take
// about CANCEL_SECONDS per two layers: a superseded request still stops within CANCEL_SECONDS,
// and passes are as long as that allows (short passes use the GPU worse than long ones).
const CANCEL_SECONDS = 0.05;
const MIN_CHUNK = 256;
const MAX_CHUNK = 8192;
// A request's prefill is reported in parts of about PROGRESS_SECONDS at the measured rate
// (PROGRESS_TOKENS before anything was measured), so that a long wait shows its progress.
const PROGRESS_SECONDS = 0.5;
const PROGRESS_TOKENS = 1024;

/** Prefill progress of one request, without its id (the caller knows it). */
export type RequestProgress = Omit<PrefillProgress, 'requestId'>;

/**
 * Sampling with a temperature and no seed gets a fresh random seed, so that asking again gives
 * another answer; a given seed is kept, so that it reproduces one. Greedy decoding needs none.
 */
function withSeed(sampling: SamplingOptions | undefined): SamplingOptions | undefined {
  if (sampling === undefined || !((sampling.temperature ?? 0) > 0) || sampling.seed !== undefined) return sampling;
  return { ...sampling, seed: randomInt(DRAWN_SEED_LIMIT) };
}

/**
 * The repository files in a chat prompt, in order: the host's repository part (its blocks are
 * keyed `path#digest`, one per file), else the files the request carried. Only chat results
 * carry them, so completions (one per keystroke) do not build the list.
 */
function contextPathsOf(params: GenerateParams, prompt: BuiltPrompt): string[] {
  if (prompt.blocks.length > 0)
    return prompt.blocks.map((block) => {
      const hash = block.key.lastIndexOf('#');
      return hash > 0 ? block.key.slice(0, hash) : block.key;
    });
  return params.kind !== 'raw' && !params.repository ? (params.repositoryContext ?? []).map((file) => file.path) : [];
}

function concatTokens(head: Int32Array, tail: readonly number[]): Int32Array {
  const tokens = new Int32Array(head.length + tail.length);
  tokens.set(head, 0);
  tokens.set(tail, head.length);
  return tokens;
}

/** A prompt ready for the engine: its tokens, the repository blocks in it, what ends it. */
interface BuiltPrompt extends PromptLayout {
  stopTokens: number[];
  repositoryTokens: number;
  files: number; // repository files in the prompt
}

// What identifies a model for the stored KV: its files (path, size, modification time) and the
// engine options that shape the KV. The engine checks the model's shape again on load.
function modelKeyOf(params: LoadModelParams, info: NativeEngine['modelInfo']): string {
  const files: string[] = [];
  try {
    const stat = fs.statSync(params.modelDir);
    const names = stat.isDirectory()
      ? fs
          .readdirSync(params.modelDir)
          .filter((name) => /\.(json|safetensors|gguf)$/.test(name))
          .sort()
      : [''];
    for (const name of names) {
      const file = name === '' ? params.modelDir : path.join(params.modelDir, name);
      const fileStat = fs.statSync(file);
      files.push(`${name}:${fileStat.size}:${Math.round(fileStat.mtimeMs)}`);
    }
  } catch {
    files.push('unreadable');
  }
  const shape = [info.architecture, info.numLayers, info.numKvHeads, info.headDim, info.backend, info.maxContext, info.dtype].join(',');
  return createHash('sha1')
    .update(`${path.resolve(params.modelDir)}\0${files.join('|')}\0${shape}`)
    .digest('hex');
}

export class ModelSession {
  private readonly prefixCache: PrefixCache;
  private readonly queue: RequestQueue;
  private readonly encodeCache = new Map<string, number[]>();
  private readonly repository: RepositoryService;
  private readonly bosId: number | undefined;
  private prefillTokensPerSecond = 0;
  private readonly requestTimeLimitMs: number;
  readonly fimFormat: FimFormat | undefined;

  private constructor(
    private readonly engine: NativeEngine,
    readonly tokenizer: TextTokenizer,
    readonly modelDir: string,
    createCancelToken: () => CancelToken,
    modelKey: string,
    log: ((message: string) => void) | undefined,
    options: SessionOptions,
  ) {
    this.requestTimeLimitMs = options.requestTimeLimitMs ?? DEFAULT_REQUEST_TIME_LIMIT_MS;
    this.prefixCache = new PrefixCache(engine);
    this.queue = new RequestQueue(createCancelToken);
    this.fimFormat = detectFimFormat((token) => tokenizer.specialTokens.has(token) || tokenizer.hasToken(token));
    this.bosId = tokenizer.config.add_bos_token && tokenizer.bosToken !== undefined ? tokenizer.tokenId(tokenizer.bosToken) : undefined;
    this.repository = new RepositoryService({
      prefixCache: this.prefixCache,
      engine,
      tokenizer: {
        format: this.fimFormat,
        encode: (text) => this.encodeCached(text),
        tokenId: (token) => tokenizer.tokenId(token),
        bos: this.bosId,
      },
      runInBackground: (id, job, options) => this.queue.enqueue({ id, priority: PRIORITY_BACKGROUND, preemptible: options?.preemptible, run: job }),
      modelKey,
      log,
    });
    if (findChatTemplate(tokenizer.config) !== undefined) startChatRenderer();
  }

  static async load(addon: NativeAddon, params: LoadModelParams, log?: (message: string) => void, options: SessionOptions = {}): Promise<ModelSession> {
    const tokenizer = tokenizerForModel(params.modelDir, params.tokenizerDir, addon);
    const engine = await addon.loadModel(params.modelDir, await withWebGpuDevice(params.options));
    if (tokenizer.vocabSize > engine.modelInfo.vocabSize) {
      await engine.unload();
      throw new TidalError(
        'ERR_TIDAL_REQUEST',
        `The tokenizer has ${tokenizer.vocabSize} tokens but the model only ${engine.modelInfo.vocabSize}: ` +
          'they do not belong together. Use the tokenizer files that came with the model.',
      );
    }
    return new ModelSession(engine, tokenizer, params.modelDir, () => new addon.CancelToken(), modelKeyOf(params, engine.modelInfo), log, options);
  }

  // ---- the repository (workspace/* requests) ----

  /** Reads the workspace, restores its stored KV if any, and starts warming it. */
  openWorkspace(params: WorkspaceOpenParams): Promise<RepositoryStatus> {
    return this.repository.open(params);
  }

  workspaceEvents(events: readonly WorkspaceFileEvent[]): Promise<void> {
    return this.repository.applyEvents(events);
  }

  closeWorkspace(): Promise<void> {
    return this.repository.close();
  }

  repositoryStatus(): RepositoryStatus {
    return this.repository.status();
  }

  onRepositoryStatus(listener: (status: RepositoryStatus) => void): { dispose(): void } {
    return this.repository.onStatus(listener);
  }

  /** Resolves once the repository part is warm (or failed, or closed). */
  whenRepositoryReady(): Promise<RepositoryStatus> {
    return this.repository.whenReady();
  }

  /** Saves the repository's KV to the store now (normally done when idle). */
  flushRepository(): Promise<{ saved: boolean; bytes: number }> {
    return this.repository.flush();
  }

  info(): LoadedModel {
    const tokenizer = this.tokenizer;
    return {
      modelDir: this.modelDir,
      model: this.engine.modelInfo,
      tokenizer: {
        vocabSize: tokenizer.vocabSize,
        bosToken: tokenizer.bosToken ?? null,
        eosToken: tokenizer.eosToken ?? null,
        specialTokens: [...tokenizer.specialTokens.keys()],
        stopTokenIds: tokenizer.endOfTurnTokenIds(),
        hasChatTemplate: findChatTemplate(tokenizer.config) !== undefined,
        fim: this.fimFormat ? { family: this.fimFormat.family, order: this.fimFormat.order } : null,
      },
    };
  }

  // The prompt of a request: its tokens, the repository blocks in it, the tokens that end it.
  buildPrompt(params: GenerateParams): BuiltPrompt {
    const tokenizer = this.tokenizer;
    const stopTokens = new Set(tokenizer.endOfTurnTokenIds());
    const bos = this.bosId;
    let tokens: number[] | Int32Array;
    let blocks: readonly PromptBlock[] = [];
    let repositoryTokens = 0;
    let files = 0;
    const hostRepository = params.kind !== 'raw' && params.repository === true ? this.repository.promptPart(params.kind) : undefined;
    switch (params.kind) {
      case 'chat': {
        if (params.messages.length === 0) throw new TidalError('ERR_TIDAL_REQUEST', 'A chat request needs at least one message.');
        const text = renderChat(tokenizer.config, params.messages, { addGenerationPrompt: true, modelName: this.modelDir });
        // A continued answer: its start follows the generation prompt, encoded on its own so
        // that the conversation keeps the tokens (and the cached KV) of the first request.
        const answerStart = params.answerPrefix ? tokenizer.encode(params.answerPrefix) : [];
        const conversation = () => [...tokenizer.encode(bos !== undefined ? withoutLeadingBos(text, tokenizer.bosToken) : text), ...answerStart];
        if (hostRepository !== undefined && hostRepository.tokens.length > 0) {
          // [the host's repository part][conversation]: the same repository tokens as completions.
          tokens = concatTokens(hostRepository.tokens, conversation());
          blocks = hostRepository.blocks;
          repositoryTokens = hostRepository.tokens.length;
          files = hostRepository.files;
          break;
        }
        // [repository files, as completions render them][conversation]: the shared prefix
        // keeps one KV for both (see repositoryFileParts).
        const repoFiles = params.repository ? [] : (params.repositoryContext ?? []);
        const repoParts = repositoryFileParts(this.fimFormat, repoFiles, params.repoName, repoFiles.length > 0);
        if (repoParts.length === 0) {
          tokens = [...tokenizer.encode(text), ...answerStart];
          break;
        }
        files = repoFiles.length;
        tokens = encodePromptParts(
          repoParts,
          (part) => this.encodeCached(part),
          (token) => tokenizer.tokenId(token),
        );
        if (bos !== undefined) tokens.unshift(bos);
        tokens.push(...conversation());
        break;
      }
      case 'completion': {
        const format = this.fimFormat;
        if (format === undefined) {
          throw new TidalError(
            'ERR_TIDAL_REQUEST',
            'This model has no fill-in-the-middle tokens, so it cannot complete code at the cursor. ' +
              'Pick a code model (Qwen2.5-Coder, StarCoder2, DeepSeek-Coder, CodeLlama) for inline completions.',
          );
        }
        const cursor = { prefix: params.prefix, suffix: params.suffix ?? '' };
        if (params.repository === true) {
          // [the host's repository part][current file's path][cursor window]
          const repository = hostRepository?.tokens.length ? hostRepository : undefined;
          const tail: PromptPart[] = [];
          if (params.filePath !== undefined && repository !== undefined) tail.push(...currentFileParts(format, params.filePath));
          tail.push(...fimCursorParts(format, cursor));
          const tailTokens = this.encodeWindowParts(tail, cursor.prefix);
          if (repository !== undefined) {
            tokens = concatTokens(repository.tokens, tailTokens);
            blocks = repository.blocks;
            repositoryTokens = repository.tokens.length;
            files = repository.files;
          } else {
            tokens = tailTokens;
            if (bos !== undefined) tokens.unshift(bos);
          }
        } else {
          const parts = buildFimPrompt(format, {
            ...cursor,
            filePath: params.filePath,
            repoName: params.repoName,
            repositoryContext: params.repositoryContext,
          });
          files = params.repositoryContext?.length ?? 0;
          tokens = encodePromptParts(
            parts,
            (text) => this.encodeCached(text),
            (token) => tokenizer.tokenId(token),
          );
          if (bos !== undefined) tokens.unshift(bos);
        }
        for (const name of format.stopTokens) {
          const id = tokenizer.tokenId(name);
          if (id !== undefined) stopTokens.add(id);
        }
        break;
      }
      case 'raw': {
        if (params.prompt.length === 0) throw new TidalError('ERR_TIDAL_REQUEST', 'A raw request needs a prompt.');
        tokens = tokenizer.encode(params.prompt);
        if (bos !== undefined) tokens.unshift(bos);
        break;
      }
      default:
        throw new TidalError('ERR_TIDAL_REQUEST', `Unknown request kind ${String((params as { kind: unknown }).kind)}.`);
    }
    if (tokens.length === 0) throw new TidalError('ERR_TIDAL_REQUEST', 'The prompt is empty after tokenization.');
    const maxContext = this.engine.modelInfo.maxContext;
    if (maxContext > 0 && tokens.length >= maxContext) {
      throw new TidalError(
        'ERR_TIDAL_REQUEST',
        `The prompt has ${tokens.length} tokens but the model's context holds ${maxContext}. ` + 'Lower tidal.context.maxTokens, or shorten the conversation.',
      );
    }
    return { tokens: tokens instanceof Int32Array ? tokens : Int32Array.from(tokens), blocks, stopTokens: [...stopTokens], repositoryTokens, files };
  }

  // The cursor window's parts, each text part encoded on its own. The prefix is split at its
  // last line break: the lines before the cursor's line keep their tokens (and their cached
  // KV) while a person types on that line; only the line itself is encoded again.
  private encodeWindowParts(parts: PromptPart[], prefix: string): number[] {
    const encode = (text: string): number[] => {
      const at = prefix.length > 0 ? text.lastIndexOf(prefix) : -1;
      const cut = at >= 0 && at + prefix.length === text.length ? at + prefix.lastIndexOf('\n') + 1 : 0;
      if (cut > 0 && cut < text.length) return [...this.encodeCached(text.slice(0, cut)), ...this.tokenizer.encode(text.slice(cut))];
      return this.encodeCached(text);
    };
    return parts.flatMap((part) => encodePromptParts([part], encode, (token) => this.tokenizer.tokenId(token)));
  }

  // Repository files come back with every completion: long text segments keep their tokens,
  // so only the file being edited is re-tokenized per keystroke.
  private encodeCached(text: string): number[] {
    if (text.length < ENCODE_CACHE_MIN_CHARS) return this.tokenizer.encode(text);
    const hit = this.encodeCache.get(text);
    if (hit !== undefined) {
      this.encodeCache.delete(text);
      this.encodeCache.set(text, hit); // most recently used last
      return [...hit];
    }
    const ids = this.tokenizer.encode(text);
    this.encodeCache.set(text, ids);
    while (this.encodeCache.size > ENCODE_CACHE_ENTRIES) this.encodeCache.delete(this.encodeCache.keys().next().value as string);
    return [...ids];
  }

  // Queues a request; onText receives the generated text chunk by chunk, in order, and
  // onProgress how far its prompt's prefill is (only for prefills of several parts).
  async generate(params: GenerateParams, onText?: (text: string) => void, onProgress?: (progress: RequestProgress) => void): Promise<GenerateResult> {
    const built = performance.now(); // the request's arrival
    const prompt = this.buildPrompt(params);
    const hostMs = performance.now() - built;
    const enqueued = performance.now();
    const isCompletion = params.kind === 'completion';
    try {
      return await this.queue.enqueue({
        id: params.requestId,
        priority: isCompletion ? PRIORITY_COMPLETION : PRIORITY_CHAT,
        group: isCompletion ? `completion:${params.client ?? ''}` : undefined,
        supersede: isCompletion,
        run: (cancel) => this.withinTimeLimit(cancel, () => this.run(params, prompt, hostMs, cancel, built, onText, onProgress)),
      });
    } catch (error) {
      if (tidalErrorCode(error) === 'ERR_TIDAL_CANCELLED') return this.emptyResult(params.requestId, prompt.tokens.length, enqueued);
      throw error;
    }
  }

  /**
   * Prefills a completion's prompt in the background (lowest priority, after the warm-up's
   * current step) without generating; a newer prefetch of the same client replaces a queued
   * one. A completion at the same cursor then reuses all of it.
   */
  async prefetch(params: GenerateParams): Promise<void> {
    if (params.kind !== 'completion') return;
    const prompt = this.buildPrompt(params);
    try {
      await this.queue.enqueue({
        id: params.requestId,
        priority: PRIORITY_BACKGROUND,
        group: `prefetch:${params.client ?? ''}`,
        supersede: true,
        run: async (cancel) => {
          await this.prefixCache.prepare(prompt, this.requestPrepareOptions(cancel));
        },
      });
    } catch (error) {
      if (tidalErrorCode(error) !== 'ERR_TIDAL_CANCELLED') throw error;
    }
  }

  cancel(requestId: string): boolean {
    return this.queue.cancel(requestId);
  }

  stats(): EngineStats {
    const cache = this.prefixCache.stats();
    const queue = this.queue.stats();
    return {
      model: this.info(),
      usage: this.engine.usage(),
      prefixCache: {
        slots: cache.slots,
        cachedTokens: cache.cachedTokens,
        requests: cache.requests,
        tokensReused: cache.tokensReused,
        tokensShifted: cache.tokensShifted,
        tokensRecomputed: cache.tokensRecomputed,
        forks: cache.forks,
        ...(cache.lastForkMs !== undefined ? { lastForkMs: cache.lastForkMs } : {}),
      },
      repository: this.repository.status(),
      queue: { queued: queue.queued, running: queue.running ?? null, completed: queue.completed, cancelled: queue.cancelled },
    };
  }

  async unload(): Promise<void> {
    const closing = this.repository.close();
    this.queue.cancelAll();
    await closing;
    await this.queue.whenIdle();
    await this.prefixCache.clear();
    await this.engine.unload();
  }

  private async run(
    params: GenerateParams,
    prompt: BuiltPrompt,
    buildMs: number,
    cancel: CancelToken,
    arrived: number,
    onText?: (text: string) => void,
    onProgress?: (progress: RequestProgress) => void,
  ): Promise<GenerateResult> {
    const started = performance.now();
    const enqueued = arrived + buildMs;
    const { tokens, stopTokens } = prompt;
    let prepared;
    try {
      prepared = await this.prepareWithMemory(prompt, cancel, onProgress, params.attention);
    } catch (error) {
      if (cancel.cancelled) return this.emptyResult(params.requestId, tokens.length, enqueued, started);
      throw error;
    }
    const prefilled = performance.now();
    const decoder = this.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    let text = '';
    let firstTokenAt: number | undefined;
    // A chat answer that repeats itself is stopped through the request's cancel token; tokens
    // the engine still sends after that are not part of the answer.
    const guard = params.kind === 'chat' && params.stopOnRepetition ? new RepetitionGuard() : undefined;
    let repeated = false;
    let accepted = 0;
    const listener = guardedListener(onText);
    const emit = (chunk: string) => {
      if (chunk.length === 0) return;
      text += chunk;
      listener(chunk);
    };
    const sampling = withSeed(params.sampling);
    try {
      const result = await this.engine.generate(
        prepared.sequence,
        prepared.lastTokens,
        {
          maxTokens: this.maxTokensFor(params, tokens.length),
          stopTokens,
          stopAtEos: true,
          sampling,
          attention: params.attention,
        },
        (token) => {
          if (repeated) return;
          accepted++;
          firstTokenAt ??= performance.now();
          emit(decoder.push(token));
          if (guard?.push(token)) {
            repeated = true;
            cancel.cancel();
          }
        },
        cancel,
      );
      emit(decoder.flush());
      const finished = performance.now();
      const selection = this.engine.usage().lastSelection;
      return {
        requestId: params.requestId,
        text,
        finishReason: repeated ? 'repetition' : result.finishReason,
        tokens: repeated ? accepted : result.tokens.length,
        promptTokens: tokens.length,
        reusedTokens: prepared.reusedTokens,
        shiftedTokens: prepared.shiftedTokens,
        recomputedTokens: prepared.recomputedTokens,
        repositoryTokens: prompt.repositoryTokens,
        contextFiles: prompt.files,
        ...(params.kind === 'chat' ? { contextPaths: contextPathsOf(params, prompt) } : {}),
        timings: {
          queuedMs: started - enqueued,
          hostMs: buildMs + prepared.planMs,
          // Before generate: compaction, trim and prefill of all but the last prompt token. The
          // last token's forward pass is part of the first decode step.
          prefillMs: prefilled - started - prepared.planMs,
          ...(firstTokenAt !== undefined ? { firstDecodeMs: firstTokenAt - prefilled, firstTokenMs: firstTokenAt - arrived } : {}),
          decodeMs: result.decodeSeconds * 1000,
          totalMs: finished - enqueued,
        },
        attention: selection ? { mode: selection.mode, contextLength: selection.contextLength, attendedFraction: selection.attendedFraction } : undefined,
        ...(sampling?.seed !== undefined ? { seed: sampling.seed } : {}),
      };
    } finally {
      // Generated on the slot itself: trim it back to the prompt, keeping the prompt's KV.
      // With a sparse first step the prompt's last K/V entry is a sparse one, with a sparse
      // prefill the recomputed ones are: not kept for reuse.
      const sparseLast = params.attention?.sparseFirstStep === true && (params.attention.mode ?? 'full') !== 'full';
      const keep = Math.min(sparseLast ? tokens.length - 1 : Infinity, prepared.sparseFrom ?? Infinity);
      await this.prefixCache.finish(prepared.sequence, prompt, keep).catch(() => undefined);
    }
  }

  // Stops a request that holds the engine past the time limit through its cancel token; what it
  // stopped then ends with 'length' (the limit is a length in time), not 'cancelled'.
  private async withinTimeLimit(cancel: CancelToken, run: () => Promise<GenerateResult>): Promise<GenerateResult> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      cancel.cancel();
    }, this.requestTimeLimitMs);
    try {
      const result = await run();
      return timedOut && result.finishReason === 'cancelled' ? { ...result, finishReason: 'length' } : result;
    } finally {
      clearTimeout(timer);
    }
  }

  // The tokens a request may generate: what it asked for (or its kind's default), at most the
  // room its prompt leaves in the context, so it ends with 'length' instead of running into the
  // end of the context.
  private maxTokensFor(params: GenerateParams, promptTokens: number): number {
    const asked = params.maxTokens ?? DEFAULT_MAX_TOKENS[params.kind];
    const maxContext = this.engine.modelInfo.maxContext;
    const room = maxContext > 0 ? maxContext - promptTokens : ENGINE_MAX_TOKENS;
    return Math.max(0, Math.min(asked, room, ENGINE_MAX_TOKENS));
  }

  // A prompt that does not fit the KV memory next to another slot gets the memory of the other
  // slots (they are released), once; a second failure reaches the caller with the engine's words.
  private async prepareWithMemory(prompt: BuiltPrompt, cancel: CancelToken, onProgress?: (progress: RequestProgress) => void, attention?: AttentionOptions) {
    // The prefix cache decides whether the attention's sparsePrefill applies to this prefill.
    const options = { ...this.requestPrepareOptions(cancel), ...(onProgress ? this.progressOptions(onProgress) : {}), attention };
    let prepared;
    try {
      prepared = await this.prefixCache.prepare(prompt, options);
    } catch (error) {
      if (tidalErrorCode(error) !== 'ERR_TIDAL_OUT_OF_MEMORY' || cancel.cancelled) throw error;
      if ((await this.prefixCache.shrink()) === 0) throw error;
      this.prefixCache.setMaxSlots(1);
      prepared = await this.prefixCache.prepare(prompt, options);
    }
    if (prepared.recomputedTokens >= MIN_CHUNK && prepared.engineMs > 0) {
      const rate = (prepared.recomputedTokens / prepared.engineMs) * 1000;
      this.prefillTokensPerSecond = this.prefillTokensPerSecond > 0 ? 0.5 * this.prefillTokensPerSecond + 0.5 * rate : rate;
    }
    return prepared;
  }

  /** How a request (or a prefetch) brings a slot to its prompt. */
  private requestPrepareOptions(cancel: CancelToken): PrepareOptions {
    return { cancel, reuseShifted: this.repository.reuseShifted, chunk: this.requestChunk() };
  }

  /**
   * Reports a request's prefill in parts of about PROGRESS_SECONDS; the time left is the
   * tokens left at the rate this prefill has had so far (before its first part: the rate of
   * earlier requests, if any).
   */
  private progressOptions(onProgress: (progress: RequestProgress) => void): Pick<PrepareOptions, 'onProgress' | 'progressTokens'> {
    const started = performance.now();
    const earlierRate = this.prefillTokensPerSecond;
    const progressTokens = earlierRate > 0 ? Math.max(MIN_CHUNK, Math.round(earlierRate * PROGRESS_SECONDS)) : PROGRESS_TOKENS;
    return {
      progressTokens,
      onProgress: (done, total) => {
        const seconds = (performance.now() - started) / 1000;
        const rate = seconds > 0 ? done / seconds : earlierRate;
        onProgress({ done, total, ...(rate > 0 && done < total ? { etaMs: Math.round(((total - done) / rate) * 1000) } : {}) });
      },
    };
  }

  /** Tokens per prefill pass for a request: two layers' share of it take about CANCEL_SECONDS at the measured rate. */
  private requestChunk(): number | undefined {
    if (this.prefillTokensPerSecond <= 0) return undefined;
    const layerPairs = Math.max(1, (this.engine.modelInfo.numLayers || 2) / 2);
    return Math.round(Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, this.prefillTokensPerSecond * CANCEL_SECONDS * layerPairs)));
  }

  private emptyResult(requestId: string, promptTokens: number, enqueued: number, started = performance.now()): GenerateResult {
    const now = performance.now();
    return cancelledResult(requestId, promptTokens, { queuedMs: started - enqueued, prefillMs: 0, decodeMs: 0, totalMs: now - enqueued });
  }
}
