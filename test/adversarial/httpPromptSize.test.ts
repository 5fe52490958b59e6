// Cause 3: one request froze the server. A prompt of megabytes (no spaces, or millions of tiny
// words) was tokenized on the event loop for tens of seconds while nothing else was answered.
// Now bodies are capped at 4 MiB by default, a prompt that provably cannot fit the context is
// refused before it is tokenized, and large prompts are counted in slices that let /health in.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import type { ModelSession } from '../../src/host/modelSession';
import { errorOf, loadEmbeddedSession, postJson, request, startServer, type ServerFixture } from './httpFixture';

let session: ModelSession;
let server: ServerFixture;

before(async () => {
  session = await loadEmbeddedSession();
  server = await startServer(session); // the default limits
});
after(async () => {
  await server.close();
  await session.unload();
});

// Sends a hostile request and probes /health every 50 ms until it is answered. The server runs
// in this process, so a held event loop shows as a long gap between two answers to the probes
// (or between the last one and the hostile request's answer).
async function whileHandled(route: string, body: unknown): Promise<{ status: number; message: string; longestGapMs: number; probes: number }> {
  let done = false;
  let last = performance.now();
  let longest = 0;
  let probes = 0;
  const prober = (async () => {
    while (!done) {
      const health = await request(`${server.baseUrl.replace(/\/v1$/, '')}/health`);
      assert.equal(health.status, 200);
      longest = Math.max(longest, performance.now() - last);
      last = performance.now();
      probes++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const answer = await postJson(`${server.baseUrl}${route}`, body);
  longest = Math.max(longest, performance.now() - last);
  done = true;
  await prober;
  return { status: answer.status, message: answer.status === 200 ? '' : errorOf(answer, answer.status).message, longestGapMs: longest, probes };
}

test('cause 3: hostile prompts get 400 naming the context, and /health answers all along', async () => {
  const maxContext = session.info().model.maxContext;
  const hostile: [string, unknown][] = [
    ['/completions', { prompt: 'x'.repeat(3_900_000), max_tokens: 1 }], // no spaces: one 3.9 MB word
    ['/completions', { prompt: 'a b\n'.repeat(480_000), max_tokens: 1 }], // 1.4 million tiny tokens
    ['/completions', { prompt: 'const a = 1;\n', suffix: 'q w\n'.repeat(400_000), max_tokens: 1 }],
    ['/chat/completions', { messages: [{ role: 'user', content: 'é'.repeat(1_000_000) }], max_tokens: 1 }],
  ];
  for (const [route, body] of hostile) {
    const outcome = await whileHandled(route, body);
    // Tokenizing any of these whole holds the event loop for seconds (14 s for the second).
    assert.ok(outcome.longestGapMs < 1_000, `/health went unanswered for ${outcome.longestGapMs.toFixed(0)} ms (${outcome.probes} probes)`);
    assert.equal(outcome.status, 400, outcome.message);
    assert.match(outcome.message, new RegExp(`at least \\d+ tokens but the model's context holds ${maxContext}`));
  }
  const ok = await postJson(`${server.baseUrl}/completions`, { prompt: 'const x = ', max_tokens: 2, temperature: 0 });
  assert.equal(ok.status, 200, ok.text);
});

test('cause 3: bodies over the 4 MiB default get 413', async () => {
  const error = errorOf(await postJson(`${server.baseUrl}/completions`, { prompt: 'y'.repeat(5 * 1024 * 1024) }), 413);
  assert.match(error.message, /larger than 4194304 bytes[\s\S]*--max-body-mb/);
});
