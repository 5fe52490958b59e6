// The `remote` backend: an OpenAI-compatible server (`tidal serve`, vLLM, SGLang) at
// tidal.remoteUrl. Chat goes to /chat/completions, completions and raw prompts to
// /completions, always streamed (SSE). Aborting the signal aborts the HTTP request, which
// cancels the generation on the server.
import { randomUUID } from 'node:crypto';

import { buildFimPrompt, FimFamily, fimFormatOfFamily, FimFormat, promptText, repositoryContextParts } from '../prompt/fimPrompt';
import type {
  ChatGenerateParams,
  ChatMessageParam,
  CompletionGenerateParams,
  ContextFileParam,
  FinishReason,
  GenerateParams,
  GenerateResult,
} from '../protocol/protocol';
import { DEFAULT_MAX_TOKENS, guardedListener } from '../protocol/generation';
import type { GenerationBackend } from './generationBackend';

export interface RemoteBackendOptions {
  baseUrl: string; // e.g. http://127.0.0.1:8765/v1
  apiKey?: string;
  model?: string; // empty: the first model the server lists
  fetchImpl?: typeof fetch;
  timeoutMs?: number; // longest wait for the server's answer or its next chunk
  // Sent as OpenAI's `user`: a server supersedes completions per user, so this window's
  // completions never cancel another editor's. Default: a random id per backend.
  client?: string;
}

// What the server says about the model it serves (GET /models).
interface ServedModel {
  id: string;
  tidal: boolean; // our own server: takes `suffix` as FIM and reports its FIM format
  fileSeparator?: string;
  repoName?: string;
  fim?: FimFormat; // other servers: the FIM format inferred from the model's name
}

const DEFAULT_TIMEOUT_MS = 120_000;

// The FIM families, to recognise a model served elsewhere by its name.
const FAMILY_NAMES: { pattern: RegExp; family: FimFamily }[] = [
  { pattern: /qwen.*coder/i, family: 'qwen' },
  { pattern: /starcoder/i, family: 'starcoder' },
  { pattern: /deepseek.*coder/i, family: 'deepseek' },
  { pattern: /codellama|code-llama/i, family: 'codellama' },
];

export function inferFimFormat(modelId: string): FimFormat | undefined {
  const known = FAMILY_NAMES.find((entry) => entry.pattern.test(modelId));
  return known ? fimFormatOfFamily(known.family) : undefined;
}

// The repository in front of the prefix, as the local FIM prompt lays it out (see
// repositoryContextParts): with a file-separator token each file is <sep>path\ncontent\n; without
// one, a `// File:` line.
export function repositoryContextText(
  params: Omit<CompletionGenerateParams | ChatGenerateParams, 'kind'>,
  fileSeparator?: string,
  repoNameToken?: string,
): string {
  return promptText(repositoryContextParts({ fileSeparator, repoName: repoNameToken }, params));
}

// The repository part of a chat: to our own server as the `repository` extra, which it puts
// before the conversation as the local engine does (so the prefix it caches is shared with
// completions); to other servers as a system message in front of the conversation.
export function chatRepository(
  params: ChatGenerateParams,
  served: Pick<ServedModel, 'tidal'>,
): { messages: ChatMessageParam[]; repository?: { name?: string; files: ContextFileParam[] } } {
  const messages = params.messages;
  const files = params.repositoryContext ?? [];
  if (files.length === 0) return { messages };
  if (served.tidal) return { messages, repository: { name: params.repoName, files } };
  const repository = `Files of the repository${params.repoName ? ` ${params.repoName}` : ''}:\n\n${repositoryContextText(params)}`;
  const [first, ...rest] = messages;
  if (first?.role === 'system') return { messages: [{ role: 'system', content: `${repository}\n${first.content}` }, ...rest] };
  return { messages: [{ role: 'system', content: repository }, ...messages] };
}

class RemoteHttpError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

function describeFetchFailure(error: unknown, url: string): Error {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (error as { code?: string }).code;
  const origin = new URL(url).origin;
  if (code === 'ECONNREFUSED') {
    return new Error(`Could not connect to ${origin} (connection refused): is the server running there? Check tidal.remoteUrl.`);
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new Error(`The host of ${origin} was not found. Check tidal.remoteUrl.`);
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
    return new Error(`The connection to ${origin} was closed before the answer was complete. Check the server's log and tidal.remoteUrl.`);
  }
  const detail = cause?.message ?? (error as Error)?.message ?? String(error);
  return new Error(`Could not talk to the server at ${origin}: ${detail}. Check tidal.remoteUrl.`);
}

async function serverMessage(response: Response): Promise<{ message: string; code?: string }> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown; code?: unknown } | string; message?: unknown; detail?: unknown };
    const message = typeof body.error === 'string' ? body.error : (body.error?.message ?? body.message ?? body.detail);
    const code = typeof body.error === 'object' && typeof body.error.code === 'string' ? body.error.code : undefined;
    if (typeof message === 'string' && message.length > 0) return { message, code };
  } catch {
    // not JSON: the text itself
  }
  const trimmed = text.trim().slice(0, 300);
  return { message: trimmed.length > 0 ? trimmed : response.statusText };
}

export class RemoteBackend implements GenerationBackend {
  readonly kind = 'remote' as const;
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly client: string;
  private served: Promise<ServedModel> | undefined;

  constructor(private readonly options: RemoteBackendOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new Error(`tidal.remoteUrl "${options.baseUrl}" is not a URL; use e.g. http://127.0.0.1:8765/v1.`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`tidal.remoteUrl must start with http:// or https://, not "${options.baseUrl}".`);
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = options.fetchImpl ?? fetch;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.client = options.client ?? randomUUID();
  }

  async generate(params: GenerateParams, onText: (chunk: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
    const started = performance.now();
    let text = '';
    let firstChunkAt: number | undefined;
    const result = (finishReason: FinishReason, usage?: Usage): GenerateResult => {
      const finished = performance.now();
      const promptTokens = usage?.prompt_tokens ?? 0;
      const reusedTokens = Math.min(usage?.prompt_tokens_details?.cached_tokens ?? 0, promptTokens);
      const firstAt = firstChunkAt ?? finished;
      return {
        requestId: params.requestId,
        text,
        finishReason,
        tokens: usage?.completion_tokens ?? 0,
        promptTokens,
        reusedTokens,
        recomputedTokens: promptTokens - reusedTokens,
        timings: { queuedMs: 0, prefillMs: firstAt - started, decodeMs: finished - firstAt, totalMs: finished - started },
      };
    };
    if (signal?.aborted) return result('cancelled');

    // One controller aborts the fetch for the caller's signal and for our own timeout.
    const controller = new AbortController();
    const abort = () => controller.abort();
    signal?.addEventListener('abort', abort, { once: true });
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const armTimeout = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.timeoutMs);
    };
    armTimeout();
    let url = this.baseUrl;
    try {
      const served = await this.servedModel(controller.signal);
      const request = this.requestFor(params, served);
      url = `${this.baseUrl}${request.path}`;
      const response = await this.fetchImpl(url, {
        method: 'POST',
        headers: { ...this.headers(), 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        body: JSON.stringify(request.body),
        signal: controller.signal,
      });
      if (!response.ok) throw await this.httpError(response, `POST ${request.path}`);
      armTimeout();
      const listener = guardedListener(onText);
      const emit = (chunk: string) => {
        if (chunk.length === 0) return;
        firstChunkAt ??= performance.now();
        text += chunk;
        listener(chunk);
      };
      const answer = (response.headers.get('content-type') ?? '').includes('text/event-stream')
        ? await readEventStream(response, emit, armTimeout)
        : readJsonAnswer(await response.json(), emit);
      return result(answer.finishReason, answer.usage);
    } catch (error) {
      if (signal?.aborted) return result('cancelled');
      if (timedOut) {
        throw new Error(
          `The server at ${new URL(url).origin} sent nothing for ${(this.timeoutMs / 1000).toFixed(this.timeoutMs < 10_000 ? 1 : 0)} s. ` +
            'Check that it is running and not overloaded, and check tidal.remoteUrl.',
        );
      }
      if (error instanceof RemoteHttpError && error.code === SUPERSEDED) return result('cancelled');
      if (error instanceof StreamError && error.code === SUPERSEDED) return result('cancelled');
      if (error instanceof RemoteHttpError) throw error;
      if (error instanceof StreamError) throw new Error(`The server at ${new URL(url).origin} reported an error: ${error.message}`);
      throw describeFetchFailure(error, url);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
    }
  }

  private headers(): Record<string, string> {
    return this.options.apiKey ? { Authorization: `Bearer ${this.options.apiKey}` } : {};
  }

  private async httpError(response: Response, what: string): Promise<Error> {
    const { message, code } = await serverMessage(response);
    if (code === SUPERSEDED) return new RemoteHttpError(message, code);
    const origin = new URL(this.baseUrl).origin;
    if (response.status === 401 || response.status === 403) {
      return new RemoteHttpError(
        `The server at ${origin} refused the API key (HTTP ${response.status}: ${message}). ` +
          "Check the remote backend's API key: it must match the server's (TIDAL_API_KEY or --api-key-file for `tidal serve`).",
      );
    }
    if (response.status === 404) {
      return new RemoteHttpError(
        `The server at ${origin} answered HTTP 404 to ${what}: ${message}. ` +
          'Check tidal.remoteUrl (the base URL, ending in /v1, e.g. http://127.0.0.1:8765/v1) and tidal.remoteModel.',
      );
    }
    if (response.status >= 500) {
      return new RemoteHttpError(`The server at ${origin} failed (HTTP ${response.status}): ${message}. Check the server's log.`);
    }
    return new RemoteHttpError(`The server at ${origin} rejected the request (HTTP ${response.status}): ${message}`);
  }

  // GET /models once: which model to name in requests and how it takes FIM prompts.
  private servedModel(signal: AbortSignal): Promise<ServedModel> {
    this.served ??= this.fetchServedModel(signal).catch((error: unknown) => {
      this.served = undefined; // ask again next time
      throw error;
    });
    return this.served;
  }

  private async fetchServedModel(signal: AbortSignal): Promise<ServedModel> {
    const response = await this.fetchImpl(`${this.baseUrl}/models`, { headers: this.headers(), signal });
    if (!response.ok) throw await this.httpError(response, 'GET /models');
    const body = (await response.json().catch(() => undefined)) as { data?: unknown } | undefined;
    const models = Array.isArray(body?.data) ? (body.data as { id?: unknown; tidal?: { fim?: { fileSeparator?: unknown; repoName?: unknown } | null } }[]) : [];
    const wanted = this.options.model?.trim() || undefined;
    const entry = wanted === undefined ? models.find((model) => typeof model.id === 'string') : models.find((model) => model.id === wanted);
    if (entry === undefined || typeof entry.id !== 'string') {
      const listed = models.map((model) => String(model.id)).join(', ');
      throw new RemoteHttpError(
        wanted === undefined
          ? `The server at ${new URL(this.baseUrl).origin} lists no model at ${this.baseUrl}/models. Check tidal.remoteUrl.`
          : `The server at ${new URL(this.baseUrl).origin} does not serve "${wanted}"${listed ? ` (it serves: ${listed})` : ''}. Check tidal.remoteModel.`,
      );
    }
    if (entry.tidal !== undefined && entry.tidal !== null) {
      const fim = entry.tidal.fim;
      return {
        id: entry.id,
        tidal: true,
        fileSeparator: typeof fim?.fileSeparator === 'string' ? fim.fileSeparator : undefined,
        repoName: typeof fim?.repoName === 'string' ? fim.repoName : undefined,
      };
    }
    return { id: entry.id, tidal: false, fim: inferFimFormat(entry.id) };
  }

  private requestFor(params: GenerateParams, served: ServedModel): { path: string; body: Record<string, unknown> } {
    const sampling = params.sampling ?? {};
    const body: Record<string, unknown> = {
      model: served.id,
      user: this.client,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: params.maxTokens ?? DEFAULT_MAX_TOKENS[params.kind],
    };
    if (sampling.temperature !== undefined) body.temperature = sampling.temperature;
    if (sampling.topP !== undefined) body.top_p = sampling.topP;
    if (sampling.topK !== undefined) body.top_k = sampling.topK;
    if (sampling.seed !== undefined) body.seed = sampling.seed;
    if (served.tidal && params.attention !== undefined) body.attention = params.attention;
    switch (params.kind) {
      case 'chat':
        return { path: '/chat/completions', body: { ...body, ...chatRepository(params, served) } };
      case 'raw':
        return { path: '/completions', body: { ...body, prompt: params.prompt } };
      case 'completion': {
        const prefix = params.prefix;
        const suffix = params.suffix ?? '';
        if (served.tidal) {
          // Our server builds the FIM prompt itself and splits the repository stream back into files.
          return { path: '/completions', body: { ...body, prompt: repositoryContextText(params, served.fileSeparator, served.repoName) + prefix, suffix } };
        }
        if (served.fim !== undefined) {
          // vLLM and SGLang take no `suffix`: send the model family's FIM prompt as text.
          const prompt = promptText(buildFimPrompt(served.fim, { ...params, prefix, suffix }));
          return { path: '/completions', body: { ...body, prompt, stop: served.fim.stopTokens.slice(0, 4) } };
        }
        return { path: '/completions', body: { ...body, prompt: repositoryContextText(params) + prefix, suffix } };
      }
      default:
        throw new Error(`Unknown request kind ${String((params as { kind: unknown }).kind)}.`);
    }
  }
}

interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

interface Choice {
  text?: string;
  delta?: { content?: string | null };
  message?: { content?: string | null };
  finish_reason?: string | null;
}

interface Answer {
  finishReason: FinishReason;
  usage?: Usage;
}

class StreamError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

// `tidal serve` answers a completion that a newer one replaced with this code: for the
// caller that is a cancellation, not a failure.
const SUPERSEDED = 'request_superseded';

function finishReasonOf(reason: string | null | undefined): FinishReason {
  return reason === 'length' ? 'length' : 'stop';
}

function readJsonAnswer(body: { choices?: Choice[]; usage?: Usage }, emit: (text: string) => void): Answer {
  const choice = body.choices?.[0];
  emit(choice?.message?.content ?? choice?.text ?? '');
  return { finishReason: finishReasonOf(choice?.finish_reason), usage: body.usage };
}

// Server-sent events: `data: {...}` blocks separated by blank lines, ended by `data: [DONE]`.
async function readEventStream(response: Response, emit: (text: string) => void, onData: () => void): Promise<Answer> {
  if (response.body === null) throw new StreamError('the answer had no body');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let finishReason: string | null | undefined;
  let usage: Usage | undefined;
  const handle = (event: string): boolean => {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data.length === 0) return false;
    if (data.trim() === '[DONE]') return true;
    let chunk: { choices?: Choice[]; usage?: Usage | null; error?: { message?: string; code?: string | null } | string };
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new StreamError(`it sent an event that is not JSON: ${data.slice(0, 200)}`);
    }
    if (chunk.error !== undefined) {
      const error = chunk.error;
      throw typeof error === 'string' ? new StreamError(error) : new StreamError(error.message ?? 'unknown error', error.code ?? undefined);
    }
    const choice = chunk.choices?.[0];
    if (choice) {
      emit(choice.delta?.content ?? choice.text ?? '');
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
    return false;
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onData();
      buffer += decoder.decode(value, { stream: true });
      let end: RegExpExecArray | null;
      while ((end = /\r?\n\r?\n/.exec(buffer)) !== null) {
        const event = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        if (handle(event)) return { finishReason: finishReasonOf(finishReason), usage };
      }
    }
    buffer += decoder.decode();
    if (buffer.trim().length > 0 && handle(buffer)) return { finishReason: finishReasonOf(finishReason), usage };
    if (finishReason === undefined) throw new StreamError('the stream ended before the answer was complete');
    return { finishReason: finishReasonOf(finishReason), usage };
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
