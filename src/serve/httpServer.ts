// `tidal serve`: one loaded model behind an OpenAI-compatible HTTP API (Node's own http
// module). Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (JSON or
// SSE streams), GET /health. Every bad request gets a 4xx with an OpenAI-style error object
// and the server goes on serving; a client that disconnects cancels its request.
//
// What it protects against without any configuration: web pages (Host and Origin checks, JSON
// bodies only, see requestGuards.ts), prompts too large for the context (refused before they
// are tokenized, see promptSize.ts), requests without end (--max-tokens, --request-timeout-s),
// floods (--max-queue, a connection cap) and clients that stall mid-request (upload timeouts).
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';

import type { FimFormat } from '../core/prompt/fimPrompt';
import type { GenerateParams, GenerateResult, LoadedModel } from '../core/protocol/protocol';
import { BadRequestError, parseChatRequest, parseCompletionRequest, ParsedRequest, RequestLimits } from './openaiRequest';
import { promptTokensAtLeast, TokenCounter } from './promptSize';
import { GuardOptions, RequestGuards } from './requestGuards';
import { StopSequenceFilter } from './stopSequences';

export interface ServedModel {
  readonly fimFormat: FimFormat | undefined;
  readonly tokenizer?: TokenCounter; // counts a huge prompt's tokens before the engine does
  info(): LoadedModel;
  generate(params: GenerateParams, onText?: (text: string) => void): Promise<GenerateResult>;
  cancel(requestId: string): boolean;
}

export interface ServeOptions extends GuardOptions {
  model: ServedModel;
  modelId: string;
  apiKey?: string; // when set, every /v1 request needs `Authorization: Bearer <key>`
  maxBodyBytes?: number; // larger bodies get 413
  maxTokens?: number; // larger max_tokens get 400
  requestTimeoutMs?: number; // one request in the engine, queue included; then it is cancelled
  maxQueue?: number; // requests waiting for the engine; more get 503
  maxConnections?: number; // open connections; more are closed at once
  uploadTimeoutMs?: number; // the whole request (headers and body) must arrive within this
  headersTimeoutMs?: number; // the headers must arrive within this
  keepAliveTimeoutMs?: number; // an idle kept-alive connection is closed after this
  log?: (line: string) => void;
}

export const SERVE_DEFAULTS = {
  maxBodyBytes: 4 * 1024 * 1024,
  maxTokens: 4096,
  requestTimeoutMs: 300_000,
  maxQueue: 16,
  maxConnections: 64,
  uploadTimeoutMs: 30_000,
  headersTimeoutMs: 20_000,
  keepAliveTimeoutMs: 5_000,
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: http.OutgoingHttpHeaders = {},
  ) {
    super(message);
  }
}

function errorBody(error: HttpError) {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

// Compares digests, so neither the key's content nor its length leaks through timing.
function keyMatches(expected: string, header: string | undefined): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = createHash('sha256')
    .update(match ? match[1].trim() : '')
    .digest();
  const wanted = createHash('sha256').update(expected).digest();
  return timingSafeEqual(given, wanted) && match !== null;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(
      413,
      `The request body is larger than ${limit} bytes. Send a smaller context, or start the server with a larger --max-body-mb.`,
      'invalid_request_error',
      'request_too_large',
    );
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      reject(error);
    };
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) return fail(tooLarge());
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks));
    });
    req.on('error', fail);
    // A connection closed mid-body (by the client, or by the upload timeout).
    req.on('close', () => fail(new HttpError(400, 'The connection closed before the request body was complete.', 'invalid_request_error', 'incomplete_body')));
  });
}

function parseJsonObject(raw: Buffer): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `The request body is not valid JSON (${(error as Error).message}).`, 'invalid_request_error', 'invalid_json');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'The request body must be a JSON object.', 'invalid_request_error', 'invalid_json');
  }
  return body as Record<string, unknown>;
}

function finishReason(result: GenerateResult, stoppedByString: boolean): 'stop' | 'length' {
  if (stoppedByString) return 'stop';
  return result.finishReason === 'length' || result.finishReason === 'context_full' ? 'length' : 'stop';
}

function usageOf(result: GenerateResult) {
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.tokens,
    total_tokens: result.promptTokens + result.tokens,
    prompt_tokens_details: { cached_tokens: result.reusedTokens },
  };
}

export function createServeHandler(options: ServeOptions): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const { model, modelId } = options;
  const maxBodyBytes = options.maxBodyBytes ?? SERVE_DEFAULTS.maxBodyBytes;
  const limits: RequestLimits = { maxTokens: options.maxTokens ?? SERVE_DEFAULTS.maxTokens };
  const requestTimeoutMs = options.requestTimeoutMs ?? SERVE_DEFAULTS.requestTimeoutMs;
  const maxQueue = options.maxQueue ?? SERVE_DEFAULTS.maxQueue;
  const guards = new RequestGuards(options);
  const log = options.log ?? (() => undefined);
  const created = Math.floor(Date.now() / 1000);
  // Requests admitted to the engine (one runs, the others wait), and completions per client.
  let inEngine = 0;
  const completionsOfClient = new Map<string, number>();

  function modelList() {
    const info = model.info();
    const fim = model.fimFormat;
    return {
      object: 'list',
      data: [
        {
          id: modelId,
          object: 'model',
          created,
          owned_by: 'tidal',
          max_model_len: info.model.maxContext,
          // Tidal extra: how the server builds FIM prompts, so clients can send the
          // repository as the same file-separator stream.
          tidal: {
            architecture: info.model.architecture,
            backend: info.model.backend,
            fim: fim ? { family: fim.family, order: fim.order, fileSeparator: fim.fileSeparator ?? null, repoName: fim.repoName ?? null } : null,
          },
        },
      ],
    };
  }

  // Takes a place among the requests for the engine, or refuses when too many wait. A
  // completion that replaces a waiting one of its client (latest wins) adds nobody.
  function admit(params: GenerateParams): () => void {
    const client = params.kind === 'completion' ? params.client : undefined;
    const replaces = client !== undefined && (completionsOfClient.get(client) ?? 0) > 0;
    if (inEngine > maxQueue && !replaces) {
      throw new HttpError(
        503,
        `The server is busy: ${inEngine - 1} requests are waiting for the model (at most ${maxQueue}, its --max-queue). Retry after a moment.`,
        'server_error',
        'server_busy',
        null,
        { 'Retry-After': '1' },
      );
    }
    inEngine++;
    if (client !== undefined) completionsOfClient.set(client, (completionsOfClient.get(client) ?? 0) + 1);
    return () => {
      inEngine--;
      if (client === undefined) return;
      const left = (completionsOfClient.get(client) ?? 1) - 1;
      if (left > 0) completionsOfClient.set(client, left);
      else completionsOfClient.delete(client);
    };
  }

  // A prompt that provably cannot fit the context is refused before the engine tokenizes it.
  async function refuseOversizedPrompt(kind: 'completion' | 'chat', request: ParsedRequest): Promise<void> {
    const maxContext = model.info().model.maxContext;
    if (model.tokenizer === undefined || maxContext <= 0) return;
    const atLeast = await promptTokensAtLeast(model.tokenizer, request.params, model.fimFormat, maxContext);
    if (atLeast < maxContext) return;
    throw new HttpError(
      400,
      `The prompt has at least ${atLeast} tokens but the model's context holds ${maxContext}. Send a shorter prompt.`,
      'invalid_request_error',
      'context_length_exceeded',
      kind === 'chat' ? 'messages' : 'prompt',
    );
  }

  async function generate(kind: 'completion' | 'chat', request: ParsedRequest, res: http.ServerResponse): Promise<void> {
    const id = request.params.requestId;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const stopFilter = new StopSequenceFilter(request.stop);
    let finished = false;
    // Only the response's connection closing means the client went away: a client that
    // half-closes after sending its request still gets the answer.
    res.on('close', () => {
      if (!finished) model.cancel(id);
    });

    const chunkOf = (text: string | undefined, reason: string | null, first = false) =>
      kind === 'chat'
        ? {
            id,
            object: 'chat.completion.chunk',
            created: Math.floor(Date.now() / 1000),
            model: modelId,
            choices: [
              {
                index: 0,
                delta: text === undefined ? {} : first ? { role: 'assistant', content: text } : { content: text },
                logprobs: null,
                finish_reason: reason,
              },
            ],
          }
        : {
            id,
            object: 'text_completion',
            created: Math.floor(Date.now() / 1000),
            model: modelId,
            choices: [{ index: 0, text: text ?? '', logprobs: null, finish_reason: reason }],
          };
    // The stream's headers go out with its first event, so a request the engine refuses
    // before generating (a bad option, a prompt over the context) still gets its 4xx status.
    const writeEvent = (data: unknown) => {
      if (res.writableEnded || res.destroyed) return;
      if (!res.headersSent) {
        res.writeHead(200, {
          'Content-Type': 'text/event-stream; charset=utf-8',
          'Cache-Control': 'no-cache',
          Connection: 'keep-alive',
          'X-Accel-Buffering': 'no',
        });
        if (kind === 'chat') res.write(`data: ${JSON.stringify(chunkOf('', null, true))}\n\n`);
      }
      res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    const fail = (error: HttpError) => {
      finished = true;
      log(`${id}: ${error.status} ${error.message}`);
      if (res.destroyed) return;
      if (!res.headersSent) return sendJson(res, error.status, errorBody(error), error.headers);
      writeEvent(errorBody(error));
      res.end('data: [DONE]\n\n');
    };

    let sent = '';
    const onText = (chunk: string) => {
      const text = stopFilter.push(chunk);
      if (stopFilter.stopped) model.cancel(id); // the rest would be thrown away
      if (text.length === 0) return;
      sent += text;
      if (request.stream) writeEvent(chunkOf(text, null));
    };

    // The wall-clock limit of one request: what was generated by then is the answer.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      model.cancel(id);
    }, requestTimeoutMs);
    let result: GenerateResult;
    try {
      result = await model.generate(request.params, onText);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return fail(
        code === 'ERR_TIDAL_REQUEST' || error instanceof RangeError || error instanceof TypeError
          ? new HttpError(400, (error as Error).message, 'invalid_request_error', 'invalid_request')
          : new HttpError(500, `The engine failed: ${(error as Error).message}`, 'server_error', typeof code === 'string' ? code : null),
      );
    } finally {
      clearTimeout(timer);
    }
    const cancelled = result.finishReason === 'cancelled' && !stopFilter.stopped;
    if (cancelled && res.destroyed) {
      finished = true; // the client went away
      return;
    }
    if (cancelled && timedOut && result.tokens === 0) {
      const seconds = Math.round(requestTimeoutMs / 1000);
      return fail(
        new HttpError(
          503,
          `The request did not start generating within ${seconds} s, the server's limit per request (--request-timeout-s): the model was busy or the prompt long. Retry later or send a shorter prompt.`,
          'server_error',
          'request_timeout',
          null,
          { 'Retry-After': '1' },
        ),
      );
    }
    if (cancelled && !timedOut) {
      // Not by this client (it is still here), by a stop string nor by the time limit: a newer
      // completion request of the same `user` replaced this one.
      return fail(
        new HttpError(
          409,
          'A newer completion request of the same `user` replaced this one on the server (the completions of one `user` are served latest-wins).',
          'server_error',
          'request_superseded',
        ),
      );
    }
    const tail = stopFilter.flush();
    if (tail.length > 0) {
      sent += tail;
      if (request.stream) writeEvent(chunkOf(tail, null));
    }
    finished = true;
    const reason = cancelled ? 'length' : finishReason(result, stopFilter.stopped); // cancelled here: out of time
    const usage = usageOf(result);
    log(
      `${id}: ${kind} ${usage.prompt_tokens} prompt tokens (${result.reusedTokens} reused), ${usage.completion_tokens} generated, ${reason}${cancelled ? ' (time limit)' : ''}, ${result.timings.totalMs.toFixed(0)} ms`,
    );
    if (res.destroyed) return;
    if (request.stream) {
      writeEvent(chunkOf(kind === 'chat' ? undefined : '', reason));
      if (request.includeUsage) writeEvent({ id, object: `${object}.chunk`, created: Math.floor(Date.now() / 1000), model: modelId, choices: [], usage });
      res.end('data: [DONE]\n\n');
      return;
    }
    const choice =
      kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: sent }, logprobs: null, finish_reason: reason }
        : { index: 0, text: sent, logprobs: null, finish_reason: reason };
    sendJson(res, 200, { id, object, created: Math.floor(Date.now() / 1000), model: modelId, choices: [choice], usage });
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const refusal = guards.refusal(req);
    if (refusal !== undefined) throw new HttpError(refusal.status, refusal.message, 'invalid_request_error', refusal.code);
    const origin = guards.allowedOrigin(req);
    if (origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const pathname = url.pathname.replace(/\/+$/, '') || '/';
    const routes: Record<string, string> = { '/health': 'GET', '/v1/models': 'GET', '/v1/completions': 'POST', '/v1/chat/completions': 'POST' };
    const method = routes[pathname];
    if (method === undefined) {
      throw new HttpError(
        404,
        `Unknown route ${req.method} ${pathname}. This server serves GET /v1/models, POST /v1/completions and POST /v1/chat/completions.`,
        'invalid_request_error',
        'unknown_route',
      );
    }
    if (req.method === 'OPTIONS' && origin !== undefined) {
      // The browser's preflight for an allowed page.
      res.writeHead(204, {
        'Access-Control-Allow-Methods': method,
        'Access-Control-Allow-Headers': 'Authorization, Content-Type',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    if (req.method !== method) {
      throw new HttpError(405, `${pathname} takes ${method}, not ${req.method}.`, 'invalid_request_error', 'method_not_allowed');
    }
    if (pathname === '/health') return sendJson(res, 200, { status: 'ok' });
    if (options.apiKey !== undefined && !keyMatches(options.apiKey, req.headers.authorization)) {
      throw new HttpError(
        401,
        'Missing or wrong API key: send `Authorization: Bearer <key>` with the key the server was started with.',
        'invalid_request_error',
        'invalid_api_key',
        null,
        { 'WWW-Authenticate': 'Bearer' },
      );
    }
    if (pathname === '/v1/models') return sendJson(res, 200, modelList());
    const wrongType = guards.contentTypeRefusal(req);
    if (wrongType !== undefined) throw new HttpError(wrongType.status, wrongType.message, 'invalid_request_error', wrongType.code);

    const body = parseJsonObject(await readBody(req, maxBodyBytes));
    if (body.model !== undefined && body.model !== null && typeof body.model !== 'string') {
      throw new HttpError(400, '`model` must be a string.', 'invalid_request_error', 'invalid_request', 'model');
    }
    if (typeof body.model === 'string' && body.model !== '' && body.model !== modelId) {
      throw new HttpError(
        404,
        `The model \`${body.model}\` is not served here; this server serves \`${modelId}\` (see GET /v1/models).`,
        'invalid_request_error',
        'model_not_found',
        'model',
      );
    }
    const kind = pathname === '/v1/chat/completions' ? 'chat' : 'completion';
    let request: ParsedRequest;
    try {
      request =
        kind === 'chat'
          ? parseChatRequest(body, `chatcmpl-${randomUUID()}`, limits)
          : parseCompletionRequest(body, `cmpl-${randomUUID()}`, model.fimFormat, limits);
    } catch (error) {
      if (error instanceof BadRequestError) throw new HttpError(400, error.message, 'invalid_request_error', 'invalid_request', error.param ?? null);
      throw error;
    }
    const leave = admit(request.params);
    try {
      await refuseOversizedPrompt(kind, request);
      if (req.socket.destroyed) return; // gone while its prompt was counted
      await generate(kind, request, res);
    } finally {
      leave();
    }
  }

  return (req, res) => {
    route(req, res).catch((error: unknown) => {
      const httpError =
        error instanceof HttpError ? error : new HttpError(500, `Internal error: ${(error as Error)?.message ?? String(error)}`, 'server_error');
      if (httpError.status >= 500) log(`${req.method} ${req.url}: ${httpError.message}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Refused before its body was read (or in the middle of it): close the connection
      // instead of reading the rest.
      const headers: http.OutgoingHttpHeaders = { ...httpError.headers };
      if (!req.complete) headers.Connection = 'close';
      sendJson(res, httpError.status, errorBody(httpError), headers);
      if (!req.complete) req.resume();
    });
  };
}

export function createTidalServer(options: ServeOptions): http.Server {
  const uploadTimeout = options.uploadTimeoutMs ?? SERVE_DEFAULTS.uploadTimeoutMs;
  const headersTimeout = Math.min(options.headersTimeoutMs ?? SERVE_DEFAULTS.headersTimeoutMs, uploadTimeout);
  // How often Node looks for requests past their timeouts: a stalled one is closed (408)
  // within a quarter of its timeout after it.
  const server = http.createServer({ connectionsCheckingInterval: Math.max(50, Math.min(5_000, Math.floor(headersTimeout / 4))) }, createServeHandler(options));
  // Receiving a request is bounded; answering it is not (long prefills and generations have
  // their own limit, --request-timeout-s).
  server.requestTimeout = uploadTimeout;
  server.headersTimeout = headersTimeout;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? SERVE_DEFAULTS.keepAliveTimeoutMs;
  server.maxConnections = options.maxConnections ?? SERVE_DEFAULTS.maxConnections;
  // A client that half-closes its side after sending the request still gets the answer (Node
  // would otherwise drop the request when the client's side of the connection ends).
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  return server;
}
