// The universal package, as every platform without a native build installs it (macOS, Windows on
// Arm), in a real VS Code: no native binary, the WebAssembly engine (dist/native-wasm) instead.
// The engine host runs it, the embedded model loads on its CPU backend, the status bar shows a
// local engine, and a question about the repository is answered locally.
// Runs only when the runner installed that package: TIDAL_NATIVE_ENGINE=wasm, or
// TIDAL_INTEGRATION_FILES=wasmEngine.test.js (see wasmEngine.json).
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const { test, tidalApi, tidalExtension } = require('./harness');

const logText = (api) => (fs.existsSync(api.logFile()) ? fs.readFileSync(api.logFile(), 'utf8') : '');

test(
  'the universal package carries the WebAssembly engine and no native binary; the engine host runs it',
  async () => {
    const extension = tidalExtension();
    const files = fs.readdirSync(extension.extensionPath, { recursive: true }).map(String);
    assert.deepEqual(
      files.filter((name) => name.endsWith('.node')),
      [],
      'the universal package must carry no .node file',
    );
    for (const file of ['tidal_native.js', 'tidal_native.wasm', 'tidal_native.worker.js']) {
      assert.ok(fs.existsSync(path.join(extension.extensionPath, 'dist', 'native-wasm', file)), `dist/native-wasm/${file} is missing`);
    }
    const api = await tidalApi();
    assert.equal(await api.waitForEngine(120_000), 'ready', `engine: ${api.getState().engineState} ${api.getState().engineMessage ?? ''}`);
    const state = api.getState();
    assert.equal(state.engineBuild, 'wasm');
    assert.equal(state.localEngine.available, true);
    assert.ok(state.enginePid > 0, 'an engine host process runs');
    assert.match(logText(api), /WebAssembly build/);
    assert.doesNotMatch(api.statusBarText(), /no local engine/);
  },
  { timeoutMs: 180_000 },
);

test(
  'the embedded model loads on the WebAssembly engine, and a question about the repository is answered locally',
  async () => {
    const api = await tidalApi();
    const state = await api.waitForModel(180_000);
    const model = api.getState().model;
    assert.equal(state, 'ready', `model state "${state}": ${model.message ?? 'no message'}`);
    assert.equal(model.architecture, 'llama');
    assert.equal(model.backend, 'cpu');
    await vscode.commands.executeCommand('tidal.askAboutRepo', 'Which function picks the top k positions?');
    const answer = api.chat.lastAnswer();
    assert.ok(answer, 'no answer recorded');
    assert.equal(answer.error, undefined, `the local answer failed: ${answer.error}`);
    // The embedded demo model may also loop until the repetition stop ends the answer.
    assert.ok(['length', 'stop', 'repetition'].includes(answer.finishReason), `finish reason ${answer.finishReason}`);
    assert.ok(answer.tokens > 0, `${answer.tokens} tokens generated`);
    assert.ok(answer.text.length > 0, 'an empty answer');
    assert.equal(answer.streamed, answer.text);
    assert.ok(answer.promptTokens > 0, `a prompt of ${answer.promptTokens} tokens`);
  },
  { timeoutMs: 600_000 },
);
