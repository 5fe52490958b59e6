// The extension's local backend against a real engine host process with the embedded model:
// streamed text adds up to the result, an abort stops the request inside the engine, and a
// crashed engine gives a message instead of a hang.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { startEngineHost } from '../../../src/host/hostProcess';
import {
  loadModelRequest,
  progressNotification,
  statsRequest,
  tokenNotification,
  type PrefillProgress,
  type TokenChunk,
} from '../../../src/core/protocol/protocol';
import { LocalBackend, newRequestId } from '../../../src/core/backend/localBackend';
import { TidalError } from '../../../src/native/errors';

const hostScript = path.resolve('dist/engine-host.js');
const modelDir = path.resolve('models/tidal-code-mini');
const repoPrompt = '<|file_sep|>src/cache.py\nclass LruCache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n';

function connect() {
  assert.ok(existsSync(hostScript), 'dist/engine-host.js is missing: run `npm run build` first');
  const host = startEngineHost(hostScript);
  // Drain the host's stderr: a pipe nobody reads can keep this process alive after the host exits.
  host.child.stderr.resume();
  const exited = new Promise<void>((resolve) => host.child.once('exit', () => resolve()));
  const listeners = new Set<(chunk: TokenChunk) => void>();
  host.connection.onNotification(tokenNotification, (chunk) => listeners.forEach((listener) => listener(chunk)));
  const progressListeners = new Set<(progress: PrefillProgress) => void>();
  host.connection.onNotification(progressNotification, (progress) => progressListeners.forEach((listener) => listener(progress)));
  host.connection.listen();
  let alive = true;
  // As EngineClient does: a process that exits takes its connection with it.
  host.child.on('exit', () => {
    alive = false;
    host.connection.dispose();
  });
  const backend = new LocalBackend({
    get rpc() {
      return alive ? host.connection : undefined;
    },
    onToken: (listener) => {
      listeners.add(listener);
      return { dispose: () => listeners.delete(listener) };
    },
    onProgress: (listener) => {
      progressListeners.add(listener);
      return { dispose: () => progressListeners.delete(listener) };
    },
    whenModelReady: async () => undefined,
  });
  /** Kills the host and waits until it is gone, so no handle of it outlives the test. */
  const shutDown = async () => {
    host.child.kill('SIGKILL');
    await exited;
  };
  return { host, backend, shutDown };
}

test('local backend: streamed chunks add up to the answer; an abort cancels inside the engine', { timeout: 90_000 }, async () => {
  const { host, backend, shutDown } = connect();
  try {
    await host.connection.sendRequest(loadModelRequest, { modelDir, options: { backend: 'cpu', threads: 2 } });
    const chunks: string[] = [];
    const first = await backend.generate(
      { requestId: newRequestId('raw'), kind: 'raw', prompt: repoPrompt, maxTokens: 24, attention: { mode: 'full' } },
      (chunk) => chunks.push(chunk),
    );
    assert.ok(first.tokens > 0 && first.tokens <= 24, `generated ${first.tokens} tokens`);
    assert.ok(chunks.length > 1, 'the text arrived in one piece, not streamed');
    assert.equal(chunks.join(''), first.text);
    assert.notEqual(first.text.trim(), '');

    // Abort after the first streamed chunk of a long request: it ends early as 'cancelled'.
    const controller = new AbortController();
    let streamed = 0;
    const long = await backend.generate(
      { requestId: newRequestId('raw'), kind: 'raw', prompt: repoPrompt, maxTokens: 4000, attention: { mode: 'tidal', tokenBudget: 64 } },
      () => {
        streamed++;
        if (streamed === 1) controller.abort();
      },
      controller.signal,
    );
    assert.equal(long.finishReason, 'cancelled');
    assert.ok(long.tokens < 4000, `the cancelled request still generated ${long.tokens} tokens`);
    const stats = await host.connection.sendRequest(statsRequest);
    assert.equal(stats.queue.running, null, 'a request is still running in the engine');
    assert.ok(stats.queue.cancelled >= 1);

    // An already aborted signal never reaches the engine.
    const aborted = new AbortController();
    aborted.abort();
    const skipped = await backend.generate({ requestId: 'never', kind: 'raw', prompt: repoPrompt }, () => assert.fail('no text expected'), aborted.signal);
    assert.equal(skipped.finishReason, 'cancelled');
  } finally {
    await shutDown();
  }
});

test('local backend: a long prompt reports its prefill in parts, up to every token it computes; a short one does not', { timeout: 120_000 }, async () => {
  const { host, backend, shutDown } = connect();
  try {
    await host.connection.sendRequest(loadModelRequest, { modelDir, options: { backend: 'cpu', threads: 2 } });
    // ~3K tokens, this engine's first request: parts of 1024 tokens (no prefill rate is known yet).
    const lines = Array.from({ length: 170 }, (_, i) => `value_${i} = compute(${(i * 7919) % 1000}, "${(i * 104729).toString(36)}")`);
    const heard: PrefillProgress[] = [];
    const long = await backend.generate(
      { requestId: newRequestId('raw'), kind: 'raw', prompt: lines.join('\n'), maxTokens: 2, attention: { mode: 'full' } },
      () => undefined,
      undefined,
      (progress) => heard.push(progress),
    );
    assert.ok(long.recomputedTokens > 2049, `the prompt was only ${long.recomputedTokens} tokens`);
    assert.equal(heard.length, Math.ceil((long.recomputedTokens - 1) / 1024), JSON.stringify(heard));
    // The prompt's last token runs in generate: the prefill computes all tokens but that one.
    const total = long.recomputedTokens - 1;
    for (const [i, progress] of heard.entries()) {
      assert.equal(progress.total, total);
      assert.ok(progress.done > (i > 0 ? heard[i - 1].done : 0) && progress.done <= total, JSON.stringify(heard));
      if (progress.done < total) assert.ok(progress.etaMs !== undefined && progress.etaMs >= 0, JSON.stringify(progress));
    }
    assert.equal(heard.at(-1)?.done, total);
    assert.equal(heard.at(-1)?.etaMs, undefined);

    // A short prompt is one prefill: nothing to report.
    const quiet: PrefillProgress[] = [];
    await backend.generate(
      { requestId: newRequestId('raw'), kind: 'raw', prompt: repoPrompt, maxTokens: 2 },
      () => undefined,
      undefined,
      (progress) => quiet.push(progress),
    );
    assert.deepEqual(quiet, []);
  } finally {
    await shutDown();
  }
});

test('local backend: an engine that dies mid-request gives a clear error, then a not-running error', { timeout: 90_000 }, async () => {
  const { host, backend, shutDown } = connect();
  try {
    await host.connection.sendRequest(loadModelRequest, { modelDir, options: { backend: 'cpu', threads: 1 } });
    const request = backend.generate({ requestId: newRequestId('raw'), kind: 'raw', prompt: repoPrompt, maxTokens: 100_000 }, () => host.child.kill('SIGKILL'));
    await assert.rejects(
      request,
      (error: Error) => error instanceof TidalError && error.code === 'ERR_TIDAL_NOT_READY' && /stopped while answering/.test(error.message),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await assert.rejects(
      backend.generate({ requestId: newRequestId('raw'), kind: 'raw', prompt: repoPrompt }, () => undefined),
      (error: Error) => error instanceof TidalError && error.code === 'ERR_TIDAL_NOT_READY' && /not running/.test(error.message),
    );
  } finally {
    await shutDown();
  }
});
