// The remote backend in a real VS Code: `tidal serve` runs on loopback with the embedded model,
// the settings point the extension at it, and a question asked from the command palette is
// answered by that server. The local engine is held (stopped) while the question is asked and
// answered, so the answer cannot have come from it.
'use strict';

const assert = require('node:assert/strict');
const vscode = require('vscode');

const { holdEngine } = require('./engineHold');
const { test, waitFor, tidalApi } = require('./harness');
const { startServer } = require('./tidalServe');

/** Resolves with `promise`, or rejects with `message` once `ms` have passed (a failure guard). */
function within(promise, ms, message) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

test(
  'remote backend: a question is answered by tidal serve on loopback, not by the local engine',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(120_000), 'ready');
    const { url, child } = await startServer();
    const config = vscode.workspace.getConfiguration('tidal');
    let hold;
    try {
      await config.update('remoteUrl', url, vscode.ConfigurationTarget.Global);
      await config.update('backend', 'remote', vscode.ConfigurationTarget.Global);
      assert.ok(
        await waitFor(() => /Remote backend/.test(api.getState().model.message ?? ''), { timeoutMs: 30_000 }),
        `model state ${JSON.stringify(api.getState().model)}`,
      );
      assert.ok(await waitFor(() => /REMOTE/i.test(api.statusBarText()), { timeoutMs: 30_000 }), `status bar: ${api.statusBarText()}`);

      hold = holdEngine(api);
      await within(
        vscode.commands.executeCommand('tidal.askAboutRepo', 'Which function picks the top k positions?'),
        120_000,
        'no answer within 120 s while the local engine was held: was the question sent to the local engine?',
      );
      hold.release();
      const answer = api.chat.lastAnswer();
      assert.ok(answer, 'no answer recorded');
      assert.equal(answer.error, undefined, `the remote answer failed: ${answer.error}`);
      assert.ok(answer.finishReason === 'length' || answer.finishReason === 'stop', `finish reason ${answer.finishReason}`);
      assert.ok(answer.text.length > 0 && answer.chunks >= 2, `${answer.chunks} chunks of "${answer.text.slice(0, 80)}"`);
      assert.equal(answer.streamed, answer.text);
      assert.ok(answer.promptTokens > 300, `the server saw a prompt of ${answer.promptTokens} tokens; the repository should be in it`);
    } finally {
      hold?.release();
      await config.update('backend', undefined, vscode.ConfigurationTarget.Global);
      await config.update('remoteUrl', undefined, vscode.ConfigurationTarget.Global);
      child.kill('SIGTERM');
    }
    assert.equal(await api.waitForModel(120_000), 'ready', 'the local model did not come back after leaving the remote backend');
  },
  { timeoutMs: 420_000 },
);
