// The remote backend against our own `tidal serve` on loopback (embedded model): streamed
// chat and completions equal the engine's own answers, the FIM prompt is the local one token
// for token, cancelling mid-stream cancels on the server, and a wrong key, a server that is
// down, a wrong URL or a server that never answers give messages that say what to check.
// A stand-in for vLLM records what the backend sends to servers that are not ours.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';

import type { ModelSession } from '../../../src/host/modelSession';
import type { GenerateParams } from '../../../src/core/protocol/protocol';
import { chatRepository, inferFimFormat, RemoteBackend } from '../../../src/core/backend/remoteBackend';
import { loadEmbeddedSession, ServerFixture, startServer, waitForResults } from '../serve/serveFixture';

const API_KEY = 'remote-test-key';
let session: ModelSession;
let server: ServerFixture;

before(async () => {
  session = await loadEmbeddedSession();
  server = await startServer(session, { apiKey: API_KEY });
});
after(async () => {
  await server.close();
  await session.unload();
});

const backend = () => new RemoteBackend({ baseUrl: server.baseUrl, apiKey: API_KEY });

const completion: GenerateParams = {
  requestId: 'c1',
  kind: 'completion',
  repoName: 'demo',
  repositoryContext: [
    { path: 'src/math.ts', content: 'export function add(a: number, b: number): number {\n  return a + b;\n}\n' },
    { path: 'src/text.ts', content: "export const greeting = 'hello';\n" },
  ],
  filePath: 'src/main.ts',
  prefix: "import { add } from './math';\nconst total = add(",
  suffix: ');\nconsole.log(total);\n',
  maxTokens: 16,
  sampling: { temperature: 0 },
};

test("chat: text arrives streamed in several chunks and equals the engine's own answer", async () => {
  const params: GenerateParams = {
    requestId: 'chat1',
    kind: 'chat',
    messages: [{ role: 'user', content: 'Explain add().' }],
    maxTokens: 24,
    sampling: { temperature: 0 },
  };
  const reference = await session.generate({ ...params, requestId: 'ref-chat' });
  const chunks: string[] = [];
  const result = await backend().generate(params, (chunk) => chunks.push(chunk));
  assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
  assert.equal(chunks.join(''), result.text);
  assert.equal(result.text, reference.text);
  assert.equal(result.finishReason, reference.finishReason === 'length' ? 'length' : 'stop');
  assert.equal(result.tokens, reference.tokens);
  assert.equal(result.promptTokens, reference.promptTokens);
});

test('chat with repository files: our server puts them before the conversation as the local engine does', async () => {
  const params: GenerateParams = {
    requestId: 'chat-repo',
    kind: 'chat',
    repoName: completion.repoName,
    repositoryContext: completion.repositoryContext,
    messages: [{ role: 'user', content: 'What does add() return?' }],
    maxTokens: 16,
    sampling: { temperature: 0 },
  };
  const reference = await session.generate({ ...params, requestId: 'ref-chat-repo' });
  const withoutFiles = await session.generate({ ...params, requestId: 'ref-chat-bare', repositoryContext: undefined });
  const result = await backend().generate(params, () => undefined);
  assert.equal(result.text, reference.text);
  assert.equal(result.promptTokens, reference.promptTokens);
  assert.ok(result.promptTokens > withoutFiles.promptTokens + 20, `${result.promptTokens} vs ${withoutFiles.promptTokens} without the files`);
});

test('chat with repository files to another server: a system message in front of the conversation', () => {
  const params: GenerateParams = {
    requestId: 'x',
    kind: 'chat',
    repoName: 'demo',
    repositoryContext: completion.repositoryContext,
    messages: [{ role: 'user', content: 'hi' }],
  };
  const other = chatRepository(params, { tidal: false });
  assert.equal(other.repository, undefined);
  assert.equal(other.messages.length, 2);
  assert.equal(other.messages[0].role, 'system');
  assert.match(other.messages[0].content, /Files of the repository demo:[\s\S]*src\/math\.ts[\s\S]*return a \+ b;[\s\S]*src\/text\.ts/);
  // An existing system message keeps its text after the files.
  const withSystem = chatRepository(
    {
      ...params,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hi' },
      ],
    },
    { tidal: false },
  );
  assert.equal(withSystem.messages.length, 2);
  assert.match(withSystem.messages[0].content, /src\/text\.ts[\s\S]*\nBe brief\.$/);
  // Ours gets the files as the `repository` extra; no files: the conversation alone.
  assert.deepEqual(chatRepository(params, { tidal: true }).repository, { name: 'demo', files: completion.repositoryContext });
  assert.deepEqual(chatRepository({ ...params, repositoryContext: [] }, { tidal: true }), { messages: params.messages });
});

test('completion: the repository goes over as the file-separator stream and becomes the local FIM prompt', async () => {
  const reference = await session.generate({ ...completion, requestId: 'ref-fim' });
  const chunks: string[] = [];
  const result = await backend().generate(completion, (chunk) => chunks.push(chunk));
  assert.equal(chunks.join(''), reference.text);
  assert.equal(result.text, reference.text);
  assert.equal(result.promptTokens, reference.promptTokens);
  // Same tokens as the local prompt: all but the last come from the server's prefix cache.
  assert.equal(result.reusedTokens, reference.promptTokens - 1);
  assert.equal(result.recomputedTokens, 1);
  // An edit near the end recomputes only the tail.
  const edited = await backend().generate({ ...completion, suffix: ');\nconsole.log(totals);\n' }, () => undefined);
  assert.ok(edited.recomputedTokens > 0 && edited.recomputedTokens < 10, `recomputed ${edited.recomputedTokens} of ${edited.promptTokens}`);
});

test('raw: the prompt as is', async () => {
  const params: GenerateParams = { requestId: 'raw1', kind: 'raw', prompt: 'function square(x) {\n', maxTokens: 12, sampling: { temperature: 0 } };
  const reference = await session.generate({ ...params, requestId: 'ref-raw' });
  const result = await backend().generate(params, () => undefined);
  assert.equal(result.text, reference.text);
});

test('aborting mid-stream cancels the request on the server; the text so far comes back', async () => {
  const seen = server.results.length;
  const controller = new AbortController();
  const chunks: string[] = [];
  const params: GenerateParams = { requestId: 'long', kind: 'raw', prompt: 'function loop() {\n', maxTokens: 4000, sampling: { temperature: 0 } };
  const result = await backend().generate(
    params,
    (chunk) => {
      chunks.push(chunk);
      if (chunks.length === 3) controller.abort();
    },
    controller.signal,
  );
  assert.equal(result.finishReason, 'cancelled');
  assert.equal(result.text, chunks.join(''));
  await waitForResults(server, seen + 1);
  assert.equal(server.results[seen].finishReason, 'cancelled');
  assert.ok(server.results[seen].tokens < 4000);
  // Already aborted: nothing is sent.
  const before = server.results.length;
  const early = await backend().generate(params, () => undefined, AbortSignal.abort());
  assert.equal(early.finishReason, 'cancelled');
  assert.equal(server.results.length, before);
});

test('a completion that a newer one replaces on the server resolves as cancelled, not as an error', async () => {
  let startNewer: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (startNewer = resolve));
  // Precondition: greedy, this completion runs its whole 400 tokens.
  const long: GenerateParams = {
    requestId: 'older',
    kind: 'completion',
    prefix: 'const numbers = [1, 2, 3, ',
    suffix: '];\n',
    maxTokens: 400,
    sampling: { temperature: 0 },
  };
  assert.equal((await session.generate({ ...long, requestId: 'ref-long' })).finishReason, 'length');
  // One backend is one client (one editor window): its newer completion replaces its older one.
  const remote = backend();
  const older = remote.generate(long, () => startNewer());
  await started;
  const newer = await remote.generate({ ...completion, requestId: 'newer' }, () => undefined);
  assert.notEqual(newer.finishReason, 'cancelled');
  const result = await older;
  assert.equal(result.finishReason, 'cancelled');
});

test('a wrong key, a server that is down, a wrong URL or model, a silent server: messages say what to check', async () => {
  await assert.rejects(
    new RemoteBackend({ baseUrl: server.baseUrl, apiKey: 'wrong' }).generate(completion, () => undefined),
    /refused the API key \(HTTP 401/,
  );
  await assert.rejects(
    new RemoteBackend({ baseUrl: server.baseUrl }).generate(completion, () => undefined),
    /API key/,
  );
  await assert.rejects(
    new RemoteBackend({ baseUrl: server.baseUrl.replace(/\/v1$/, ''), apiKey: API_KEY }).generate(completion, () => undefined),
    /HTTP 404.*tidal\.remoteUrl/,
  );
  await assert.rejects(
    new RemoteBackend({ baseUrl: server.baseUrl, apiKey: API_KEY, model: 'other' }).generate(completion, () => undefined),
    /does not serve "other" \(it serves: tidal-code-mini\).*tidal\.remoteModel/,
  );
  // The server's own 400, relayed.
  await assert.rejects(
    backend().generate({ ...completion, attention: { mode: 'bogus' as 'full' } }, () => undefined),
    /rejected the request \(HTTP 400\).*mode/,
  );

  // A port nobody listens on (taken, then released).
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  await assert.rejects(
    new RemoteBackend({ baseUrl: `http://127.0.0.1:${port}/v1` }).generate(completion, () => undefined),
    /connection refused.*tidal\.remoteUrl/,
  );

  // A server that accepts and never answers.
  const silent = http.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/v1`;
    await assert.rejects(
      new RemoteBackend({ baseUrl: url, timeoutMs: 200 }).generate(completion, () => undefined),
      /sent nothing for 0\.2 s.*tidal\.remoteUrl/,
    );
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
  assert.throws(() => new RemoteBackend({ baseUrl: 'not a url' }), /tidal\.remoteUrl/);
  assert.throws(() => new RemoteBackend({ baseUrl: 'ftp://host/v1' }), /http:\/\//);
});

// A stand-in for vLLM: lists a Qwen2.5-Coder model, takes no `suffix`, streams a fixed answer.
test("servers that are not ours get the model family's FIM prompt as text, without `suffix`", async () => {
  const bodies: Record<string, unknown>[] = [];
  const fake = http.createServer((req, res) => {
    if (req.url === '/v1/models') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'Qwen/Qwen2.5-Coder-7B', object: 'model' }] }));
      return;
    }
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      bodies.push(JSON.parse(raw));
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      // Events split across writes and CRLF line ends, as real servers may send them.
      res.write('data: {"choices":[{"index":0,"text":"1, 2","finish_reason":null}]}\r\n\r\ndata: {"choi');
      res.write('ces":[{"index":0,"text":"","finish_reason":"stop"}]}\n\n');
      res.end('data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":2}}\n\ndata: [DONE]\n\n');
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  try {
    const remote = new RemoteBackend({ baseUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1/` });
    const result = await remote.generate(completion, () => undefined);
    assert.equal(result.text, '1, 2');
    assert.equal(result.finishReason, 'stop');
    assert.equal(result.promptTokens, 40);
    assert.equal(result.tokens, 2);
    const body = bodies[0];
    assert.equal(body.model, 'Qwen/Qwen2.5-Coder-7B');
    assert.equal(body.suffix, undefined);
    assert.equal(
      body.prompt,
      '<|repo_name|>demo\n<|file_sep|>src/math.ts\n' +
        completion.repositoryContext?.[0].content +
        '\n<|file_sep|>src/text.ts\n' +
        completion.repositoryContext?.[1].content +
        "\n<|file_sep|>src/main.ts\n<|fim_prefix|>import { add } from './math';\nconst total = add(<|fim_suffix|>);\nconsole.log(total);\n<|fim_middle|>",
    );
    assert.ok((body.stop as string[]).includes('<|endoftext|>'));
    // Every request of one backend names the same client (OpenAI's `user`), another backend another.
    await remote.generate(completion, () => undefined);
    const other = new RemoteBackend({ baseUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1/` });
    await other.generate(completion, () => undefined);
    assert.equal(typeof body.user, 'string');
    assert.equal(bodies[1].user, body.user);
    assert.notEqual(bodies[2].user, body.user);
  } finally {
    fake.close();
  }
  assert.equal(inferFimFormat('bigcode/starcoder2-15b')?.order, 'spm');
  assert.equal(inferFimFormat('meta-llama/Llama-3.1-8B'), undefined);
});

test('a server error (HTTP 500), an error event mid-stream and a stream cut short are reported as such', async () => {
  let mode = '';
  const fake = http.createServer((req, res) => {
    if (req.url === '/v1/models') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ data: [{ id: 'some-model' }] }));
      return;
    }
    if (mode === '500') {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'CUDA out of memory' } }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n');
    if (mode === 'event') res.end('data: {"error":{"message":"engine crashed","code":null}}\n\n');
    else res.end(); // no finish_reason, no [DONE]
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  try {
    const remote = new RemoteBackend({ baseUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}/v1` });
    const chat: GenerateParams = { requestId: 'x', kind: 'chat', messages: [{ role: 'user', content: 'hi' }] };
    mode = '500';
    await assert.rejects(
      remote.generate(chat, () => undefined),
      /failed \(HTTP 500\): CUDA out of memory\. Check the server's log/,
    );
    mode = 'event';
    const seen: string[] = [];
    await assert.rejects(
      remote.generate(chat, (chunk) => seen.push(chunk)),
      /reported an error: engine crashed/,
    );
    assert.deepEqual(seen, ['Hel']);
    mode = 'cut';
    await assert.rejects(
      remote.generate(chat, () => undefined),
      /ended before the answer was complete/,
    );
  } finally {
    fake.close();
  }
});
