// `tidal serve`: one loaded model behind an OpenAI-compatible HTTP API (Node's own http
// module). Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (JSON or
// SSE streams), GET /health. Every bad request gets a 4xx with an OpenAI-style error object
// and the server goes on serving; a client that disconnects cancels its request.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';

import type { FimFormat } from '../engine/fimPrompt';
import type { GenerateParams, GenerateResult, LoadedModel } from '../engine/protocol';
import { BadRequestError, parseChatRequest, parseCompletionRequest, ParsedRequest } from './openaiRequest';
import { StopSequenceFilter } from './stopSequences';

export interface ServedModel {
  readonly fimFormat: FimFormat | undefined;
  info(): LoadedModel;
  generate(params: GenerateParams, onText?: (text: string) => void): Promise<GenerateResult>;
  cancel(requestId: string): boolean;
}

export interface ServeOptions {
  model: ServedModel;
  modelId: string;
  apiKey?: string;          // when set, every /v1 request needs `Authorization: Bearer <key>`
  maxBodyBytes?: number;    // larger bodies get 413
  log?: (line: string) => void;
}

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly type: string, readonly code: string | null = null, readonly param: string | null = null) {
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
  const given = createHash('sha256').update(match ? match[1].trim() : '').digest();
  const wanted = createHash('sha256').update(expected).digest();
  return timingSafeEqual(given, wanted) && match !== null;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(413, `The request body is larger than ${limit} bytes. Send a smaller context, or start the server with a larger --max-body-mb.`, 'invalid_request_error', 'request_too_large');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (error) => {
      if (!failed) reject(error);
      failed = true;
    });
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
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const log = options.log ?? (() => undefined);
  const created = Math.floor(Date.now() / 1000);

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

  async function generate(kind: 'completion' | 'chat', request: ParsedRequest, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const id = request.params.requestId;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const stopFilter = new StopSequenceFilter(request.stop);
    let finished = false;
    // A client that goes away cancels its request, queued or running.
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
            choices: [{ index: 0, delta: text === undefined ? {} : first ? { role: 'assistant', content: text } : { content: text }, logprobs: null, finish_reason: reason }],
          }
        : { id, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: modelId, choices: [{ index: 0, text: text ?? '', logprobs: null, finish_reason: reason }] };
    // The stream's headers go out with its first event, so a request the engine refuses
    // before generating (a bad option, a prompt over the context) still gets its 4xx status.
    const writeEvent = (data: unknown) => {
      if (res.writableEnded || res.destroyed) return;
      if (!res.headersSent) {
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
        if (kind === 'chat') res.write(`data: ${JSON.stringify(chunkOf('', null, true))}\n\n`);
      }
      res.write(`data: ${JSON.stringify(data)}\n\n`);
    };

    let sent = '';
    const onText = (chunk: string) => {
      const text = stopFilter.push(chunk);
      if (stopFilter.stopped) model.cancel(id); // the rest would be thrown away
      if (text.length === 0) return;
      sent += text;
      if (request.stream) writeEvent(chunkOf(text, null));
    };

    let result: GenerateResult;
    try {
      result = await model.generate(request.params, onText);
    } catch (error) {
      finished = true;
      const code = (error as { code?: unknown }).code;
      const httpError =
        code === 'ERR_TIDAL_REQUEST' || error instanceof RangeError || error instanceof TypeError
          ? new HttpError(400, (error as Error).message, 'invalid_request_error', 'invalid_request')
          : new HttpError(500, `The engine failed: ${(error as Error).message}`, 'server_error', typeof code === 'string' ? code : null);
      log(`${id}: ${httpError.status} ${httpError.message}`);
      if (!res.headersSent) return sendJson(res, httpError.status, errorBody(httpError));
      writeEvent(errorBody(httpError));
      res.end('data: [DONE]\n\n');
      return;
    }
    if (result.finishReason === 'cancelled' && !stopFilter.stopped) {
      // Not by this client (it is still here) nor by a stop string: the engine runs one
      // completion at a time and a newer completion request replaced this one.
      finished = true;
      if (res.destroyed) return;
      const superseded = new HttpError(409, 'A newer completion request from the same client replaced this one on the server (the completions of one `user` are served latest-wins).', 'server_error', 'request_superseded');
      if (!res.headersSent) return sendJson(res, superseded.status, errorBody(superseded));
      writeEvent(errorBody(superseded));
      res.end('data: [DONE]\n\n');
      return;
    }
    const tail = stopFilter.flush();
    if (tail.length > 0) {
      sent += tail;
      if (request.stream) writeEvent(chunkOf(tail, null));
    }
    finished = true;
    const reason = finishReason(result, stopFilter.stopped);
    const usage = usageOf(result);
    log(`${id}: ${kind} ${usage.prompt_tokens} prompt tokens (${result.reusedTokens} reused), ${usage.completion_tokens} generated, ${reason}, ${result.timings.totalMs.toFixed(0)} ms`);
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
    const url = new URL(req.url ?? '/', 'http://localhost');
    const pathname = url.pathname.replace(/\/+$/, '') || '/';
    const routes: Record<string, string> = { '/health': 'GET', '/v1/models': 'GET', '/v1/completions': 'POST', '/v1/chat/completions': 'POST' };
    const method = routes[pathname];
    if (method === undefined) {
      throw new HttpError(404, `Unknown route ${req.method} ${pathname}. This server serves GET /v1/models, POST /v1/completions and POST /v1/chat/completions.`, 'invalid_request_error', 'unknown_route');
    }
    if (req.method !== method) {
      throw new HttpError(405, `${pathname} takes ${method}, not ${req.method}.`, 'invalid_request_error', 'method_not_allowed');
    }
    if (pathname === '/health') return sendJson(res, 200, { status: 'ok' });
    if (options.apiKey !== undefined && !keyMatches(options.apiKey, req.headers.authorization)) {
      throw new HttpError(401, 'Missing or wrong API key: send `Authorization: Bearer <key>` with the key the server was started with.', 'invalid_request_error', 'invalid_api_key');
    }
    if (pathname === '/v1/models') return sendJson(res, 200, modelList());

    const body = parseJsonObject(await readBody(req, maxBodyBytes));
    if (body.model !== undefined && body.model !== null && typeof body.model !== 'string') {
      throw new HttpError(400, '`model` must be a string.', 'invalid_request_error', 'invalid_request', 'model');
    }
    if (typeof body.model === 'string' && body.model !== '' && body.model !== modelId) {
      throw new HttpError(404, `The model \`${body.model}\` is not served here; this server serves \`${modelId}\` (see GET /v1/models).`, 'invalid_request_error', 'model_not_found', 'model');
    }
    let request: ParsedRequest;
    try {
      request =
        pathname === '/v1/chat/completions'
          ? parseChatRequest(body, `chatcmpl-${randomUUID()}`)
          : parseCompletionRequest(body, `cmpl-${randomUUID()}`, model.fimFormat);
    } catch (error) {
      if (error instanceof BadRequestError) throw new HttpError(400, error.message, 'invalid_request_error', 'invalid_request', error.param ?? null);
      throw error;
    }
    await generate(pathname === '/v1/chat/completions' ? 'chat' : 'completion', request, req, res);
  }

  return (req, res) => {
    route(req, res).catch((error: unknown) => {
      const httpError = error instanceof HttpError ? error : new HttpError(500, `Internal error: ${(error as Error)?.message ?? String(error)}`, 'server_error');
      if (httpError.status >= 500) log(`${req.method} ${req.url}: ${httpError.message}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // After a refused body, close the connection instead of reading the rest of it.
      const headers: http.OutgoingHttpHeaders = httpError.status === 413 ? { Connection: 'close' } : {};
      if (httpError.status === 401) headers['WWW-Authenticate'] = 'Bearer';
      sendJson(res, httpError.status, errorBody(httpError), headers);
      if (httpError.status === 413) req.resume();
    });
  };
}

export function createTidalServer(options: ServeOptions): http.Server {
  const server = http.createServer(createServeHandler(options));
  server.requestTimeout = 0; // long prefills; a vanished client is noticed through 'close'
  server.headersTimeout = 60_000;
  return server;
}
