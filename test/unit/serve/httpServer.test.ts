// `tidal serve` on loopback with the embedded model. The reference for every answer is the
// same request made to the ModelSession directly (greedy, so the text must match exactly).
// Bad requests get 4xx with an OpenAI-style error and the server keeps serving.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, test } from 'node:test';

import type { ModelSession } from '../../../src/host/modelSession';
import { loadEmbeddedSession, ServerFixture, startServer, waitForResults } from './serveFixture';

const API_KEY = 'test-key-7f3a';
let session: ModelSession;
let server: ServerFixture;
const auth = { Authorization: `Bearer ${API_KEY}` };

before(async () => {
  session = await loadEmbeddedSession();
  server = await startServer(session, { apiKey: API_KEY, maxBodyBytes: 64 * 1024 });
});
after(async () => {
  await server.close();
  await session.unload();
});

async function post(route: string, body: unknown, headers: Record<string, string> = auth): Promise<Response> {
  return fetch(`${server.baseUrl}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

// Splits an SSE body into its data payloads.
function events(text: string): string[] {
  assert.ok(text.endsWith('data: [DONE]\n\n'), `stream ends with [DONE]: ${text.slice(-80)}`);
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      assert.ok(block.startsWith('data: '), `event ${block}`);
      return block.slice(6);
    });
}

async function expectError(response: Response, status: number, pattern: RegExp): Promise<void> {
  assert.equal(response.status, status);
  const body = (await response.json()) as { error: { message: string; type: string } };
  assert.match(body.error.message, pattern);
  assert.equal(typeof body.error.type, 'string');
}

// A request that must still work after each bad one.
async function stillServes(): Promise<void> {
  const response = await post('/completions', { prompt: 'const x = ', max_tokens: 2, temperature: 0 });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { usage: { completion_tokens: number } };
  assert.ok(body.usage.completion_tokens >= 1);
}

const sharedFile = 'export function add(a: number, b: number): number {\n  return a + b;\n}\n';

test('GET /v1/models names the model and its FIM format', async () => {
  const response = await fetch(`${server.baseUrl}/models`, { headers: auth });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { data: { id: string; max_model_len: number; tidal: { fim: { family: string; fileSeparator: string } } }[] };
  assert.equal(body.data.length, 1);
  assert.equal(body.data[0].id, 'tidal-code-mini');
  assert.equal(body.data[0].max_model_len, session.info().model.maxContext);
  assert.deepEqual(body.data[0].tidal.fim, { family: 'qwen', order: 'psm', fileSeparator: '<|file_sep|>', repoName: '<|repo_name|>' });
});

test("streamed /v1/completions: chunks add up to the engine's own answer, usage counts match", async () => {
  const prompt = 'function fibonacci(n) {\n  if (n < 2) return n;\n';
  const reference = await session.generate({ requestId: 'ref-raw', kind: 'raw', prompt, maxTokens: 24, sampling: { temperature: 0 } });
  const response = await post('/completions', { prompt, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
  const payloads = events(await response.text());
  assert.equal(payloads.pop(), '[DONE]');
  const usageChunk = JSON.parse(payloads.pop() as string);
  assert.deepEqual(usageChunk.choices, []);
  assert.equal(usageChunk.usage.prompt_tokens, reference.promptTokens);
  assert.equal(usageChunk.usage.completion_tokens, reference.tokens);
  const chunks = payloads.map((payload) => JSON.parse(payload));
  const last = chunks.pop();
  assert.equal(last.choices[0].finish_reason, reference.finishReason === 'length' ? 'length' : 'stop');
  assert.ok(chunks.length >= 2, `${chunks.length} text chunks`);
  assert.ok(chunks.every((chunk) => chunk.object === 'text_completion' && chunk.choices[0].finish_reason === null));
  assert.equal(chunks.map((chunk) => chunk.choices[0].text).join(''), reference.text);
});

test('/v1/completions with `suffix` is FIM; a repository stream prompt gives the local prompt token for token', async () => {
  const params = {
    repoName: 'demo',
    repositoryContext: [{ path: 'src/math.ts', content: sharedFile }],
    filePath: 'src/main.ts',
    prefix: "import { add } from './math';\nconst total = add(",
    suffix: ');\nconsole.log(total);\n',
  };
  const reference = await session.generate({ requestId: 'ref-fim', kind: 'completion', ...params, maxTokens: 16, sampling: { temperature: 0 } });
  const prompt = `<|repo_name|>demo\n<|file_sep|>src/math.ts\n${sharedFile}\n<|file_sep|>src/main.ts\n${params.prefix}`;
  const response = await post('/completions', { prompt, suffix: params.suffix, max_tokens: 16, temperature: 0 });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { choices: { text: string }[]; usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } } };
  assert.equal(body.usage.prompt_tokens, reference.promptTokens);
  assert.equal(body.choices[0].text, reference.text);
  // The very same prompt again: its KV comes from the prefix cache.
  assert.equal(body.usage.prompt_tokens_details.cached_tokens, reference.promptTokens - 1);
});

test("streamed /v1/chat/completions: role first, then content deltas equal to the engine's answer", async () => {
  const messages = [{ role: 'user' as const, content: 'What does add() return?' }];
  const reference = await session.generate({ requestId: 'ref-chat', kind: 'chat', messages, maxTokens: 20, sampling: { temperature: 0 } });
  const response = await post('/chat/completions', { messages, max_tokens: 20, temperature: 0, stream: true });
  assert.equal(response.status, 200);
  const payloads = events(await response.text());
  payloads.pop();
  const chunks = payloads.map((payload) => JSON.parse(payload));
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  assert.ok(chunks.every((chunk) => chunk.object === 'chat.completion.chunk'));
  const last = chunks.pop();
  assert.deepEqual(last.choices[0].delta, {});
  assert.ok(last.choices[0].finish_reason === 'length' || last.choices[0].finish_reason === 'stop');
  assert.equal(chunks.map((chunk) => chunk.choices[0].delta.content).join(''), reference.text);

  const plain = await post('/chat/completions', { messages, max_tokens: 20, temperature: 0 });
  const body = (await plain.json()) as { object: string; choices: { message: { role: string; content: string } }[]; usage: { prompt_tokens: number } };
  assert.equal(body.object, 'chat.completion');
  assert.deepEqual(body.choices[0].message, { role: 'assistant', content: reference.text });
  assert.equal(body.usage.prompt_tokens, reference.promptTokens);
});

test('`stop` cuts the text before the first stop string and finishes with "stop"', async () => {
  const prompt = 'export function add(a, b) {\n';
  const reference = await session.generate({ requestId: 'ref-stop', kind: 'raw', prompt, maxTokens: 32, sampling: { temperature: 0 } });
  assert.ok(reference.text.length > 6, reference.text);
  const stop = reference.text.slice(3, 6); // something the model will write
  const expected = reference.text.slice(0, reference.text.indexOf(stop));
  for (const stream of [false, true]) {
    const response = await post('/completions', { prompt, max_tokens: 32, temperature: 0, stop: [stop, 'never-written-xyz'], stream });
    assert.equal(response.status, 200);
    if (stream) {
      const payloads = events(await response.text())
        .slice(0, -1)
        .map((payload) => JSON.parse(payload));
      assert.equal(payloads.map((chunk) => chunk.choices[0].text).join(''), expected);
      assert.equal(payloads.at(-1).choices[0].finish_reason, 'stop');
    } else {
      const body = (await response.json()) as { choices: { text: string; finish_reason: string }[] };
      assert.equal(body.choices[0].text, expected);
      assert.equal(body.choices[0].finish_reason, 'stop');
    }
  }
});

test('a client that disconnects mid-stream cancels its request in the engine', async () => {
  const seen = server.results.length;
  const response = await post('/completions', { prompt: 'function loop() {\n', max_tokens: 4000, temperature: 0, stream: true }, { ...auth });
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /^data: /);
  await reader.cancel();
  await waitForResults(server, seen + 1);
  const result = server.results[seen];
  assert.equal(result.finishReason, 'cancelled');
  assert.ok(result.tokens < 4000, `${result.tokens} tokens generated before the cancel`);
  await stillServes();
});

test('a newer completion of the same user replaces a running one: the older stream ends with a request_superseded error', async () => {
  // Precondition: greedy, this completion runs its whole 400 tokens.
  const long = { prefix: 'const numbers = [1, 2, 3, ', suffix: '];\n' };
  const reference = await session.generate({ requestId: 'ref-long', kind: 'completion', ...long, maxTokens: 400, sampling: { temperature: 0 } });
  assert.equal(reference.finishReason, 'length');
  const older = await post('/completions', { prompt: long.prefix, suffix: long.suffix, max_tokens: 400, temperature: 0, stream: true, user: 'carol' });
  const reader = (older.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);
  const newer = await post('/completions', { prompt: 'const x = ', suffix: ';\n', max_tokens: 4, temperature: 0, user: 'carol' });
  assert.equal(newer.status, 200);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  const last = events(text).slice(-2)[0];
  assert.equal(JSON.parse(last).error.code, 'request_superseded');
});

test('completions of different users do not supersede each other; those of one user do', async () => {
  const long = { prefix: 'const numbers = [1, 2, 3, ', suffix: '];\n' };
  const reference = await session.generate({ requestId: 'ref-long-users', kind: 'completion', ...long, maxTokens: 120, sampling: { temperature: 0 } });
  assert.equal(reference.finishReason, 'length');
  const readAll = async (response: Response) => {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value);
    }
  };
  const request = (user: string) => ({ prompt: long.prefix, suffix: long.suffix, max_tokens: 120, temperature: 0, stream: true, user });
  // Alice's stream is running when Bob's request arrives: both finish with the whole text.
  const alice = await post('/completions', request('alice'));
  const aliceReader = (alice.body as ReadableStream<Uint8Array>).getReader();
  const firstChunk = new TextDecoder().decode((await aliceReader.read()).value);
  const bob = await post('/completions', request('bob'));
  const bobText = await readAll(bob);
  let aliceText = firstChunk;
  for (;;) {
    const { done, value } = await aliceReader.read();
    if (done) break;
    aliceText += new TextDecoder().decode(value);
  }
  const textOf = (sse: string) =>
    events(sse)
      .filter((e) => e !== '[DONE]')
      .map((e) => JSON.parse(e) as { choices?: { text?: string }[]; error?: unknown });
  for (const [who, sse] of [
    ['alice', aliceText],
    ['bob', bobText],
  ] as const) {
    const parsed = textOf(sse);
    assert.ok(
      parsed.every((event) => event.error === undefined),
      `${who} was not superseded`,
    );
    assert.equal(parsed.map((event) => event.choices?.[0]?.text ?? '').join(''), reference.text, who);
  }
  // A second request of Alice's replaces her first.
  const first = await post('/completions', request('alice'));
  const firstReader = (first.body as ReadableStream<Uint8Array>).getReader();
  let firstText = new TextDecoder().decode((await firstReader.read()).value);
  const second = await post('/completions', { ...request('alice'), max_tokens: 4, stream: false });
  assert.equal(second.status, 200);
  for (;;) {
    const { done, value } = await firstReader.read();
    if (done) break;
    firstText += new TextDecoder().decode(value);
  }
  assert.equal(JSON.parse(events(firstText).slice(-2)[0]).error.code, 'request_superseded');
  await expectError(await post('/completions', { prompt: 'x', user: 42 }), 400, /`user`/);
});

test('bad requests get 4xx with a message, and the server keeps serving', async () => {
  await expectError(await post('/completions', '{"prompt": "x", ', auth), 400, /not valid JSON/);
  await stillServes();
  await expectError(await post('/completions', '[1, 2]', auth), 400, /JSON object/);
  await expectError(await post('/completions', { prompt: 'x' }, { Authorization: 'Bearer wrong-key' }), 401, /API key/);
  await expectError(await post('/completions', { prompt: 'x' }, {}), 401, /Authorization: Bearer/);
  await expectError(await fetch(`${server.baseUrl}/models`), 401, /API key/);
  await stillServes();
  await expectError(await post('/embeddings', { input: 'x' }), 404, /Unknown route/);
  await expectError(await fetch(`${server.baseUrl}/completions`, { headers: auth }), 405, /takes POST/);
  await expectError(await post('/completions', { prompt: 'x', temperature: 'hot' }), 400, /temperature/);
  await expectError(await post('/completions', { prompt: [1, 2, 3] }), 400, /prompt/);
  await expectError(await post('/completions', { max_tokens: 3 }), 400, /prompt.*required/);
  await expectError(await post('/completions', { prompt: 'x', n: 3 }), 400, /`n`/);
  await expectError(await post('/chat/completions', { messages: [] }), 400, /messages/);
  await expectError(await post('/chat/completions', { messages: [{ role: 'wizard', content: 'hi' }] }), 400, /role/);
  await expectError(await post('/completions', { prompt: 'x', model: 'gpt-4' }), 404, /not served here/);
  await expectError(await post('/completions', { prompt: 'x', attention: { mode: 'bogus' } }), 400, /mode/);
  // Streamed too: the engine refuses before the first token, so the status is still 400.
  await expectError(await post('/completions', { prompt: 'x', stream: true, attention: { mode: 'bogus' } }), 400, /mode/);
  await stillServes();
  // A prompt longer than the model's context: the engine's message, as a 400.
  const tooLong = 'word '.repeat(40_000);
  const big = await startServer(session, { apiKey: API_KEY });
  try {
    const response = await fetch(`${big.baseUrl}/completions`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: tooLong, max_tokens: 1 }),
    });
    await expectError(response, 400, /context holds/);
  } finally {
    await big.close();
  }
  await stillServes();
});

// Raw HTTP, to send bodies fetch would not (oversized, chunked without a length).
function rawRequest(body: Buffer, headers: http.OutgoingHttpHeaders): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${server.baseUrl}/completions`, { method: 'POST', headers: { ...auth, ...headers } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

test('bodies over the limit get 413 (with or without Content-Length) and the server keeps serving', async () => {
  const huge = Buffer.from(JSON.stringify({ prompt: 'x'.repeat(200 * 1024) }));
  const declared = await rawRequest(huge, { 'Content-Length': huge.length, 'Content-Type': 'application/json' });
  assert.equal(declared.status, 413);
  assert.match(JSON.parse(declared.text).error.message, /larger than 65536 bytes/);
  await stillServes();
  const chunked = await rawRequest(huge, { 'Transfer-Encoding': 'chunked', 'Content-Type': 'application/json' });
  assert.equal(chunked.status, 413);
  await stillServes();
});
