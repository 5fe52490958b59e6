// Integration test of the Tidal language model (vscode.lm, vendor "tidal") with the remote
// backend, in the real VS Code: with tidal.backend = remote another extension (this suite) is
// offered the remote server's model, and its request is answered by that server (a fake
// OpenAI-compatible one, suite/fakeServer.js) through the backend the settings select; back on
// the local backend, the loaded local model is offered again.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { withFakeServer } = require('./fakeServer');
const { test, waitFor, tidalApi } = require('./harness');

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

/** The vendor "tidal" models vscode.lm offers once `accept` takes one of them. */
async function offered(accept) {
  return waitFor(
    async () => {
      const models = await vscode.lm.selectChatModels({ vendor: 'tidal' });
      return models.some(accept) ? models : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
}

test(
  'language model, remote backend: vscode.lm offers the remote server model and its answer comes from that server',
  async () => {
    const api = await tidalApi();
    await withFakeServer(api, async (server) => {
      const host = new URL(server.url).host;
      const models = await offered((model) => model.id === 'remote');
      assert.ok(models, `vscode.lm offers no remote model: ${JSON.stringify((await vscode.lm.selectChatModels({ vendor: 'tidal' })).map((m) => m.id))}`);
      assert.deepEqual(
        models.map((model) => model.id),
        ['remote'],
        'the local model is still offered on the remote backend',
      );
      const [model] = models;
      assert.ok(model.name.includes(host), model.name);
      assert.ok(model.maxInputTokens > 0);

      server.answer = 'The remote server says: add(a, b) returns a + b.';
      const before = server.chatRequests.length;
      const question = 'What does add(a, b) return?';
      const response = await model.sendRequest(
        [vscode.LanguageModelChatMessage.User(question)],
        { modelOptions: { maxTokens: 32 } },
        new vscode.CancellationTokenSource().token,
      );
      let text = '';
      for await (const chunk of response.text) text += chunk;
      assert.equal(text, server.answer);
      assert.equal(server.chatRequests.length, before + 1, 'the server got no request');
      const request = server.chatRequests.at(-1);
      assert.equal(request.model, 'fixed-answers');
      assert.equal(request.max_tokens, 32);
      assert.equal(request.messages.at(-1).content, question);
    });
    // Back on the local backend: the embedded model again, and no remote one.
    const local = await offered((model) => model.id === 'tidal-code-mini');
    assert.ok(local, 'the local model is not offered again');
    assert.deepEqual(
      local.map((model) => model.id),
      ['tidal-code-mini'],
    );
  },
  { timeoutMs: 300_000 },
);
