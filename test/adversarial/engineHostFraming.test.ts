// Hostile JSON-RPC to the engine host process. Broken framing (a header without a usable
// Content-Length, a body that is not JSON) leaves no way to find the next message: the host must
// exit with a non-zero code and say why on stderr, so the extension restarts it, instead of
// staying alive and deaf. Well-framed but hostile messages (unknown methods, huge or deeply
// nested params, a flood of requests and cancellations) get answers, and the host lives on.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cancelRequest, generateRequest, statsRequest, type GenerateResult } from '../../src/core/protocol/protocol';
import { exitWithin, frame, loadEmbeddedModel, readResponses, startBareHost, startHost, within } from './hostFixture';

const brokenHeaders: { name: string; bytes: Buffer }[] = [
  { name: 'Content-Length that is not a number', bytes: Buffer.from('Content-Length: abc\r\n\r\n{}') },
  {
    name: 'no Content-Length header',
    bytes: Buffer.from('Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"engine/echo","params":{"text":"x"}}'),
  },
  { name: 'an empty header block', bytes: Buffer.from('\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"engine/echo","params":{"text":"x"}}') },
  { name: 'a negative Content-Length', bytes: Buffer.from('Content-Length: -5\r\n\r\n{"a":1}') },
  { name: 'a Content-Length far beyond any message', bytes: Buffer.from('Content-Length: 99999999999999\r\n\r\n{"jsonrpc":"2.0"') },
  { name: 'a fractional Content-Length', bytes: Buffer.from('Content-Length: 2.5\r\n\r\n{}') },
  { name: 'a header line without a colon', bytes: Buffer.from('hello engine\r\n\r\n') },
  { name: 'a body that is not JSON', bytes: Buffer.from('Content-Length: 9\r\n\r\n{"a":1,"b') },
  { name: 'a header that never ends', bytes: Buffer.from('X'.repeat(64 * 1024)) },
];

for (const { name, bytes } of brokenHeaders) {
  test(`cause 12: ${name} makes the host exit non-zero with a reason on stderr, not go deaf`, { timeout: 30_000 }, async () => {
    const host = startBareHost();
    try {
      // A first message that works, so the host is known to be listening before the garbage.
      host.child.stdin.write(frame({ jsonrpc: '2.0', id: 0, method: 'engine/echo', params: { text: 'before' } }));
      host.child.stdin.write(bytes);
      const exit = await exitWithin(host, 5_000);
      assert.ok(exit !== undefined, `the host is still running 5 s after ${name}; stderr:\n${host.stderr()}`);
      assert.ok(exit.code !== 0 && exit.code !== null, `exit ${JSON.stringify(exit)}`);
      assert.match(host.stderr(), /message|header|Content-Length|JSON/i);
    } finally {
      await host.stop();
    }
  });
}

test('cause 12: a message split into one-byte writes is still read, and closing stdin ends the host with code 0', { timeout: 30_000 }, async () => {
  const host = startBareHost();
  try {
    const bytes = frame({ jsonrpc: '2.0', id: 1, method: 'engine/echo', params: { text: 'héllo 🌊' } });
    let answer = '';
    host.child.stdout.setEncoding('utf8');
    host.child.stdout.on('data', (chunk: string) => (answer += chunk));
    for (const byte of bytes) {
      host.child.stdin.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const deadline = Date.now() + 5_000;
    while (!answer.includes('héllo 🌊') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(answer, /"text":"héllo 🌊"/);
    host.child.stdin.end();
    assert.deepEqual(await exitWithin(host, 5_000), { code: 0, signal: null });
  } finally {
    await host.stop();
  }
});

test(
  'cause 12: unknown methods, messages that are not JSON-RPC, and deeply nested or huge params get answers; the host lives on',
  { timeout: 60_000 },
  async () => {
    const host = startBareHost();
    const { response } = readResponses(host);
    const send = (message: unknown) => host.child.stdin.write(frame(message));
    try {
      send({ jsonrpc: '2.0', id: 1, method: 'engine/selfDestruct', params: { now: true } });
      assert.equal((await response(1, 5_000)).error?.code, -32601);
      // 100 000 levels of arrays: JSON.stringify cannot write it, so the test writes the text.
      const depth = 100_000;
      const nested = `${'['.repeat(depth)}"bottom"${']'.repeat(depth)}`;
      send(`{"jsonrpc":"2.0","id":2,"method":"engine/nowhere","params":{"nested":${nested}}}`);
      assert.equal((await response(2, 10_000)).error?.code, -32601);
      send(`{"jsonrpc":"2.0","id":3,"method":"engine/echo","params":{"text":${nested}}}`);
      const echoed = await response(3, 10_000);
      assert.equal(echoed.error?.code, -32602, JSON.stringify(echoed).slice(0, 200));
      assert.match(echoed.error?.message ?? '', /text/);
      send(`{"jsonrpc":"2.0","id":4,"method":"engine/generate","params":{"requestId":"deep","kind":"raw","prompt":${nested}}}`);
      assert.equal((await response(4, 10_000)).error?.code, -32602);
      send({ jsonrpc: '2.0', id: 5, method: 'engine/nowhere', params: { huge: 'x'.repeat(32 * 1024 * 1024) } });
      assert.equal((await response(5, 20_000)).error?.code, -32601);
      const big = 'é'.repeat(4 * 1024 * 1024);
      send({ jsonrpc: '2.0', id: 6, method: 'engine/echo', params: { text: big } });
      assert.deepEqual((await response(6, 20_000)).result, { text: big });
      // Notifications nobody handles, or with nonsense params, are dropped without an answer.
      send({ jsonrpc: '2.0', method: 'engine/whatever', params: [1, 2, 3] });
      send({ jsonrpc: '2.0', method: 'workspace/events', params: { events: 'all of them' } });
      send({ jsonrpc: '2.0', method: 'engine/prefetch', params: { kind: 'completion', requestId: 5, prefix: {} } });
      // JSON that is not JSON-RPC: nothing to answer, nothing to break.
      send(null);
      send([1, 2, 3]);
      send(42);
      send({ jsonrpc: '2.0', id: 77 });
      send({ jsonrpc: '2.0', id: 78, method: 42 });
      send({ jsonrpc: '2.0', id: 8, method: 'engine/echo', params: { text: 'still here' } });
      assert.deepEqual((await response(8, 5_000)).result, { text: 'still here' });
      assert.equal(await exitWithin(host, 100), undefined);
    } finally {
      await host.stop();
    }
  },
);

test('a flood of generate requests with cancellations settles every request and leaves the host serving', { timeout: 120_000 }, async () => {
  const host = startHost();
  try {
    const { connection } = host;
    await loadEmbeddedModel(connection);
    const requests: Promise<GenerateResult | Error>[] = [];
    for (let index = 0; index < 300; index++) {
      const requestId = `flood-${index}`;
      const kind = index % 3 === 0 ? 'completion' : 'raw';
      const params =
        kind === 'completion'
          ? ({ requestId, kind, prefix: `def f${index}(x):\n    return `, suffix: '\n', maxTokens: 4, client: `c${index % 4}` } as const)
          : ({ requestId, kind, prompt: `<|file_sep|>src/f${index}.py\ndef f(x):\n`, maxTokens: 6 } as const);
      requests.push(connection.sendRequest(generateRequest, params).catch((error: Error) => error));
      if (index % 2 === 1) void connection.sendRequest(cancelRequest, { requestId }).catch(() => undefined);
      if (index % 7 === 0) void connection.sendRequest(cancelRequest, { requestId: `flood-${index - 3}` }).catch(() => undefined);
      if (index % 11 === 0) void connection.sendRequest(cancelRequest, { requestId: 'never-was' }).catch(() => undefined);
    }
    const settled = await within(Promise.all(requests), 90_000, 'the flood');
    for (const [index, outcome] of settled.entries()) {
      if (outcome instanceof Error) assert.fail(`flood-${index} failed: ${outcome.message}`);
      assert.ok(['length', 'stop', 'cancelled'].includes(outcome.finishReason), `flood-${index}: ${outcome.finishReason}`);
    }
    assert.ok(
      settled.some((outcome) => !(outcome instanceof Error) && outcome.finishReason !== 'cancelled'),
      'nothing ran',
    );
    const stats = await connection.sendRequest(statsRequest);
    assert.equal(stats.queue.queued, 0);
    assert.equal(stats.queue.running, null);
    const after = await connection.sendRequest(generateRequest, { requestId: 'after', kind: 'raw', prompt: 'def g(y):\n', maxTokens: 4 });
    assert.ok(after.tokens > 0);
  } finally {
    await host.stop();
  }
});
