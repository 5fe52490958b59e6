// The engine build the model tests read files with: the native addon, or with
// TIDAL_TEST_ADDON=wasm the WebAssembly build, found the way the model picker finds it where no
// native addon loads (readerFrom over a bundle folder that holds only that build).
// scripts/test-cross.mjs runs the model tests so after it builds the WebAssembly engine.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { addonBuild, findWasmAddon, loadAddon, readerFrom, type NativeAddon } from '../../../src/native/addon';

export const testBuild = process.env.TIDAL_TEST_ADDON === 'wasm' ? 'wasm' : 'native';

let reading: Promise<NativeAddon> | undefined;
export function testReader(): Promise<NativeAddon> {
  reading ??= (async () => {
    if (testBuild === 'native') return loadAddon(path.resolve('dist'));
    // The build where the engine host looks for it (dist/native-wasm, or native/build-wasm in a
    // checkout), staged alone as an extension's dist/native-wasm.
    const built = findWasmAddon(path.resolve('dist'));
    assert.ok(built, 'no WebAssembly build of the engine (node scripts/build-native-wasm.mjs)');
    const root = mkdtempSync(path.join(tmpdir(), 'tidal-reader-'));
    try {
      cpSync(built, path.join(root, 'dist', 'native-wasm'), { recursive: true });
      const found = await readerFrom(path.join(root, 'dist'));
      assert.ok(found.addon, `readerFrom found no engine: ${found.error?.message}`);
      assert.equal(addonBuild(found.addon), 'wasm');
      return found.addon;
    } finally {
      // The module is loaded: its files are no longer needed.
      rmSync(root, { recursive: true, force: true });
    }
  })();
  return reading;
}
