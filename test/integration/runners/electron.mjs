// The online runner: desktop VS Code (Electron) downloaded by @vscode/test-electron into
// .vscode-test/, the same suite, the same results file. It needs the internet (to download VS
// Code once) and, on Linux, a display (e.g. `xvfb-run -a npm run test:integration`). It takes
// no screenshots: the suite's screenshot requests are skipped when TIDAL_TEST_CHECKPOINTS is unset.
//
// VS Code is started here rather than through test-electron's runTests(), so that it runs in a
// process group of its own and can be stopped when the time limit passes.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import {
  integrationDir,
  keepVscodeLogs,
  log,
  logsDir,
  readResults,
  repoRoot,
  RunDeadline,
  SUITE_START_TIMEOUT_MS,
  suiteEntry,
  userSettings,
  afterInstall,
} from './common.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runWithElectron({ vsix, run, cleanup, suiteEnvironment = {}, timeoutMs }) {
  const { downloadAndUnzipVSCode, resolveCliPathFromVSCodeExecutablePath } = await import('@vscode/test-electron');
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    log('no DISPLAY: desktop VS Code needs one on Linux; run under `xvfb-run -a` if it fails to start');
  }
  const version = process.env.TIDAL_VSCODE_VERSION || 'stable';
  const vscodeExecutablePath = await downloadAndUnzipVSCode({ version, cachePath: path.join(repoRoot, '.vscode-test') });
  const deadline = new RunDeadline(timeoutMs);

  mkdirSync(path.join(run.userDataDir, 'User'), { recursive: true });
  writeFileSync(path.join(run.userDataDir, 'User', 'settings.json'), JSON.stringify(userSettings, null, 2));
  const profileArgs = ['--user-data-dir', run.userDataDir, '--extensions-dir', run.extensionsDir];
  cleanup.add('keep VS Code logs', () => keepVscodeLogs(run.userDataDir));

  log(`installing ${path.relative(repoRoot, vsix)} into a fresh extensions folder`);
  const cli = resolveCliPathFromVSCodeExecutablePath(vscodeExecutablePath);
  const install = spawnSync(cli, [...profileArgs, '--install-extension', vsix], { encoding: 'utf8', timeout: 120_000 });
  const output = `${install.stdout ?? ''}${install.stderr ?? ''}`;
  writeFileSync(path.join(logsDir, 'install-extension.log'), output);
  if (install.status !== 0) throw new Error(`code --install-extension failed (exit ${install.status ?? install.signal}):\n${output.trim()}`);
  afterInstall(run, suiteEnvironment);

  const args = [
    run.opened,
    ...profileArgs,
    `--extensionDevelopmentPath=${integrationDir}`,
    `--extensionTestsPath=${suiteEntry}`,
    '--no-sandbox',
    '--disable-gpu',
    '--disable-gpu-sandbox',
    '--disable-updates',
    '--disable-telemetry',
    '--disable-workspace-trust',
    '--skip-welcome',
    '--skip-release-notes',
    '--no-cached-data',
  ];
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...process.env, ...suiteEnvironment, TIDAL_TEST_API: '1', TIDAL_TEST_RESULTS: run.resultsFile, TIDAL_TEST_EXTENSIONS_DIR: run.extensionsDir };
  delete env.ELECTRON_RUN_AS_NODE; // set by some parents; VS Code would start as plain Node
  const vscodeProcess = spawn(vscodeExecutablePath, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const vscodeLog = createWriteStream(path.join(logsDir, 'vscode.log'));
  vscodeProcess.stdout.pipe(vscodeLog, { end: false });
  vscodeProcess.stderr.pipe(vscodeLog, { end: false });
  const killGroup = (signal) => {
    try {
      process.kill(-vscodeProcess.pid, signal);
    } catch {
      // already gone
    }
  };
  const killOnExit = () => killGroup('SIGKILL');
  process.once('exit', killOnExit);
  /** @type {{ code: number | null, signal: string | null } | undefined} */
  let exitStatus;
  const exited = new Promise((resolve) => vscodeProcess.once('exit', (code, signal) => resolve((exitStatus = { code, signal }))));
  cleanup.add('stop VS Code', async () => {
    killGroup('SIGTERM');
    await Promise.race([exited, sleep(3000)]);
    killGroup('SIGKILL');
    process.removeListener('exit', killOnExit);
    vscodeLog.end();
  });

  let harnessError;
  const startDeadline = Date.now() + SUITE_START_TIMEOUT_MS;
  for (;;) {
    const results = readResults(run.resultsFile);
    if (results?.finished) break;
    if (exitStatus) {
      harnessError = `VS Code exited (${exitStatus.code ?? exitStatus.signal}) before the suite finished (see .test-artifacts/integration/vscode.log)`;
      break;
    }
    if (!results && Date.now() > startDeadline) {
      harnessError = `the suite did not start within ${SUITE_START_TIMEOUT_MS / 1000} s of VS Code starting (see .test-artifacts/integration/vscode.log)`;
      break;
    }
    if (deadline.passed(results)) {
      harnessError =
        timeoutMs === undefined
          ? "the suite ran past the sum of its tests' time limits"
          : 'the suite did not finish before the time limit (TIDAL_INTEGRATION_TIMEOUT_S)';
      break;
    }
    await sleep(200);
  }
  return { results: readResults(run.resultsFile), harnessError };
}
