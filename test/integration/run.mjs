// Integration tests in a real VS Code: installs the packaged extension (dist/tidal-code.vsix)
// into a fresh profile, opens test/integration/fixtures/workspace, runs test/integration/suite
// inside VS Code's extension host and prints `N passed, M failed` as its last line.
//
//   npm run test:integration
//
// Runner, chosen by TIDAL_VSCODE:
//   code-server (default)  offline: code-server + headless Chromium; tools in .tools/ are
//                          installed on first use by scripts/setup-vscode-server.mjs
//   electron               desktop VS Code downloaded by @vscode/test-electron (needs internet)
// Other knobs:
//   TIDAL_VSIX=path                 test this VSIX instead of dist/tidal-code.vsix
//   TIDAL_INTEGRATION_TIMEOUT_S=n   limit for starting VS Code and running the suite (default: none
//                                   beyond the tests' own limits, see runners/common.mjs)
//   TIDAL_KEEP_TEMP=1               keep the scratch folder (profile, workspace copy) for a look
//   TIDAL_NATIVE_ENGINE=wasm        install the universal package (dist/tidal-code-universal.vsix, no
//                                   native engine: the WebAssembly one) and run only the tests
//                                   written for that (suite/wasmEngine.json); implied when
//                                   TIDAL_INTEGRATION_FILES names only such tests
//   TIDAL_NATIVE_ENGINE=absent      the universal package with its WebAssembly engine removed after
//                                   the install (no engine at all) and only the tests written for
//                                   that (suite/withoutNativeEngine.json); implied likewise
//   TIDAL_WORKSPACE=multi-root      open a workspace of two folders (fixtures/workspace and
//                                   fixtures/helpers) and run only the tests written for that
//                                   (suite/multiRoot.json); implied when TIDAL_INTEGRATION_FILES
//                                   names only such tests
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

import { Cleanup, log, prepareRun, readResults, repoRoot, reportResults } from './runners/common.mjs';

const runnerName = (process.env.TIDAL_VSCODE || 'code-server').toLowerCase();
const timeoutSeconds = process.env.TIDAL_INTEGRATION_TIMEOUT_S ? Number(process.env.TIDAL_INTEGRATION_TIMEOUT_S) : undefined;

/** The suite files written for an install without the native engine; the default run leaves them out. */
const withoutNativeEngineFiles = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'integration', 'suite', 'withoutNativeEngine.json'), 'utf8'));

/** The suite files written for the universal package's WebAssembly engine; the default run leaves them out. */
const wasmEngineFiles = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'integration', 'suite', 'wasmEngine.json'), 'utf8'));

/** The suite files written for a window of two folders; the default run leaves them out. */
const multiRootFiles = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'integration', 'suite', 'multiRoot.json'), 'utf8'));

/** Whether TIDAL_INTEGRATION_FILES names some files, each of them one of `files`. */
function namesOnly(files) {
  const named = (process.env.TIDAL_INTEGRATION_FILES ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  return named.length > 0 && named.every((name) => files.includes(name));
}

/** 'present' (the linux-x64 package), 'wasm' or 'absent' (see TIDAL_NATIVE_ENGINE above). */
function nativeEngineMode() {
  if (process.env.TIDAL_NATIVE_ENGINE === 'absent' || namesOnly(withoutNativeEngineFiles)) return 'absent';
  if (process.env.TIDAL_NATIVE_ENGINE === 'wasm' || namesOnly(wasmEngineFiles)) return 'wasm';
  return 'present';
}

/** Whether this run opens a workspace of two folders (see TIDAL_WORKSPACE above). */
function multiRootWorkspace() {
  return process.env.TIDAL_WORKSPACE === 'multi-root' || namesOnly(multiRootFiles);
}

/** The VSIX under test; `npm run package:tested` (the linux-x64 and universal packages) (re)builds it when it is missing or older than its sources. */
function ensureVsix(packageName) {
  if (process.env.TIDAL_VSIX) {
    const vsix = path.resolve(process.env.TIDAL_VSIX);
    if (!existsSync(vsix)) throw new Error(`TIDAL_VSIX=${process.env.TIDAL_VSIX} does not exist`);
    return vsix;
  }
  const vsix = path.join(repoRoot, 'dist', packageName);
  const newer = newestSource();
  const stale = existsSync(vsix) && newer && newer.mtimeMs > statSync(vsix).mtimeMs;
  if (!existsSync(vsix) || stale) {
    log(
      stale
        ? `${path.relative(repoRoot, newer.file)} is newer than dist/${packageName}: running \`npm run package:tested\``
        : `dist/${packageName} is missing: running \`npm run package:tested\``,
    );
    const result = spawnSync('npm', ['run', 'package:tested'], { cwd: repoRoot, stdio: 'inherit', timeout: 5 * 60_000 });
    if (result.status !== 0 || !existsSync(vsix))
      throw new Error(
        `\`npm run package:tested\` failed (exit ${result.status ?? result.signal}); the VSIX is needed to test the extension as users install it`,
      );
  }
  return vsix;
}

/** The most recently changed file of what goes into the VSIX (sources, media, manifest). */
function newestSource() {
  /** @type {{ file: string, mtimeMs: number } | undefined} */
  let newest;
  const visit = (file) => {
    if (!existsSync(file)) return;
    const stats = statSync(file);
    if (stats.isDirectory()) {
      for (const entry of readdirSync(file)) visit(path.join(file, entry));
    } else if (!newest || stats.mtimeMs > newest.mtimeMs) {
      newest = { file, mtimeMs: stats.mtimeMs };
    }
  };
  for (const part of ['src', 'media', 'package.json', 'native/build/Release/tidal_native.node']) visit(path.join(repoRoot, part));
  return newest;
}

async function main() {
  const cleanup = new Cleanup();
  let run;
  let results;
  let harnessError;
  let exitCode = 1;
  const finish = async () => {
    results ??= run && readResults(run.resultsFile); // what the suite got through before a stop
    await cleanup.run();
    exitCode = reportResults(results, harnessError);
  };
  // Ctrl-C, a CI timeout, or a hang past every limit: stop what was started, then report.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, async () => {
      harnessError = `interrupted by ${signal}`;
      await finish();
      process.exit(130);
    });
  }

  const multiRoot = multiRootWorkspace();
  run = prepareRun({ multiRoot });
  cleanup.add('remove scratch folder', () => {
    if (process.env.TIDAL_KEEP_TEMP === '1') log(`scratch folder kept: ${run.tempRoot}`);
    else rmSync(run.tempRoot, { recursive: true, force: true, maxRetries: 3 });
  });
  try {
    const engine = nativeEngineMode();
    const vsix = ensureVsix(engine === 'present' ? 'tidal-code.vsix' : 'tidal-code-universal.vsix');
    // The suite (suite/index.js) picks its files by this; both runners hand it to the extension host.
    const suiteEnvironment = { TIDAL_TEST_NATIVE_ENGINE: engine, TIDAL_TEST_WORKSPACE: multiRoot ? 'multi-root' : 'folder' };
    if (engine === 'wasm') log('the universal package: the WebAssembly engine, and the tests written for it');
    if (engine === 'absent') log('the universal package without its WebAssembly engine: no engine at all, and the tests written for it');
    if (multiRoot) log('a workspace of two folders, and the tests written for it');
    const started = Date.now();
    let runner;
    if (runnerName === 'electron') {
      runner = (await import('./runners/electron.mjs')).runWithElectron;
    } else if (runnerName === 'code-server') {
      runner = (await import('./runners/codeServer.mjs')).runWithCodeServer;
    } else {
      throw new Error(`TIDAL_VSCODE=${runnerName}: expected "code-server" or "electron"`);
    }
    // Last resort if something hangs past its own limits: the suite's limit (or, without one,
    // two hours), plus room for a first-time tool install (9 minutes at most per step).
    const watchdog = setTimeout(
      async () => {
        harnessError = 'the run hung past every time limit; stopped';
        await finish();
        process.exit(1);
      },
      ((timeoutSeconds ?? 2 * 3600) + 12 * 60) * 1000,
    );
    watchdog.unref();
    ({ results, harnessError } = await runner({
      vsix,
      run,
      cleanup,
      suiteEnvironment,
      timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
    }));
    log(`${runnerName} runner finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    harnessError = error instanceof Error ? error.message : String(error);
  }
  await finish();
  process.exit(exitCode);
}

await main();
