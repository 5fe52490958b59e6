// A new user's first session in a real VS Code: the embedded model is announced once as a demo
// with Select Model; a bad tidal.modelPath (a folder that does not exist, a model of an
// architecture the engine does not run) becomes an error notification with Select Model, Open
// Setting and Use Embedded, and a line in the Tidal Engine log; Use Embedded, pressed in the
// workbench, clears the setting and the embedded model loads again. The walkthrough is
// contributed and opens.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench, tidalApi } = require('./harness');

const MODEL_ERROR_ACTIONS = ['Select Model', 'Open Setting', 'Use Embedded'];
const EMBEDDED_MODEL = path.resolve(__dirname, '..', '..', '..', 'models', 'tidal-code-mini');

const modelPathSetting = () => vscode.workspace.getConfiguration('tidal').inspect('modelPath');

/** Sets tidal.modelPath in the user settings, as a user editing settings.json would. */
async function setModelPath(value) {
  await vscode.workspace.getConfiguration('tidal').update('modelPath', value, vscode.ConfigurationTarget.Global);
}

/** The text of the Tidal Engine log file (written by VS Code a little after each line). */
function logText(api) {
  try {
    return fs.readFileSync(api.logFile(), 'utf8');
  } catch {
    return '';
  }
}

/** Waits for an error notification about the model whose message matches `pattern`; returns it. */
async function errorNotice(api, pattern, afterIndex) {
  const found = await waitFor(
    () =>
      api
        .notifications()
        .slice(afterIndex)
        .find((notice) => notice.severity === 'error' && pattern.test(notice.message)),
    { timeoutMs: 60_000 },
  );
  assert.ok(found, `no error notification matching ${pattern}; shown: ${JSON.stringify(api.notifications())}`);
  return found;
}

/** Back to the embedded model, whatever a failed test left: the tests after this file use it. */
async function restoreEmbedded(api) {
  if ((modelPathSetting()?.globalValue ?? '') !== '') await setModelPath(undefined);
  await waitFor(() => api.getState().model.state === 'ready', { timeoutMs: 120_000, intervalMs: 200 });
}

test(
  'first run: the embedded model is announced as a demo, once, with Select Model',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForModel(120_000), 'ready', `model: ${JSON.stringify(api.getState().model)}`);
    const demo = await waitFor(() => api.notifications().filter((notice) => /embedded demo model/.test(notice.message)), { timeoutMs: 30_000 });
    assert.equal(demo.length, 1, `demo notes shown: ${JSON.stringify(api.notifications())}`);
    assert.equal(demo[0].severity, 'information');
    assert.deepEqual(demo[0].actions, ['Select Model', "Don't Show Again"]);
    assert.match(demo[0].message, /not useful/);
  },
  { timeoutMs: 150_000 },
);

test(
  'a tidal.modelPath that does not exist: an error notification with Select Model, Open Setting, Use Embedded, and a log line; Use Embedded brings the embedded model back',
  async () => {
    const api = await tidalApi();
    const missing = path.join(os.tmpdir(), `tidal-no-such-model-${process.pid}`);
    const before = api.notifications().length;
    try {
      await setModelPath(missing);
      assert.ok(await waitFor(() => api.getState().model.state === 'error', { timeoutMs: 60_000 }), `model: ${JSON.stringify(api.getState().model)}`);
      const notice = await errorNotice(api, /tidal\.modelPath names a path that does not exist/, before);
      assert.deepEqual(notice.actions, MODEL_ERROR_ACTIONS);
      assert.ok(notice.message.includes(missing), notice.message);
      const logged = await waitFor(() => logText(api).includes(`model ${missing}: The model path ${missing} does not exist`), { timeoutMs: 30_000 });
      assert.ok(logged, `no log line in ${api.logFile()}:\n${logText(api).slice(-2000)}`);

      // In the workbench (the notification center: the test runner's VS Code shows no toasts):
      // the notification with its three buttons; then a click on Use Embedded.
      await vscode.commands.executeCommand('notifications.showList');
      const seen = await captureWorkbench('integration-model-path-error', {
        waitForNotification: 'names a path that does not exist',
        pressNotificationButton: { message: 'names a path that does not exist', button: 'Use Embedded' },
      });
      if (seen) {
        const toast = seen.workbench.notifications.find((shown) => shown.message.includes('names a path that does not exist'));
        assert.ok(toast, `no such notification on screen: ${JSON.stringify(seen.workbench.notifications)}`);
        assert.deepEqual(toast.buttons, MODEL_ERROR_ACTIONS);
        assert.equal(seen.pressedNotificationButton, true, 'the runner found no Use Embedded button to press');
        assert.ok(
          await waitFor(() => (modelPathSetting()?.globalValue ?? '') === '', { timeoutMs: 30_000 }),
          `tidal.modelPath after Use Embedded: ${JSON.stringify(modelPathSetting())}`,
        );
        assert.ok(await waitFor(() => notice.answered, { timeoutMs: 10_000 }));
        assert.equal(notice.answer, 'Use Embedded');
        assert.ok(await waitFor(() => /using the embedded model/.test(logText(api)), { timeoutMs: 30_000 }), 'Use Embedded is not in the log');
      }
      await restoreEmbedded(api);
      assert.equal(api.getState().model.state, 'ready');
    } finally {
      await restoreEmbedded(api);
    }
  },
  { timeoutMs: 300_000 },
);

test(
  'a model of an unsupported architecture in tidal.modelPath: an error notification naming it, with the same actions, and a log line',
  async () => {
    const api = await tidalApi();
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'tidal-bert-'));
    fs.writeFileSync(
      path.join(folder, 'config.json'),
      JSON.stringify({ architectures: ['BertModel'], model_type: 'bert', vocab_size: 30522, hidden_size: 768 }),
    );
    // With a tokenizer beside it, the engine gets as far as reading the architecture.
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(EMBEDDED_MODEL, file), path.join(folder, file));
    const before = api.notifications().length;
    try {
      await setModelPath(folder);
      const notice = await errorNotice(api, /has an architecture Tidal does not support/, before);
      assert.deepEqual(notice.actions, MODEL_ERROR_ACTIONS);
      assert.match(notice.message, /BertModel/);
      const logged = await waitFor(() => logText(api).includes(`loading the model ${folder} failed: unsupported model architecture 'BertModel'`), {
        timeoutMs: 30_000,
      });
      assert.ok(logged, `no log line in ${api.logFile()}:\n${logText(api).slice(-2000)}`);
      await vscode.commands.executeCommand('notifications.showList');
      const seen = await captureWorkbench('integration-model-architecture-error', { waitForNotification: 'has an architecture Tidal does not support' });
      if (seen) {
        const shown = seen.workbench.notifications.find((item) => item.message.includes('has an architecture Tidal does not support'));
        assert.ok(shown, `no such notification on screen: ${JSON.stringify(seen.workbench.notifications)}`);
        assert.deepEqual(shown.buttons, MODEL_ERROR_ACTIONS);
      }
    } finally {
      await restoreEmbedded(api);
      fs.rmSync(folder, { recursive: true, force: true });
    }
    assert.equal(api.getState().model.state, 'ready', `model after clearing the setting: ${JSON.stringify(api.getState().model)}`);
    // The notes of this file are answered or stale now; close them so later screenshots show the window.
    await vscode.commands.executeCommand('notifications.clearAll');
    await vscode.commands.executeCommand('notifications.hideList');
  },
  { timeoutMs: 300_000 },
);

test(
  'the Get Started walkthrough is contributed and opens',
  async () => {
    const walkthroughs = vscode.extensions.getExtension('tidal-code.tidal-code').packageJSON.contributes.walkthroughs;
    assert.equal(walkthroughs[0].id, 'tidal.gettingStarted');
    await vscode.commands.executeCommand('workbench.action.openWalkthrough', 'tidal-code.tidal-code#tidal.gettingStarted', false);
    const seen = await captureWorkbench('integration-walkthrough');
    if (seen) assert.ok(seen.screenshot);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  },
  { timeoutMs: 150_000 },
);
