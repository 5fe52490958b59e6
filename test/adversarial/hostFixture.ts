// The engine host as the hostile tests meet it: the built dist/engine-host.js started the way
// the extension starts it, either behind a JSON-RPC connection or as a bare process whose stdin
// the test writes raw bytes to. Each start drains stderr (kept for messages) and hands back a
// promise of the exit, so no test leaves a process behind.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { MessageConnection } from 'vscode-jsonrpc/node';

import { startEngineHost } from '../../src/host/hostProcess';
import { loadModelRequest, type LoadedModel } from '../../src/core/protocol/protocol';

export const hostScript = path.resolve('dist/engine-host.js');
export const embeddedModelDir = path.resolve('models/tidal-code-mini');

export interface HostExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningHost {
  child: ChildProcessWithoutNullStreams;
  /** Everything the host wrote to stderr so far. */
  stderr(): string;
  /** Settles when the process has exited. */
  exited: Promise<HostExit>;
  /** Kills the host (if it still runs) and waits for its exit. */
  stop(): Promise<void>;
}

function watch(child: ChildProcessWithoutNullStreams): RunningHost {
  assert.ok(existsSync(hostScript), 'dist/engine-host.js is missing: run `npm run build` first');
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  // A write to a host that already exited fails with EPIPE; the test looks at the exit instead.
  child.stdin.on('error', () => undefined);
  const exited = new Promise<HostExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    stderr: () => stderr,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A host behind a listening JSON-RPC connection. */
export function startHost(): RunningHost & { connection: MessageConnection } {
  const { child, connection } = startEngineHost(hostScript);
  const host = watch(child);
  child.once('exit', () => connection.dispose());
  connection.listen();
  return {
    ...host,
    connection,
    stop: async () => {
      await host.stop();
      connection.dispose();
    },
  };
}

/** A host with nothing reading its stdout: the test speaks (or breaks) the framing itself. */
export function startBareHost(): RunningHost {
  const child = spawn(process.execPath, [hostScript], {
    cwd: path.dirname(hostScript),
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Flowing from the start: a test that never reads the answers must not fill the pipe.
  child.stdout.resume();
  return watch(child);
}

/** One framed JSON-RPC message, as the extension writes it; a string is sent as the body as is. */
export function frame(message: unknown): Buffer {
  const body = Buffer.from(typeof message === 'string' ? message : JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

interface RawResponse {
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string };
}

/** Reads a bare host's stdout as framed JSON-RPC; `response(id)` waits for the answer to one id. */
export function readResponses(host: RunningHost): { response(id: number, ms: number): Promise<RawResponse> } {
  const answers = new Map<unknown, RawResponse>();
  let pending = Buffer.alloc(0);
  host.child.stdout.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/Content-Length: (\d+)/i.exec(pending.subarray(0, end).toString('ascii'))?.[1]);
      if (pending.length < end + 4 + length) return;
      const message = JSON.parse(pending.subarray(end + 4, end + 4 + length).toString('utf8')) as RawResponse;
      pending = pending.subarray(end + 4 + length);
      if ('id' in message) answers.set(message.id, message);
    }
  });
  return {
    response: async (id, ms) => {
      const deadline = Date.now() + ms;
      while (!answers.has(id)) {
        if (Date.now() > deadline) throw new Error(`no answer to request ${id} within ${ms} ms; stderr:\n${host.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return answers.get(id)!;
    },
  };
}

/** Loads the embedded model on the CPU backend (two threads), with extra engine options. */
export function loadEmbeddedModel(connection: MessageConnection, options: { maxContext?: number; modelDir?: string } = {}): Promise<LoadedModel> {
  return connection.sendRequest(loadModelRequest, {
    modelDir: options.modelDir ?? embeddedModelDir,
    options: { backend: 'cpu', threads: 2, ...(options.maxContext !== undefined ? { maxContext: options.maxContext } : {}) },
  });
}

/** Resolves with the exit if the host exits within `ms`, with undefined if it is still running. */
export function exitWithin(host: RunningHost, ms: number): Promise<HostExit | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    void host.exited.then((exit) => {
      clearTimeout(timer);
      resolve(exit);
    });
  });
}

/** Rejects when `promise` has not settled within `ms`, with `what` in the message. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
