// Builds the engine addon to WebAssembly (native/wasm/build.sh → native/build-wasm/
// tidal_native.{js,wasm,worker.js}): the CPU and WebGPU backends with the portable kernels, for
// the platforms without a native build (src/native/wasmAddon.ts loads it). Needs Debian's
// `emscripten` package (scripts/setup-cross.sh installs it) and the npm packages emnapi and
// node-addon-api (devDependencies). Skips, saying so, when emcc is missing, unless
// TIDAL_REQUIRE_WASM=1; rebuilds only when a source is newer than the build. --tests also builds
// the engine's test programs, native/build-wasm/tests/{tidal_tests,tidal_op_harness}.js, run
// with `node` (scripts/test-cross.mjs wasm32 does).
//   node scripts/build-native-wasm.mjs [--force] [--tests]      exit 0 built or up to date, 1 failed, 3 skipped
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const WASM_BUILD_DIR = path.join(root, 'native', 'build-wasm');
/** The files of one build (src/native/wasmAddon.ts loads them from one folder). */
export const WASM_ADDON_FILES = ['tidal_native.js', 'tidal_native.wasm', 'tidal_native.worker.js'];
/** The test programs (`buildNativeWasm({ tests: true })`), each `node WASM_TEST_PROGRAMS[name]`. */
export const WASM_TEST_PROGRAMS = Object.fromEntries(
  ['tidal_tests', 'tidal_op_harness'].map((name) => [name, path.join(WASM_BUILD_DIR, 'tests', `${name}.js`)]),
);

export function hasEmscripten() {
  return spawnSync('emcc', ['--version'], { stdio: 'ignore', env: { ...process.env, NODE_PATH: '/usr/share/nodejs' } }).status === 0;
}

function newestSource(folders) {
  let newest = 0;
  const walk = (folder) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  for (const folder of folders) walk(path.join(root, 'native', folder));
  return newest;
}

/** Builds when needed (with the test programs when `tests`); returns 'built', 'up to date' or throws. */
export function buildNativeWasm({ force = false, tests = false } = {}) {
  const outputs = WASM_ADDON_FILES.map((file) => path.join(WASM_BUILD_DIR, file));
  const folders = ['src', 'addon', 'include', 'wasm'];
  if (tests) {
    for (const program of Object.values(WASM_TEST_PROGRAMS)) outputs.push(program, program.replace(/\.js$/, '.wasm'), program.replace(/\.js$/, '.worker.js'));
    folders.push('tests', 'op_harness', 'bench', 'cli');
  }
  if (!force && outputs.every(existsSync) && Math.min(...outputs.map((file) => statSync(file).mtimeMs)) > newestSource(folders)) {
    return 'up to date';
  }
  const args = [path.join(root, 'native', 'wasm', 'build.sh'), WASM_BUILD_DIR, path.join(root, 'node_modules'), ...(tests ? ['--tests'] : [])];
  const result = spawnSync('bash', args, { stdio: 'inherit' });
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
    const outcome = buildNativeWasm({ force: process.argv.includes('--force'), tests: process.argv.includes('--tests') });
    console.log(`build-native-wasm: ${outcome} (${((Date.now() - started) / 1000).toFixed(0)} s), ${WASM_BUILD_DIR}`);
  } catch (error) {
    console.error(`build-native-wasm: ${error.message}`);
    process.exit(1);
  }
}
