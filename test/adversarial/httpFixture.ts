// `tidal serve` as the hostile HTTP tests meet it: a real server on loopback (the embedded
// model, or a stand-in model where only the HTTP layer matters), and clients that send what
// fetch will not: any Host header, raw bytes over a socket, half-closed connections.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';

import type { AddressInfo } from 'node:net';

import type { GenerateParams, GenerateResult, LoadedModel } from '../../src/core/protocol/protocol';
import { createTidalServer, type ServedModel, type ServeOptions } from '../../src/serve/httpServer';

export { loadEmbeddedSession, startServer, waitForResults, type ServerFixture } from '../unit/serve/serveFixture';

export const json = { 'Content-Type': 'application/json' };

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request on a connection of its own (no keep-alive pool), with any headers. */
export function request(url: string, options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

export function postJson(url: string, body: unknown, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  return request(url, { method: 'POST', headers: { ...json, ...headers }, body: JSON.stringify(body) });
}

/** The OpenAI-style error object of an answer, checked for shape and status. */
export function errorOf(answer: Answer, status: number): { message: string; type: string; param: string | null; code: string | null } {
  assert.equal(answer.status, status, answer.text.slice(0, 300));
  const body = JSON.parse(answer.text) as { error: { message: string; type: string; param: string | null; code: string | null } };
  assert.equal(typeof body.error.message, 'string');
  assert.equal(typeof body.error.type, 'string');
  return body.error;
}

/** The data payloads of an SSE body, which must end with [DONE]. */
export function sseEvents(text: string): string[] {
  assert.ok(text.endsWith('data: [DONE]\n\n'), `stream ends with [DONE]: ${JSON.stringify(text.slice(-120))}`);
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      assert.ok(block.startsWith('data: '), `event ${JSON.stringify(block)}`);
      return block.slice(6);
    });
}

export interface RawExchange {
  socket: net.Socket;
  /** Everything the server sent until it closed the connection. */
  closed: Promise<{ text: string; afterMs: number; error?: string }>;
}

/** A connection that writes `bytes` as they are (and then half-closes if `end`). */
export function rawConnection(port: number, bytes: string, options: { end?: boolean } = {}): RawExchange {
  const started = performance.now();
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let error: string | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', (failure: NodeJS.ErrnoException) => (error = failure.code ?? failure.message));
  socket.on('connect', () => {
    if (bytes.length > 0) socket.write(bytes);
    if (options.end) socket.end();
  });
  const closed = new Promise<{ text: string; afterMs: number; error?: string }>((resolve) =>
    socket.on('close', () => resolve({ text, afterMs: performance.now() - started, error })),
  );
  return { socket, closed };
}

/** Resolves with `promise`, or fails the test after `ms` with `what`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A stand-in model for tests of the HTTP layer alone: answers `text` after `delayMs`. */
export function standInModel(text = 'ok', delayMs = 0): ServedModel {
  const info = { modelDir: 'stand-in', model: { maxContext: 4096, architecture: 'stand-in', backend: 'cpu' }, tokenizer: {} } as unknown as LoadedModel;
  return {
    fimFormat: undefined,
    info: () => info,
    cancel: () => false,
    generate: async (params: GenerateParams, onText?: (text: string) => void): Promise<GenerateResult> => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      onText?.(text);
      return {
        requestId: params.requestId,
        text,
        finishReason: 'stop',
        tokens: 1,
        promptTokens: 1,
        reusedTokens: 0,
        recomputedTokens: 1,
        timings: { queuedMs: 0, prefillMs: 0, decodeMs: delayMs, totalMs: delayMs },
      };
    },
  };
}

export interface StandInServer {
  baseUrl: string; // ends in /v1
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

/** A server over the stand-in model (or `model`) on loopback. */
export async function startStandInServer(options: Partial<ServeOptions> = {}): Promise<StandInServer> {
  const server = createTidalServer({ model: standInModel(), modelId: 'stand-in', ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
