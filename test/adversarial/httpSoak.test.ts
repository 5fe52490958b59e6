// A bounded soak of `tidal serve` (causes 3, 4, 8, 13 together): 300 small requests against the
// embedded model, a few at a time, mixing plain and streamed answers, clients that go away
// mid-stream, completions superseded by a newer one of the same user, and bad requests. Every
// answer must be well-formed, nothing may be left queued, the server must still answer, and
// its heap (the server runs in this process) must not grow with the number of requests.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import type { ModelSession } from '../../src/host/modelSession';
import { errorOf, json, loadEmbeddedSession, sseEvents, startServer, type ServerFixture } from './httpFixture';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

let session: ModelSession;
let server: ServerFixture;

before(async () => {
  session = await loadEmbeddedSession();
  server = await startServer(session, { maxQueue: 64 });
});
after(async () => {
  await server.close();
  await session.unload();
});

const post = (route: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${server.baseUrl}${route}`, { method: 'POST', headers: json, body: JSON.stringify(body), signal });

async function answer(response: Response): Promise<{ status: number; text: string; headers: Record<string, string> }> {
  return { status: response.status, text: await response.text(), headers: {} };
}

// A stream's events must parse; an error event, if any, must be the last before [DONE].
function checkStream(text: string, allowSuperseded: boolean): void {
  const events = sseEvents(text);
  assert.equal(events.pop(), '[DONE]');
  const parsed = events.map((data) => JSON.parse(data) as { choices?: unknown[]; error?: { code: string } });
  const errors = parsed.filter((event) => event.error !== undefined);
  if (errors.length > 0) {
    assert.ok(allowSuperseded && errors.length === 1 && parsed.at(-1) === errors[0] && errors[0].error?.code === 'request_superseded', text.slice(-300));
  } else {
    assert.ok(parsed.length >= 1 && parsed.every((event) => Array.isArray(event.choices)), text.slice(0, 300));
  }
}

// One round of the mix; returns how many HTTP requests it made.
async function round(i: number): Promise<number> {
  switch (i % 5) {
    case 0: {
      const plain = await answer(await post('/completions', { prompt: `let value${i} = `, max_tokens: 2, temperature: 0 }));
      assert.equal(plain.status, 200, plain.text);
      assert.equal((JSON.parse(plain.text) as { object: string }).object, 'text_completion');
      return 1;
    }
    case 1: {
      const streamed = await answer(
        await post('/chat/completions', {
          messages: [{ role: 'user', content: `Say ${i}.` }],
          max_tokens: 3,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
        }),
      );
      assert.equal(streamed.status, 200, streamed.text);
      checkStream(streamed.text, false);
      return 1;
    }
    case 2: {
      // Two completions of one user: the older one is replaced if it is still going.
      const user = `soak-${i}`;
      const older = post('/completions', { prompt: 'const list = [', suffix: '];\n', max_tokens: 24, temperature: 0, stream: true, user });
      const newer = post('/completions', { prompt: 'const list = [1', suffix: '];\n', max_tokens: 2, temperature: 0, user });
      const [first, second] = await Promise.all([older.then(answer), newer.then(answer)]);
      assert.equal(second.status, 200, second.text);
      if (first.status === 409) assert.equal(errorOf(first, 409).code, 'request_superseded');
      else checkStream(first.text, true);
      return 2;
    }
    case 3: {
      // A client that goes away after the first event.
      const controller = new AbortController();
      const response = await post('/completions', { prompt: 'function loop() {\n', max_tokens: 200, temperature: 0, stream: true }, controller.signal);
      assert.equal(response.status, 200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      controller.abort();
      await reader.cancel().catch(() => undefined);
      return 1;
    }
    default: {
      const bad = await answer(await post('/completions', { prompt: 'x', top_p: 0 }));
      assert.equal(errorOf(bad, 400).param, 'top_p');
      return 1;
    }
  }
}

async function rounds(from: number, requests: number, concurrency: number): Promise<number> {
  let sent = 0;
  let next = from;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < requests) {
        const made = await round(next++);
        sent += made; // not `sent += await …`, which would add to the value read before the wait
      }
    }),
  );
  return next;
}

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
  }
  return process.memoryUsage().heapUsed;
}

async function whenEngineIdle(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const queue = session.stats().queue;
    if (queue.queued === 0 && queue.running === null) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`requests left in the engine: ${JSON.stringify(session.stats().queue)}`);
}

test('soak (causes 3, 4, 8, 13): 300 mixed requests, all well-formed, nothing left queued, the heap stays flat', { timeout: 120_000 }, async () => {
  // Warm-up: the first requests fill caches (JIT, prefix cache, tokenizer) that then stay.
  let next = await rounds(0, 60, 4);
  await whenEngineIdle();
  const heapBefore = await heapAfterGc();
  next = await rounds(next, 240, 4);
  await whenEngineIdle();
  const heapAfter = await heapAfterGc();
  const grownMb = (heapAfter - heapBefore) / (1024 * 1024);
  // 240 requests leaking even 100 kB each would be 24 MB.
  assert.ok(grownMb < 16, `the heap grew by ${grownMb.toFixed(1)} MB over 240 requests (from ${(heapBefore / 1048576).toFixed(1)} MB)`);
  const still = await answer(await post('/completions', { prompt: 'const x = ', max_tokens: 2, temperature: 0 }));
  assert.equal(still.status, 200, still.text);
  assert.ok(next > 200);
});
