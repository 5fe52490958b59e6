// The universal package (no native engine), as every platform but linux-x64 installs it, in a
// real VS Code: it activates, the status bar says there is no local engine, a notification offers
// the remote backend and its Use Remote Server button switches to it, and a question is then
// answered by `tidal serve` on loopback (started from this repository, which has the engine).
// Runs only when the runner installed that package: TIDAL_NATIVE_ENGINE=absent, or
// TIDAL_INTEGRATION_FILES=noNativeEngine.test.js (see withoutNativeEngine.json).
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const { captureWorkbench, test, waitFor } = require('./harness');
const { startServer } = require('./tidalServe');

const EXTENSION_ID = 'tidal-code.tidal-code';
const PLATFORM = `${process.platform}-${process.arch}`;
const NOTICE_ACTIONS = ['Use Remote Server', 'Open Settings', "Don't Show Again"];

function tidalExtension() {
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
  return extension;
}

async function tidalApi() {
  return tidalExtension().activate();
}

/** Every file under `dir` whose name ends in .node. */
function nativeFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).filter((name) => String(name).endsWith('.node'));
}

const logText = (api) => (fs.existsSync(api.logFile()) ? fs.readFileSync(api.logFile(), 'utf8') : '');

async function resetBackendSettings() {
  const config = vscode.workspace.getConfiguration('tidal');
  await config.update('backend', undefined, vscode.ConfigurationTarget.Global);
  await config.update('remoteUrl', undefined, vscode.ConfigurationTarget.Global);
}

test(
  'the universal package installs without a native binary and activates',
  async () => {
    const extension = tidalExtension();
    const extensionsDir = process.env.TIDAL_TEST_EXTENSIONS_DIR;
    if (extensionsDir) {
      const relative = path.relative(extensionsDir, extension.extensionPath);
      assert.ok(
        !relative.startsWith('..') && !path.isAbsolute(relative),
        `loaded from ${extension.extensionPath}, not from the VSIX installed in ${extensionsDir}`,
      );
    }
    assert.deepEqual(nativeFiles(extension.extensionPath), [], 'the universal package must carry no .node file');
    const api = await tidalApi();
    assert.equal(extension.isActive, true);
    assert.equal(api.getState().activated, true);
    // Every contributed command is there without the engine.
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = extension.packageJSON.contributes.commands.map((command) => command.command).filter((command) => !registered.has(command));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
  },
  { timeoutMs: 60_000 },
);

test(
  'the status bar says there is no local engine on this platform; one notification offers the remote server',
  async () => {
    const api = await tidalApi();
    assert.equal(await api.waitForEngine(60_000), 'unavailable', `engine: ${api.getState().engineState} ${api.getState().engineMessage ?? ''}`);
    const state = api.getState();
    assert.equal(state.localEngine.available, false);
    assert.equal(state.localEngine.platform, PLATFORM);
    assert.equal(state.enginePid, undefined, 'no engine host process runs');
    assert.ok(await waitFor(() => api.statusBarText().includes(`no local engine on ${PLATFORM}`), { timeoutMs: 30_000 }), `status bar: ${api.statusBarText()}`);
    assert.match(api.statusBarTooltip(), /tidal\.remoteUrl/);
    assert.match(api.statusBarTooltip(), /Open the remote server settings/);
    assert.match(api.getState().model.message ?? '', /no local engine.*tidal\.backend to remote/);
    assert.ok(await waitFor(() => /no local engine on/.test(logText(api)), { timeoutMs: 30_000 }), `no log line in ${api.logFile()}`);

    assert.ok(await waitFor(() => api.notifications().some((notice) => /no local engine on/.test(notice.message)), { timeoutMs: 30_000 }), 'no notification');
    const notices = api.notifications().filter((notice) => /no local engine on/.test(notice.message));
    assert.equal(notices.length, 1, 'shown once');
    const [notice] = notices;
    assert.equal(notice.severity, 'warning');
    assert.deepEqual(notice.actions, NOTICE_ACTIONS);
    assert.match(notice.message, /tidal\.backend: remote/);

    // On screen (the notification center: the test runner's VS Code shows no toasts), then a click
    // on Use Remote Server, as a person would.
    await vscode.commands.executeCommand('notifications.showList');
    const seen = await captureWorkbench('integration-no-native-engine', {
      waitForNotification: 'no local engine on',
      pressNotificationButton: { message: 'no local engine on', button: 'Use Remote Server' },
    });
    try {
      if (seen) {
        const shown = seen.workbench.notifications.find((item) => item.message.includes('no local engine on'));
        assert.ok(shown, `no such notification on screen: ${JSON.stringify(seen.workbench.notifications)}`);
        assert.deepEqual(shown.buttons, NOTICE_ACTIONS);
        assert.equal(seen.pressedNotificationButton, true, 'the runner found no Use Remote Server button to press');
        assert.ok(await waitFor(() => notice.answered, { timeoutMs: 30_000 }));
        assert.equal(notice.answer, 'Use Remote Server');
        const backend = () => vscode.workspace.getConfiguration('tidal').inspect('backend')?.globalValue;
        assert.ok(await waitFor(() => backend() === 'remote', { timeoutMs: 30_000 }), `tidal.backend after Use Remote Server: ${backend()}`);
        assert.ok(await waitFor(() => /REMOTE/.test(api.statusBarText()), { timeoutMs: 30_000 }), `status bar: ${api.statusBarText()}`);
      }
    } finally {
      await vscode.commands.executeCommand('notifications.clearAll');
      await vscode.commands.executeCommand('notifications.hideList');
      // Use Remote Server opened the settings at tidal.remoteUrl (still the default here).
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    }
  },
  { timeoutMs: 240_000 },
);

test(
  'with tidal.backend remote pointing at tidal serve, a chat question is answered; back on auto, the status bar says no local engine again, without a second notification',
  async () => {
    const api = await tidalApi();
    const { url, child } = await startServer();
    const config = vscode.workspace.getConfiguration('tidal');
    try {
      await config.update('remoteUrl', url, vscode.ConfigurationTarget.Global);
      await config.update('backend', 'remote', vscode.ConfigurationTarget.Global);
      assert.ok(
        await waitFor(() => /Remote backend/.test(api.getState().model.message ?? ''), { timeoutMs: 30_000 }),
        `model state ${JSON.stringify(api.getState().model)}`,
      );
      assert.ok(await waitFor(() => /REMOTE/.test(api.statusBarText()), { timeoutMs: 30_000 }), `status bar: ${api.statusBarText()}`);
      assert.match(api.statusBarTooltip(), new RegExp(`There is no local engine on ${PLATFORM}; requests go to the remote server`));

      await vscode.commands.executeCommand('tidal.askAboutRepo', 'Which function picks the top k positions?');
      const answer = api.chat.lastAnswer();
      assert.ok(answer, 'no answer recorded');
      assert.equal(answer.error, undefined, `the remote answer failed: ${answer.error}`);
      assert.ok(answer.finishReason === 'length' || answer.finishReason === 'stop', `finish reason ${answer.finishReason}`);
      assert.ok(answer.text.length > 0, 'an empty answer');
      assert.equal(answer.streamed, answer.text);
      assert.ok(answer.promptTokens > 0, `the server reported a prompt of ${answer.promptTokens} tokens`);
      const seen = await captureWorkbench('integration-no-native-engine-remote-answer', { waitForChatView: true });
      if (seen) assert.equal(seen.workbench.chatWebviewVisible, true);
    } finally {
      await resetBackendSettings();
      child.kill('SIGTERM');
    }
    assert.ok(await waitFor(() => api.statusBarText().includes(`no local engine on ${PLATFORM}`), { timeoutMs: 30_000 }), `status bar: ${api.statusBarText()}`);
    assert.equal(api.notifications().filter((notice) => /no local engine on/.test(notice.message)).length, 1, 'the notification is shown once per window');
    // A question to the local backend fails at once, saying why, instead of waiting for a model.
    await vscode.commands.executeCommand('tidal.askAboutRepo', 'Is there a local engine?');
    const failed = api.chat.lastAnswer();
    assert.match(failed?.error ?? '', /no local engine/, `answer: ${JSON.stringify(failed)}`);
  },
  { timeoutMs: 300_000 },
);
