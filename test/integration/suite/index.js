// Entry point VS Code's extension host loads through --extensionTestsPath: registers every
// *.test.js file in this folder, runs them, and rejects when any failed (VS Code then exits
// with a non-zero code, which is what the Electron runner sees).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const { runRegisteredTests, test } = require('./harness');

// The files written for an install without the native engine (the universal package): they run
// only when the runner installed that (TIDAL_TEST_NATIVE_ENGINE=absent), and then alone.
const withoutNativeEngine = new Set(JSON.parse(fs.readFileSync(path.join(__dirname, 'withoutNativeEngine.json'), 'utf8')));
// The files written for the universal package's WebAssembly engine (TIDAL_TEST_NATIVE_ENGINE=wasm), alone.
const wasmEngine = new Set(JSON.parse(fs.readFileSync(path.join(__dirname, 'wasmEngine.json'), 'utf8')));
// The files written for a window of two folders: they run only when the runner opened one
// (TIDAL_TEST_WORKSPACE=multi-root), and then alone (extension.test.js expects one folder).
const multiRoot = new Set(JSON.parse(fs.readFileSync(path.join(__dirname, 'multiRoot.json'), 'utf8')));

async function run() {
  const absent = process.env.TIDAL_TEST_NATIVE_ENGINE === 'absent';
  const wasm = process.env.TIDAL_TEST_NATIVE_ENGINE === 'wasm';
  const twoFolders = process.env.TIDAL_TEST_WORKSPACE === 'multi-root';
  // extension.test.js first: it checks the fresh window and loads the model the others use.
  const first = (name) => (name === 'extension.test.js' ? 0 : 1);
  // TIDAL_INTEGRATION_FILES=a.test.js,b.test.js runs only those (extension.test.js always, where
  // the native engine is there).
  const named = process.env.TIDAL_INTEGRATION_FILES ? process.env.TIDAL_INTEGRATION_FILES.split(',').map((name) => name.trim()) : undefined;
  const only = named ? new Set(absent || wasm || twoFolders ? named : ['extension.test.js', ...named]) : undefined;
  const testFiles = fs
    .readdirSync(__dirname)
    .filter(
      (name) =>
        name.endsWith('.test.js') &&
        withoutNativeEngine.has(name) === absent &&
        wasmEngine.has(name) === wasm &&
        multiRoot.has(name) === twoFolders &&
        (!only || only.has(name)),
    )
    .sort((a, b) => first(a) - first(b) || a.localeCompare(b));
  for (const file of testFiles) {
    try {
      require(path.join(__dirname, file));
    } catch (error) {
      // Reported as a failing test, so the runner hears of it at once instead of at its time limit.
      test(`load ${file}`, () => {
        throw error;
      });
    }
  }
  const results = await runRegisteredTests();
  const failed = results.filter((result) => !result.passed);
  if (results.length === 0) throw new Error('no integration tests were registered');
  if (failed.length > 0) throw new Error(`${failed.length} integration test(s) failed: ${failed.map((result) => result.name).join(', ')}`);
}

module.exports = { run };
