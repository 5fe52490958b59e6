// Integration tests: the packaged Tidal Code extension, installed from its VSIX into a real VS
// Code, driven only through the public `vscode` API. The tests run in order in one window.
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const vscode = require('vscode');

const { test, waitFor, captureWorkbench } = require('./harness');

const EXTENSION_ID = 'tidal-code.tidal-code';

/** @typedef {import('../../../src/vscode/testApi').TidalApi} TidalApi */

function tidalExtension() {
  const extension = vscode.extensions.getExtension(EXTENSION_ID);
  assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
  return extension;
}

/** Activates the extension (a no-op once active) and returns the API object activate() returned. */
async function tidalApi() {
  /** @type {TidalApi} */
  const api = await tidalExtension().activate();
  assert.ok(api && typeof api.getState === 'function', 'activate() did not return an API object with getState()');
  return api;
}

function contributes() {
  return tidalExtension().packageJSON.contributes;
}

test('the fixture workspace is open and its files load', async () => {
  const folders = vscode.workspace.workspaceFolders ?? [];
  assert.equal(folders.length, 1, 'expected exactly one workspace folder');
  const files = await vscode.workspace.findFiles('**/*', undefined, 50);
  const names = files.map((uri) => vscode.workspace.asRelativePath(uri)).sort();
  assert.deepEqual(names, ['README.md', 'src/kvCache.ts', 'src/select_top_k.py']);
  // A Python file: no language server starts for it, which keeps a 2-core machine free.
  const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folders[0].uri, 'src', 'select_top_k.py'));
  await vscode.window.showTextDocument(document);
  assert.match(document.getText(), /def select_top_k/);
});

test('the extension is installed from the VSIX and activates', async () => {
  const extension = tidalExtension();
  assert.equal(extension.packageJSON.name, 'tidal-code');
  const extensionsDir = process.env.TIDAL_TEST_EXTENSIONS_DIR;
  if (extensionsDir) {
    const relative = path.relative(extensionsDir, extension.extensionPath);
    assert.ok(
      !relative.startsWith('..') && !path.isAbsolute(relative),
      `loaded from ${extension.extensionPath}, not from the VSIX installed in ${extensionsDir}`,
    );
  }
  const api = await tidalApi();
  assert.equal(extension.isActive, true);
  const state = api.getState();
  assert.equal(state.activated, true);
  assert.equal(typeof state.engineState, 'string');
});

test('every contributed command is registered', async () => {
  const contributed = contributes().commands.map((command) => command.command);
  assert.ok(contributed.length > 0, 'the manifest contributes no commands');
  const registered = new Set(await vscode.commands.getCommands(true));
  const missing = contributed.filter((command) => !registered.has(command));
  assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
  const reported = new Set((await tidalApi()).getState().commandsRegistered);
  const unreported = contributed.filter((command) => !reported.has(command));
  assert.deepEqual(unreported, [], `getState().commandsRegistered lacks: ${unreported.join(', ')}`);
});

test('settings under tidal.* have their defaults', async () => {
  // contributes.configuration is a list of sections (the main one, Advanced: attention).
  const properties = Object.assign({}, ...[contributes().configuration].flat().map((section) => section.properties));
  const keys = Object.keys(properties);
  assert.ok(keys.length > 0, 'the manifest contributes no settings');
  const config = vscode.workspace.getConfiguration();
  for (const key of keys) {
    const inspected = config.inspect(key);
    assert.ok(inspected, `VS Code does not know the setting ${key}`);
    assert.deepEqual(inspected.defaultValue, properties[key].default, `${key}: default registered in VS Code`);
    assert.deepEqual(config.get(key), properties[key].default, `${key}: effective value in a fresh profile`);
  }
  // The defaults the rest of the extension is written against.
  const tidal = vscode.workspace.getConfiguration('tidal');
  assert.equal(tidal.get('backend'), 'auto');
  assert.equal(tidal.get('attention.mode'), 'tidal');
  assert.equal(tidal.get('attention.tokenBudget'), 2048);
  assert.equal(tidal.get('inlineCompletions.enabled'), true);
  assert.equal(tidal.get('inlineCompletions.debounceMs'), 150);
});

test('tidal.toggleInlineCompletions flips tidal.inlineCompletions.enabled and back', async () => {
  const enabled = () => vscode.workspace.getConfiguration('tidal').get('inlineCompletions.enabled');
  const before = enabled();
  const afterFirst = await vscode.commands.executeCommand('tidal.toggleInlineCompletions');
  assert.equal(await waitFor(() => enabled() === !before, { timeoutMs: 30_000 }), true, 'the setting did not flip');
  assert.equal(afterFirst, !before, 'the command returns the new value');
  const afterSecond = await vscode.commands.executeCommand('tidal.toggleInlineCompletions');
  assert.equal(await waitFor(() => enabled() === before, { timeoutMs: 30_000 }), true, 'the setting did not flip back');
  assert.equal(afterSecond, before);
});

test('tidal.showEngineLog runs without error', async () => {
  await vscode.commands.executeCommand('tidal.showEngineLog');
});

test(
  'the engine host starts and reports ready',
  async () => {
    const api = await tidalApi();
    const state = await api.waitForEngine(120_000);
    assert.equal(state, 'ready', `engine state "${state}": ${api.getState().engineMessage ?? 'no message'}`);
    await captureWorkbench('integration-engine-ready');
  },
  { timeoutMs: 240_000 },
);

test(
  'the embedded default model loads in the engine, on the CPU here',
  async () => {
    const api = await tidalApi();
    const state = await api.waitForModel(120_000);
    const model = api.getState().model;
    assert.equal(state, 'ready', `model state "${state}": ${model.message ?? 'no message'}`);
    assert.equal(model.architecture, 'llama');
    assert.equal(model.backend, 'cpu');
    assert.ok(model.maxContext >= 8192, `context ${model.maxContext}`);
  },
  { timeoutMs: 150_000 },
);

test(
  'a crashed engine process is restarted and the model is loaded again',
  async () => {
    const api = await tidalApi();
    const before = api.getState().enginePid;
    assert.ok(before, 'no engine pid reported');
    process.kill(before, 'SIGKILL');
    const crashed = await waitFor(() => api.getState().enginePid !== before || api.getState().engineState !== 'ready', { timeoutMs: 30_000 });
    assert.ok(crashed, 'the extension did not notice the engine process was killed');
    const back = await waitFor(() => api.getState().model.state === 'ready' && api.getState().enginePid !== before, { timeoutMs: 150_000, intervalMs: 200 });
    assert.ok(back, `after the crash: engine ${api.getState().engineState}, model ${JSON.stringify(api.getState().model)}`);
  },
  { timeoutMs: 180_000 },
);

test(
  'tidal.restartEngine brings the engine back to ready',
  async () => {
    const api = await tidalApi();
    await vscode.commands.executeCommand('tidal.restartEngine');
    const state = await api.waitForEngine(120_000);
    assert.equal(state, 'ready', `engine state "${state}" after restart: ${api.getState().engineMessage ?? 'no message'}`);
    assert.equal(await api.waitForModel(120_000), 'ready', `model after restart: ${JSON.stringify(api.getState().model)}`);
  },
  { timeoutMs: 300_000 },
);

test(
  'tidal.openChat reveals the chat view',
  async () => {
    const api = await tidalApi();
    await vscode.commands.executeCommand('tidal.openChat');
    const seen = await captureWorkbench('integration-chat-view', { waitForChatView: true });
    if (seen) {
      // The runner looked at the workbench itself: the chat is in the secondary side bar (the
      // primary one keeps the Explorer), and its webview is on screen with its content rendered.
      assert.equal(seen.workbench.chatLocation, 'auxiliarybar', `the chat is not in the secondary side bar: ${JSON.stringify(seen.workbench)}`);
      assert.notEqual(seen.workbench.activeViewContainer, 'workbench.view.extension.tidal');
      assert.equal(seen.workbench.chatWebviewVisible, true, 'the chat webview is not on screen');
      assert.notEqual(seen.workbench.chatWebviewText.trim(), '', 'the chat webview rendered no text');
    }
    const visible = await waitFor(() => api.getState().chatViewVisible === true, { timeoutMs: 30_000 });
    assert.equal(visible, true, `getState().chatViewVisible is ${JSON.stringify(api.getState().chatViewVisible)} after tidal.openChat`);
  },
  { timeoutMs: 180_000 },
);
