// What both runners share: the run's folders, the results file the suite writes, clean-up of
// the processes a run starts, and the summary printed at the end.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const integrationDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(integrationDir, '..', '..');
export const suiteEntry = path.join(integrationDir, 'suite', 'index.js');
export const artifactsDir = path.join(repoRoot, '.test-artifacts');
export const screenshotsDir = path.join(artifactsDir, 'screenshots');
export const logsDir = path.join(artifactsDir, 'integration');

export function log(message) {
  console.log(`[integration] ${message}`);
}

/**
 * A fresh scratch folder for one run: VS Code's user data and extensions, a copy of the
 * fixture workspace (tests may write settings into it), the results file and the folder for
 * screenshot requests. Old artifacts of this runner are cleared so none is mistaken for new.
 * `multiRoot`: a second folder (fixtures/helpers) beside it, and a .code-workspace naming both,
 * which is what the window opens (`opened`).
 */
const FIXTURE_MTIME = new Date('2026-01-01T00:00:00Z');

/** The folders of a multi-root run, in the .code-workspace's order. */
export const MULTI_ROOT_FOLDERS = ['workspace', 'helpers'];

/** A copy of fixtures/`name` at `tempRoot`/`name`. */
function copyFixture(tempRoot, name) {
  const copy = path.join(tempRoot, name);
  cpSync(path.join(integrationDir, 'fixtures', name), copy, { recursive: true });
  // One modification time for every fixture file: the engine host lays files out by it, and
  // copies made within the same clock tick (or not) would otherwise order them differently from
  // run to run, and with them every prompt the tests see.
  for (const entry of readdirSync(copy, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) utimesSync(path.join(entry.parentPath ?? entry.path, entry.name), FIXTURE_MTIME, FIXTURE_MTIME);
  }
  return copy;
}

export function prepareRun({ multiRoot = false } = {}) {
  const tempRoot = mkdtempSync(path.join(os.tmpdir(), 'tidal-it-'));
  const workspace = copyFixture(tempRoot, 'workspace');
  let opened = workspace;
  if (multiRoot) {
    for (const name of MULTI_ROOT_FOLDERS.slice(1)) copyFixture(tempRoot, name);
    opened = path.join(tempRoot, 'tidal-multi-root.code-workspace');
    writeFileSync(opened, `${JSON.stringify({ folders: MULTI_ROOT_FOLDERS.map((name) => ({ path: name })) }, null, 2)}\n`);
  }
  const checkpointsDir = path.join(tempRoot, 'checkpoints');
  mkdirSync(checkpointsDir);
  rmSync(logsDir, { recursive: true, force: true });
  mkdirSync(logsDir, { recursive: true });
  mkdirSync(screenshotsDir, { recursive: true });
  for (const name of readdirSync(screenshotsDir)) {
    if (name.startsWith('integration-') && name.endsWith('.png')) rmSync(path.join(screenshotsDir, name));
  }
  return {
    tempRoot,
    workspace,
    /** What the window opens: the workspace folder, or for a multi-root run the .code-workspace file. */
    opened,
    userDataDir: path.join(tempRoot, 'user-data'),
    extensionsDir: path.join(tempRoot, 'extensions'),
    resultsFile: path.join(tempRoot, 'results.json'),
    checkpointsDir,
  };
}

/** The results file as the suite last wrote it, or undefined before it wrote one. */
export function readResults(resultsFile) {
  if (!existsSync(resultsFile)) return undefined;
  try {
    return JSON.parse(readFileSync(resultsFile, 'utf8'));
  } catch {
    return undefined; // caught between the suite's write and rename: read again later
  }
}

/**
 * User settings for the fresh profile: nothing that opens on its own over the test window,
 * no update checks or telemetry, no workspace-trust prompt (it would disable the extension).
 */
export const userSettings = {
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'workbench.enableExperiments': false,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'update.mode': 'none',
  'telemetry.telemetryLevel': 'off',
  'chat.disableAIFeatures': true,
  'git.enabled': false,
  'window.restoreWindows': 'none',
};

/** How long the suite may take to write its first results once VS Code is up (a failure guard). */
export const SUITE_START_TIMEOUT_MS = 120_000;
/** Room after the suite's planned time: the results written, the final screenshot. */
const SUITE_GRACE_MS = 60_000;

/**
 * When a run gives up. With a limit set (TIDAL_INTEGRATION_TIMEOUT_S), at that limit from now.
 * Otherwise from the moment the suite started: after the sum of its tests' own time limits
 * (`plannedMs`, in the results file) plus some room. So a slow machine never cuts a run short
 * while a test is still within its limit; each test's limit catches a hang first.
 */
export class RunDeadline {
  #fixedAt;
  #suiteStartedAt;

  /** @param {number | undefined} timeoutMs */
  constructor(timeoutMs) {
    this.#fixedAt = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  }

  /** Whether the run is past its limit, given the results the suite has written so far. */
  passed(results) {
    if (this.#fixedAt !== undefined) return Date.now() > this.#fixedAt;
    if (!results) return false; // not started yet: SUITE_START_TIMEOUT_MS guards that
    this.#suiteStartedAt ??= Date.now();
    return Date.now() > this.#suiteStartedAt + (results.plannedMs ?? 0) + SUITE_GRACE_MS;
  }
}

/** Clean-up steps run once, newest first, on normal exit, on failure and on SIGINT/SIGTERM. */
export class Cleanup {
  #steps = [];
  #ran = false;

  add(name, step) {
    this.#steps.push({ name, step });
  }

  async run() {
    if (this.#ran) return;
    this.#ran = true;
    for (const { name, step } of this.#steps.reverse()) {
      try {
        await Promise.race([step(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
      } catch (error) {
        log(`clean-up "${name}" failed: ${error instanceof Error ? error.message : error}`);
      }
    }
  }
}

/** Copies VS Code's own logs (extension host, server) next to the runner's logs. */
export function keepVscodeLogs(userDataDir) {
  const source = path.join(userDataDir, 'logs');
  if (existsSync(source)) cpSync(source, path.join(logsDir, 'vscode-logs'), { recursive: true });
}

/**
 * Prints one line per test and the final `N passed, M failed` line; returns the exit code.
 * Tests the suite planned but never finished count as failed, and so does a harness error
 * (VS Code did not start, the run timed out), so a broken run never reads as "0 failed".
 */
export function reportResults(results, harnessError) {
  const finished = results?.results ?? [];
  if (finished.length === 0 && !harnessError) harnessError = 'no tests ran';
  const notRun = (results?.planned ?? []).filter((name) => !finished.some((result) => result.name === name));
  console.log('');
  if (results?.vscodeVersion) console.log(`VS Code ${results.vscodeVersion}, extension host Node ${results.node}`);
  for (const result of finished) {
    console.log(`  ${result.passed ? 'ok  ' : 'FAIL'} ${result.name} (${result.durationMs} ms)`);
    if (!result.passed) console.log(indent(result.error ?? 'no error message', 8));
  }
  for (const name of notRun) console.log(`  FAIL ${name} (did not finish)`);
  if (harnessError) console.log(`  FAIL integration harness: ${harnessError}`);
  const passed = finished.filter((result) => result.passed).length;
  const failed = finished.length - passed + notRun.length + (harnessError ? 1 : 0);
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 || passed === 0 ? 1 : 0;
}

function indent(text, spaces) {
  const pad = ' '.repeat(spaces);
  return text
    .split('\n')
    .map((line) => pad + line)
    .join('\n');
}

/**
 * After the install: for TIDAL_TEST_NATIVE_ENGINE=absent, the installed universal package loses
 * its WebAssembly engine (dist/native-wasm), so that the extension runs with no engine at all,
 * as where that build cannot load, and the tests of that case see it.
 */
export function afterInstall(run, suiteEnvironment) {
  if (suiteEnvironment.TIDAL_TEST_NATIVE_ENGINE !== 'absent') return;
  for (const name of readdirSync(run.extensionsDir)) {
    const wasm = path.join(run.extensionsDir, name, 'dist', 'native-wasm');
    if (name.startsWith('tidal-code.') && existsSync(wasm)) {
      rmSync(wasm, { recursive: true, force: true });
      log(`removed ${path.relative(run.extensionsDir, wasm)}: an installation without any engine`);
    }
  }
}
