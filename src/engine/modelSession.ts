// A loaded model with everything around it: tokenizer, prompt building, prefix KV reuse,
// and the request queue. Text in, text out; tokens are streamed as text chunks.
import type { CancelToken, NativeAddon, NativeEngine } from '../native/addon';
import { findChatTemplate, renderChat, withoutLeadingBos } from './chatTemplate';
import { buildFimPrompt, detectFimFormat, encodePromptParts, FimFormat, repositoryFileParts } from './fimPrompt';
import { PrefixCache } from './prefixCache';
import type { EngineStats, GenerateParams, GenerateResult, LoadedModel, LoadModelParams } from './protocol';
import { PRIORITY_CHAT, PRIORITY_COMPLETION, RequestCancelledError, RequestQueue } from './requestQueue';
import { tokenizerForModel } from '../models/modelTokenizer';
import { TextTokenizer } from './tokenizer';

export class ModelRequestError extends Error {
  readonly code = 'ERR_TIDAL_REQUEST';
}

const ENCODE_CACHE_MIN_CHARS = 512;
const ENCODE_CACHE_ENTRIES = 4096;

const DEFAULT_MAX_TOKENS = { chat: 1024, completion: 128, raw: 256 } as const;

export class ModelSession {
  private readonly prefixCache: PrefixCache;
  private readonly queue: RequestQueue;
  private readonly encodeCache = new Map<string, number[]>();
  readonly fimFormat: FimFormat | undefined;

  private constructor(
    private readonly engine: NativeEngine,
    readonly tokenizer: TextTokenizer,
    readonly modelDir: string,
    createCancelToken: () => CancelToken,
  ) {
    this.prefixCache = new PrefixCache(engine);
    this.queue = new RequestQueue(createCancelToken);
    this.fimFormat = detectFimFormat((token) => tokenizer.specialTokens.has(token) || tokenizer.hasToken(token));
  }

  static async load(addon: NativeAddon, params: LoadModelParams): Promise<ModelSession> {
    const tokenizer = tokenizerForModel(params.modelDir, params.tokenizerDir);
    const engine = await addon.loadModel(params.modelDir, params.options);
    if (tokenizer.vocabSize > engine.modelInfo.vocabSize) {
      await engine.unload();
      throw new ModelRequestError(
        `The tokenizer has ${tokenizer.vocabSize} tokens but the model only ${engine.modelInfo.vocabSize}: ` +
          'they do not belong together. Use the tokenizer files that came with the model.',
      );
    }
    return new ModelSession(engine, tokenizer, params.modelDir, () => new addon.CancelToken());
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

  // The prompt tokens of a request and the extra tokens that end it.
  buildPrompt(params: GenerateParams): { tokens: number[]; stopTokens: number[] } {
    const tokenizer = this.tokenizer;
    const stopTokens = new Set(tokenizer.endOfTurnTokenIds());
    const bos = tokenizer.config.add_bos_token && tokenizer.bosToken !== undefined ? tokenizer.tokenId(tokenizer.bosToken) : undefined;
    let tokens: number[];
    switch (params.kind) {
      case 'chat': {
        if (!params.messages || params.messages.length === 0) throw new ModelRequestError('A chat request needs at least one message.');
        const text = renderChat(tokenizer.config, params.messages, { addGenerationPrompt: true, modelName: this.modelDir });
        // [repository files, as completions render them][conversation]: the shared prefix
        // keeps one KV for both (see repositoryFileParts).
        const files = params.repoContext ?? [];
        const repoParts = repositoryFileParts(this.fimFormat, files, params.repoName, files.length > 0);
        if (repoParts.length === 0) {
          tokens = tokenizer.encode(text);
          break;
        }
        tokens = encodePromptParts(repoParts, (part) => this.encodeCached(part), (token) => tokenizer.tokenId(token));
        if (bos !== undefined) tokens.unshift(bos);
        tokens.push(...tokenizer.encode(bos !== undefined ? withoutLeadingBos(text, tokenizer.bosToken) : text));
        break;
      }
      case 'completion': {
        const format = this.fimFormat;
        if (format === undefined) {
          throw new ModelRequestError(
            'This model has no fill-in-the-middle tokens, so it cannot complete code at the cursor. ' +
              'Pick a code model (Qwen2.5-Coder, StarCoder2, DeepSeek-Coder, CodeLlama) for inline completions.',
          );
        }
        const parts = buildFimPrompt(format, {
          prefix: params.prefix ?? '',
          suffix: params.suffix ?? '',
          filePath: params.filePath,
          repoName: params.repoName,
          repoContext: params.repoContext,
        });
        tokens = encodePromptParts(parts, (text) => this.encodeCached(text), (token) => tokenizer.tokenId(token));
        if (bos !== undefined) tokens.unshift(bos);
        for (const name of format.stopTokens) {
          const id = tokenizer.tokenId(name);
          if (id !== undefined) stopTokens.add(id);
        }
        break;
      }
      case 'raw': {
        if (params.prompt === undefined || params.prompt.length === 0) throw new ModelRequestError('A raw request needs a prompt.');
        tokens = tokenizer.encode(params.prompt);
        if (bos !== undefined) tokens.unshift(bos);
        break;
      }
      default:
        throw new ModelRequestError(`Unknown request kind ${String((params as { kind: unknown }).kind)}.`);
    }
    if (tokens.length === 0) throw new ModelRequestError('The prompt is empty after tokenization.');
    const maxContext = this.engine.modelInfo.maxContext;
    if (maxContext > 0 && tokens.length >= maxContext) {
      throw new ModelRequestError(
        `The prompt has ${tokens.length} tokens but the model's context holds ${maxContext}. ` +
          'Lower tidal.context.maxTokens, or shorten the conversation.',
      );
    }
    return { tokens, stopTokens: [...stopTokens] };
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

  // Queues a request; onText receives the generated text chunk by chunk, in order.
  async generate(params: GenerateParams, onText?: (text: string) => void): Promise<GenerateResult> {
    const { tokens, stopTokens } = this.buildPrompt(params);
    const enqueued = performance.now();
    const isCompletion = params.kind === 'completion';
    try {
      return await this.queue.enqueue({
        id: params.requestId,
        priority: isCompletion ? PRIORITY_COMPLETION : PRIORITY_CHAT,
        group: isCompletion ? `completion:${params.client ?? ''}` : undefined,
        supersede: isCompletion,
        run: (cancel) => this.run(params, tokens, stopTokens, cancel, enqueued, onText),
      });
    } catch (error) {
      if (error instanceof RequestCancelledError) return this.emptyResult(params.requestId, tokens.length, enqueued);
      throw error;
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
      prefixCache: { slots: cache.slots, cachedTokens: cache.cachedTokens, requests: cache.requests, tokensReused: cache.tokensReused, tokensRecomputed: cache.tokensRecomputed },
      queue: { queued: queue.queued, running: queue.running ?? null, completed: queue.completed, cancelled: queue.cancelled },
    };
  }

  async unload(): Promise<void> {
    this.queue.cancelAll();
    await this.queue.whenIdle();
    await this.prefixCache.clear();
    await this.engine.unload();
  }

  private async run(
    params: GenerateParams,
    tokens: number[],
    stopTokens: number[],
    cancel: CancelToken,
    enqueued: number,
    onText?: (text: string) => void,
  ): Promise<GenerateResult> {
    const started = performance.now();
    let prepared;
    try {
      prepared = await this.prefixCache.prepare(tokens, cancel);
    } catch (error) {
      if (cancel.cancelled) return this.emptyResult(params.requestId, tokens.length, enqueued, started);
      throw error;
    }
    const prefilled = performance.now();
    const decoder = this.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    let text = '';
    const emit = (chunk: string) => {
      if (chunk.length === 0) return;
      text += chunk;
      try {
        onText?.(chunk);
      } catch {
        // A listener that fails must not stop the generation.
      }
    };
    try {
      const result = await this.engine.generate(
        prepared.sequence,
        prepared.lastTokens,
        {
          maxTokens: params.maxTokens ?? DEFAULT_MAX_TOKENS[params.kind],
          stopTokens,
          stopAtEos: true,
          sampling: params.sampling,
          attention: params.attention,
        },
        (token) => emit(decoder.push(token)),
        cancel,
      );
      emit(decoder.flush());
      const finished = performance.now();
      const selection = this.engine.usage().lastSelection;
      return {
        requestId: params.requestId,
        text,
        finishReason: result.finishReason,
        tokens: result.tokens.length,
        promptTokens: tokens.length,
        reusedTokens: prepared.reusedTokens,
        recomputedTokens: prepared.recomputedTokens,
        timings: {
          queuedMs: started - enqueued,
          prefillMs: prefilled - started + result.prefillSeconds * 1000,
          decodeMs: result.decodeSeconds * 1000,
          totalMs: finished - enqueued,
        },
        attention: selection ? { mode: selection.mode, contextLength: selection.contextLength, attendedFraction: selection.attendedFraction } : undefined,
      };
    } finally {
      const fork = prepared.sequence;
      await Promise.resolve()
        .then(() => this.engine.releaseSequence(fork))
        .catch(() => undefined);
    }
  }

  private emptyResult(requestId: string, promptTokens: number, enqueued: number, started = performance.now()): GenerateResult {
    const now = performance.now();
    return {
      requestId,
      text: '',
      finishReason: 'cancelled',
      tokens: 0,
      promptTokens,
      reusedTokens: 0,
      recomputedTokens: 0,
      timings: { queuedMs: started - enqueued, prefillMs: 0, decodeMs: 0, totalMs: now - enqueued },
    };
  }
}
