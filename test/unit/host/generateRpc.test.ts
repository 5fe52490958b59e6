// The model layer over JSON-RPC: spawn the built engine host, load a fixture model with the
// fixture tokenizer, stream a generation as engine/token notifications, cancel one, read stats.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { startEngineHost } from '../../../src/host/hostProcess';
import {
  cancelRequest,
  echoRequest,
  generateRequest,
  loadModelRequest,
  shutdownRequest,
  statsRequest,
  tokenNotification,
} from '../../../src/core/protocol/protocol';

const hostScript = path.resolve('dist/engine-host.js');

test('engine host loads a model, streams engine/token chunks that add up to the result, and cancels', { timeout: 60_000 }, async () => {
  assert.ok(existsSync(hostScript), 'dist/engine-host.js is missing: run `npm run build` first');
  const { child, connection } = startEngineHost(hostScript);
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const chunks = new Map<string, string[]>();
  connection.onNotification(tokenNotification, ({ requestId, text }) => {
    chunks.set(requestId, [...(chunks.get(requestId) ?? []), text]);
  });
  connection.listen();
  try {
    const before = await connection.sendRequest(statsRequest);
    assert.equal(before.model, null);
    await assert.rejects(
      connection.sendRequest(generateRequest, { requestId: 'early', kind: 'raw', prompt: 'hi' }),
      (error: Error & { data?: { code?: string } }) => /No model is loaded/.test(error.message) && error.data?.code === 'ERR_TIDAL_REQUEST',
    );
    await assert.rejects(
      connection.sendRequest(loadModelRequest, { modelDir: path.resolve('test/fixtures/models/llama2-mha-bf16') }),
      (error: Error & { data?: { code?: string } }) => /no tokenizer\.json/.test(error.message) && error.data?.code === 'ERR_TIDAL_MODEL',
    );

    const loaded = await connection.sendRequest(loadModelRequest, {
      modelDir: path.resolve('test/fixtures/models/qwen2-tied-sharded-f32'),
      tokenizerDir: path.resolve('test/fixtures/tokenizers/chatml-byte-bpe'),
      options: { threads: 2, backend: 'cpu' },
    });
    assert.equal(loaded.model.architecture, 'qwen2');
    assert.equal(loaded.model.vocabSize, 512);
    assert.equal(loaded.tokenizer.hasChatTemplate, true);
    assert.deepEqual(loaded.tokenizer.fim, { family: 'qwen', order: 'psm' });
    assert.ok(loaded.tokenizer.specialTokens.includes('<|im_end|>'));

    const result = await connection.sendRequest(generateRequest, {
      requestId: 'chat-1',
      kind: 'chat',
      messages: [{ role: 'user', content: 'Say something about add().' }],
      maxTokens: 24,
      attention: { mode: 'tidal', tokenBudget: 32 },
      sampling: { temperature: 0 },
    });
    assert.equal(result.requestId, 'chat-1');
    assert.ok(result.tokens > 0 && result.tokens <= 24);
    assert.ok(result.finishReason === 'length' || result.finishReason === 'stop');
    assert.ok(result.promptTokens > 10);
    assert.equal(result.reusedTokens + result.recomputedTokens, result.promptTokens);
    assert.ok(result.timings.totalMs >= result.timings.decodeMs);
    // Notifications are sent before the response, so all chunks have arrived by now.
    assert.equal((chunks.get('chat-1') ?? []).join(''), result.text);

    const completion = await connection.sendRequest(generateRequest, {
      requestId: 'fim-1',
      kind: 'completion',
      prefix: 'function add(a, b) {\n  return ',
      suffix: '\n}\n',
      maxTokens: 8,
      sampling: { temperature: 0 },
    });
    assert.equal((chunks.get('fim-1') ?? []).join(''), completion.text);

    // A long raw generation, cancelled once its first chunk arrives.
    const long = connection.sendRequest(generateRequest, {
      requestId: 'long',
      kind: 'raw',
      prompt: 'const x = ',
      maxTokens: 4000,
      sampling: { temperature: 0 },
    });
    const waitForChunk = async () => {
      for (let i = 0; i < 2000 && !chunks.has('long'); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    await waitForChunk();
    const { cancelled } = await connection.sendRequest(cancelRequest, { requestId: 'long' });
    const stopped = await long;
    // Unless the model ended the text on its own first, the cancel stopped it.
    assert.ok(stopped.finishReason === 'cancelled' || stopped.finishReason === 'stop', stopped.finishReason);
    if (!cancelled) assert.equal(stopped.finishReason, 'stop');
    if (stopped.finishReason === 'cancelled') assert.equal(cancelled, true);
    assert.ok(stopped.tokens < 4000);

    const stats = await connection.sendRequest(statsRequest);
    assert.equal(stats.model?.model.architecture, 'qwen2');
    assert.equal(stats.prefixCache.requests, 3);
    assert.ok((stats.usage?.tokensDecoded ?? 0) > 0);
    assert.equal(stats.queue.running, null);

    // The existing requests still work next to the model layer.
    assert.deepEqual(await connection.sendRequest(echoRequest, { text: 'still here' }), { text: 'still here' });
    await connection.sendRequest(shutdownRequest);
    connection.dispose();
    child.stdin.end();
    assert.equal(await exited, 0, stderr);
  } finally {
    connection.dispose();
    child.kill();
  }
});
