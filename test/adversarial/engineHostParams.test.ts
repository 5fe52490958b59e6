// Wrongly typed request params at the engine host's boundary: each one is refused with a JSON-RPC
// InvalidParams error (-32602) whose message names the bad field, before anything reaches the
// model; good requests before and after still work.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { generateRequest } from '../../src/core/protocol/protocol';
import { loadEmbeddedModel, startHost } from './hostFixture';

const chat = { requestId: 'chat', kind: 'chat', messages: [{ role: 'user', content: 'hi' }], maxTokens: 2 };
const completion = { requestId: 'fim', kind: 'completion', prefix: 'def f(x):\n    return ', suffix: '\n', maxTokens: 2 };
const raw = { requestId: 'raw', kind: 'raw', prompt: 'def f(x):\n', maxTokens: 2 };

// [method, params, the field the error must name]
const badRequests: [string, unknown, RegExp][] = [
  ['engine/generate', { ...chat, messages: [{ role: 'user', content: 5 }] }, /messages\[0\]\.content/],
  ['engine/generate', { ...completion, repositoryContext: 'x' }, /repositoryContext/],
  ['engine/generate', { ...completion, prefix: 5 }, /prefix/],
  ['engine/generate', { ...completion, suffix: ['a'] }, /suffix/],
  ['engine/generate', { ...completion, repositoryContext: [{ path: 'a.py', content: null }] }, /repositoryContext\[0\]\.content/],
  ['engine/generate', { ...chat, messages: [{ role: 'robot', content: 'hi' }] }, /messages\[0\]\.role/],
  ['engine/generate', { ...chat, messages: 'hi' }, /messages/],
  ['engine/generate', { ...raw, prompt: { text: 'x' } }, /prompt/],
  ['engine/generate', { ...raw, kind: 'sql' }, /kind/],
  ['engine/generate', { ...raw, requestId: 7 }, /requestId/],
  ['engine/generate', { ...raw, requestId: undefined }, /requestId/],
  ['engine/generate', { ...raw, maxTokens: -1 }, /maxTokens/],
  ['engine/generate', { ...raw, maxTokens: 'ten' }, /maxTokens/],
  ['engine/generate', { ...raw, maxTokens: 1.5 }, /maxTokens/],
  ['engine/generate', { ...raw, sampling: { temperature: 'hot' } }, /sampling\.temperature/],
  ['engine/generate', { ...raw, sampling: { seed: -3 } }, /sampling\.seed/],
  ['engine/generate', { ...raw, sampling: 'greedy' }, /sampling/],
  ['engine/generate', { ...raw, attention: { mode: 'sparse' } }, /attention\.mode/],
  ['engine/generate', { ...raw, attention: { selectionLayers: [1, 'two'] } }, /attention\.selectionLayers\[1\]/],
  ['engine/generate', { ...completion, repository: 'yes' }, /repository/],
  ['engine/generate', { ...completion, client: 3 }, /client/],
  ['engine/generate', 'just a string', /params/],
  ['engine/generate', [raw], /params/],
  ['engine/cancel', { requestId: 5 }, /requestId/],
  ['engine/echo', { text: 5 }, /text/],
  ['workspace/open', { root: 'relative/path', include: [], exclude: [], maxTokens: 10 }, /root/],
  ['workspace/open', { root: '/tmp', include: 'src/**', exclude: [], maxTokens: 10 }, /include/],
  ['workspace/open', { root: '/tmp', include: [], exclude: [3], maxTokens: 10 }, /exclude\[0\]/],
  ['workspace/open', { root: '/tmp', include: [], exclude: [], maxTokens: Number.NaN }, /maxTokens/],
  ['workspace/open', { root: '/tmp', include: [], exclude: [], maxTokens: 10, persistDir: 4 }, /persistDir/],
  ['workspace/open', { root: '/tmp', folders: [{ name: 'a', path: 'relative' }], include: [], exclude: [], maxTokens: 10 }, /folders\[0\]\.path/],
  ['workspace/open', { root: '/tmp', folders: [{ name: 'a/b', path: '/tmp' }], include: [], exclude: [], maxTokens: 10 }, /folders\[0\]\.name/],
  [
    'workspace/open',
    {
      root: '/tmp',
      folders: [
        { name: 'a', path: '/tmp' },
        { name: 'a', path: '/var' },
      ],
      include: [],
      exclude: [],
      maxTokens: 10,
    },
    /twice/,
  ],
  ['workspace/open', { root: '/tmp', folders: [], include: [], exclude: [], maxTokens: 10 }, /at least one/],
  ['engine/loadModel', { modelDir: 5 }, /modelDir/],
  ['engine/loadModel', { modelDir: '/tmp', options: { threads: 'many' } }, /options\.threads/],
  ['engine/loadModel', { modelDir: '/tmp', options: { backend: 'tpu' } }, /options\.backend/],
  ['engine/loadModel', { modelDir: '/tmp', tokenizerDir: false }, /tokenizerDir/],
];

test('cause 14: wrongly typed params are refused with InvalidParams naming the field; the host keeps serving', { timeout: 90_000 }, async () => {
  const host = startHost();
  try {
    const { connection } = host;
    await loadEmbeddedModel(connection);
    const before = await connection.sendRequest(generateRequest, { requestId: 'before', kind: 'raw', prompt: 'def f(x):\n', maxTokens: 2 });
    assert.ok(before.tokens > 0);
    for (const [method, params, field] of badRequests) {
      const what = `${method} ${JSON.stringify(params)}`;
      await assert.rejects(
        connection.sendRequest(method, params),
        (error: Error & { code?: number; data?: { code?: string } }) => {
          assert.equal(error.code, -32602, `${what}: ${error.message}`);
          assert.match(error.message, field, what);
          assert.equal(error.data?.code, 'ERR_TIDAL_REQUEST', what);
          return true;
        },
        what,
      );
    }
    const after = await connection.sendRequest(generateRequest, {
      requestId: 'after',
      kind: 'chat',
      messages: [{ role: 'user', content: 'hi' }],
      maxTokens: 2,
    });
    assert.equal(after.requestId, 'after');
    // Fields the host does not know are left alone (a newer extension may send more).
    const extra = await connection.sendRequest(generateRequest, { ...raw, requestId: 'extra', futureField: { anything: true } } as never);
    assert.equal(extra.requestId, 'extra');
  } finally {
    await host.stop();
  }
});
