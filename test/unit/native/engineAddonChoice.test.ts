// Which engine build loadEngineAddon picks: the native addon where it loads, else the WebAssembly
// build, and errors that name what was looked for when neither is there or loads. Bundle folders
// are made up in a scratch folder, so no build is needed; a native one is taken from dist/.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { AddonLoadError, addonBuild, findWasmAddon, loadEngineAddon, readerFrom } from '../../../src/native/addon';

function scratchBundle(): { bundle: string; remove: () => void } {
  const root = mkdtempSync(path.join(tmpdir(), 'tidal-addon-choice-'));
  const bundle = path.join(root, 'dist');
  mkdirSync(bundle);
  return { bundle, remove: () => rmSync(root, { recursive: true, force: true }) };
}

test('with neither build, the error is "missing" and names the native and WebAssembly locations', async () => {
  const { bundle, remove } = scratchBundle();
  try {
    await assert.rejects(loadEngineAddon(bundle, undefined), (error: unknown) => {
      assert.ok(error instanceof AddonLoadError);
      assert.equal(error.kind, 'missing');
      assert.match(error.message, /tidal_native\.node/);
      return true;
    });
    await assert.rejects(loadEngineAddon(bundle, 'wasm'), /WebAssembly build of the Tidal engine is missing .*native-wasm/);
  } finally {
    remove();
  }
});

test('a broken WebAssembly build is refused as "unloadable", saying why, after the missing native addon', async () => {
  const { bundle, remove } = scratchBundle();
  try {
    const folder = path.join(bundle, 'native-wasm');
    mkdirSync(folder);
    writeFileSync(path.join(folder, 'tidal_native.js'), 'module.exports = () => Promise.reject(new Error("no such module here"));\n');
    writeFileSync(path.join(folder, 'tidal_native.wasm'), 'not wasm');
    writeFileSync(path.join(folder, 'tidal_native.worker.js'), '');
    assert.equal(findWasmAddon(bundle), folder);
    await assert.rejects(loadEngineAddon(bundle, undefined), (error: unknown) => {
      assert.ok(error instanceof AddonLoadError);
      assert.equal(error.kind, 'unloadable');
      assert.match(error.message, /native engine is missing.*WebAssembly build of the Tidal engine at .* could not be loaded.*no such module here/s);
      return true;
    });
    // TIDAL_ADDON=native never falls back.
    await assert.rejects(loadEngineAddon(bundle, 'native'), (error: unknown) => error instanceof AddonLoadError && error.kind === 'missing');
  } finally {
    remove();
  }
});

test('the native addon is taken first where it loads, even beside a WebAssembly build', async () => {
  const { bundle, remove } = scratchBundle();
  try {
    mkdirSync(path.join(bundle, 'native'));
    copyFileSync(path.resolve('dist/native/tidal_native.node'), path.join(bundle, 'native', 'tidal_native.node'));
    mkdirSync(path.join(bundle, 'native-wasm'));
    for (const file of ['tidal_native.js', 'tidal_native.wasm', 'tidal_native.worker.js']) writeFileSync(path.join(bundle, 'native-wasm', file), 'broken');
    const addon = await loadEngineAddon(bundle, undefined);
    assert.equal(addonBuild(addon), 'native');
    assert.ok(addon.compiledBackends().includes('cpu'));
  } finally {
    remove();
  }
});

test('readerFrom (the model checks): the native addon where it loads; with no engine at all, the native error', async () => {
  const { bundle, remove } = scratchBundle();
  try {
    const none = await readerFrom(bundle);
    assert.equal(none.addon, undefined);
    assert.ok(none.error instanceof AddonLoadError);
    assert.equal(none.error.kind, 'missing');
    assert.match(none.error.message, /tidal_native\.node/);
    mkdirSync(path.join(bundle, 'native'));
    copyFileSync(path.resolve('dist/native/tidal_native.node'), path.join(bundle, 'native', 'tidal_native.node'));
    const native = await readerFrom(bundle);
    assert.equal(native.error, undefined);
    assert.equal(addonBuild(native.addon!), 'native');
    assert.equal(native.addon!.inspectModel(path.resolve('models/tidal-code-mini')).shape?.vocabSize, 8192);
  } finally {
    remove();
  }
});
