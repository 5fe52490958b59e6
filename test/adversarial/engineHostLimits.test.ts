// A request's own bounds: maxTokens beyond the room left in the context is cut to that room (the
// answer ends with 'length', neither an engine error nor 'context_full'), and a request that runs
// past the session's wall-clock limit stops with 'length' and the text it has so far.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { ModelSession } from '../../src/host/modelSession';
import { generateRequest } from '../../src/core/protocol/protocol';
import { loadAddon } from '../../src/native/addon';
import { embeddedModelDir, loadEmbeddedModel, startHost } from './hostFixture';

// The embedded model goes on counting for as long as it is let.
const countingPrompt = `<|file_sep|>src/numbers.py\nNUMBERS = [${Array.from({ length: 24 }, (_, index) => index + 1).join(', ')}, `;

test('cause 4: maxTokens past the room left in the context is clamped to that room', { timeout: 90_000 }, async () => {
  const host = startHost();
  try {
    const { connection } = host;
    const loaded = await loadEmbeddedModel(connection, { maxContext: 128 });
    assert.equal(loaded.model.maxContext, 128);
    for (const maxTokens of [1_000, 2_000_000]) {
      const result = await connection.sendRequest(generateRequest, {
        requestId: `room-${maxTokens}`,
        kind: 'raw',
        prompt: countingPrompt,
        maxTokens,
        sampling: { temperature: 0 },
      });
      const room = 128 - result.promptTokens;
      assert.ok(room > 0 && room < 100, `room ${room}`);
      assert.equal(result.finishReason, 'length', `maxTokens ${maxTokens}: ${result.finishReason} after ${result.tokens} tokens`);
      assert.equal(result.tokens, room);
    }
    // Within the room nothing changes.
    const small = await connection.sendRequest(generateRequest, {
      requestId: 'small',
      kind: 'raw',
      prompt: countingPrompt,
      maxTokens: 5,
      sampling: { temperature: 0 },
    });
    assert.equal(small.tokens, 5);
  } finally {
    await host.stop();
  }
});

test('cause 4: a request past the session time limit stops with length and keeps its text; the next request runs', { timeout: 90_000 }, async () => {
  const addon = loadAddon(path.resolve('dist'));
  const session = await ModelSession.load(addon, { modelDir: embeddedModelDir, options: { backend: 'cpu', threads: 2, maxContext: 8192 } }, undefined, {
    requestTimeLimitMs: 400,
  });
  try {
    const chunks: string[] = [];
    const started = Date.now();
    const result = await session.generate({ requestId: 'long', kind: 'raw', prompt: countingPrompt, maxTokens: 8000, sampling: { temperature: 0 } }, (text) =>
      chunks.push(text),
    );
    const elapsed = Date.now() - started;
    assert.equal(result.finishReason, 'length');
    assert.ok(result.tokens > 0 && result.tokens < 8000 - result.promptTokens, `${result.tokens} tokens`);
    assert.equal(chunks.join(''), result.text);
    assert.ok(elapsed < 3_000, `stopped after ${elapsed} ms`);
    const next = await session.generate({ requestId: 'next', kind: 'raw', prompt: countingPrompt, maxTokens: 4, sampling: { temperature: 0 } });
    assert.equal(next.tokens, 4);
  } finally {
    await session.unload();
  }
});
