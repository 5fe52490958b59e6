// Builds the engine addon to WebAssembly (native/wasm/build.sh → native/build-wasm/
// tidal_native.{js,wasm,worker.js}): the CPU and WebGPU backends with the portable kernels, for
// the platforms without a native build (src/native/wasmAddon.ts loads it). Needs Debian's
// `emscripten` package (scripts/setup-cross.sh installs it) and the npm packages emnapi and
// node-addon-api (devDependencies). Skips, saying so, when emcc is missing, unless
// TIDAL_REQUIRE_WASM=1; rebuilds only when a source is newer than the build.
//   node scripts/build-native-wasm.mjs [--force]      exit 0 built or up to date, 1 failed, 3 skipped
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const WASM_BUILD_DIR = path.join(root, 'native', 'build-wasm');
const OUTPUTS = ['tidal_native.js', 'tidal_native.wasm', 'tidal_native.worker.js'];

export function hasEmscripten() {
  return spawnSync('emcc', ['--version'], { stdio: 'ignore', env: { ...process.env, NODE_PATH: '/usr/share/nodejs' } }).status === 0;
}

function newestSource() {
  let newest = 0;
  const walk = (folder) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  for (const folder of ['src', 'addon', 'include', 'wasm']) walk(path.join(root, 'native', folder));
  return newest;
}

/** Builds when needed; returns 'built', 'up to date' or throws. */
export function buildNativeWasm({ force = false } = {}) {
  const outputs = OUTPUTS.map((file) => path.join(WASM_BUILD_DIR, file));
  if (!force && outputs.every(existsSync) && Math.min(...outputs.map((file) => statSync(file).mtimeMs)) > newestSource()) {
    return 'up to date';
  }
  const result = spawnSync('bash', [path.join(root, 'native', 'wasm', 'build.sh'), WASM_BUILD_DIR, path.join(root, 'node_modules')], {
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error(`native/wasm/build.sh failed (exit ${result.status})`);
  return 'built';
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!hasEmscripten()) {
    const message = 'build-native-wasm: emcc is not installed (Debian: apt-get install emscripten; scripts/setup-cross.sh does it)';
    if (process.env.TIDAL_REQUIRE_WASM === '1') {
      console.error(`${message}; TIDAL_REQUIRE_WASM=1`);
      process.exit(1);
    }
    console.log(`${message}; skipped`);
    process.exit(3);
  }
  try {
    const started = Date.now();
    const outcome = buildNativeWasm({ force: process.argv.includes('--force') });
    console.log(`build-native-wasm: ${outcome} (${((Date.now() - started) / 1000).toFixed(0)} s), ${WASM_BUILD_DIR}`);
  } catch (error) {
    console.error(`build-native-wasm: ${error.message}`);
    process.exit(1);
  }
}
