// Cross-builds the native engine for another platform on this Linux x86-64 machine, with
// Debian's cross compilers: the N-API addon (CPU and WebGPU backends; CUDA is built only where
// nvcc runs, linux-x64) into native/build-<target>/tidal_native.node. `--all` also builds the
// native tests, the op harness and the CLI (scripts/test-cross.mjs runs them: Windows under
// Wine, Arm under QEMU).
//   win32-x64    MinGW-w64 (g++-mingw-w64-x86-64-posix). Node-API is resolved from the
//                executable that loads the DLL (node.exe, or VS Code's Code.exe).
//   linux-arm64  g++-aarch64-linux-gnu; the C++ runtime is linked in.
//   node scripts/build-native-cross.mjs win32-x64|linux-arm64 [--all]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export const CROSS_TARGETS = {
  'win32-x64': { compiler: 'x86_64-w64-mingw32-g++-posix', apt: 'g++-mingw-w64-x86-64-posix', toolchain: 'mingw-w64-x86_64.cmake', exe: '.exe' },
  'linux-arm64': { compiler: 'aarch64-linux-gnu-g++', apt: 'g++-aarch64-linux-gnu', toolchain: 'linux-aarch64.cmake', exe: '' },
};

export const buildDirOf = (target) => path.join(root, 'native', `build-${target}`);
export const addonOf = (target) => path.join(buildDirOf(target), 'tidal_native.node');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.slice(0, 2).join(' ')} … failed (exit ${result.status ?? result.signal})`);
}

function targetOf(name) {
  const target = CROSS_TARGETS[name];
  if (!target) throw new Error(`unknown target "${name}"; expected one of ${Object.keys(CROSS_TARGETS).join(', ')}`);
  return target;
}

export function hasCrossCompiler(name) {
  return spawnSync(targetOf(name).compiler, ['--version'], { stdio: 'ignore' }).status === 0;
}

export function buildNativeCross(name, { all = false, targets: only } = {}) {
  const target = targetOf(name);
  if (!hasCrossCompiler(name)) {
    throw new Error(
      `${target.compiler} was not found. Install it with\n  sudo apt-get install -y --no-install-recommends ${target.apt}\n` +
        '(scripts/setup-cross.sh installs the cross compilers, Wine and QEMU for the tests)',
    );
  }
  const headers = path.join(root, 'node_modules', 'node-api-headers');
  if (!existsSync(path.join(headers, 'def', 'node_api.def'))) throw new Error('node-api-headers is missing; run `npm install` first');
  const ninja = spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
  run('cmake', [
    '-S',
    'native',
    '-B',
    buildDirOf(name),
    ...(ninja ? ['-G', 'Ninja'] : []),
    `-DCMAKE_TOOLCHAIN_FILE=${path.join(root, 'native', 'cmake', target.toolchain)}`,
    '-DCMAKE_BUILD_TYPE=Release',
    '-DTIDAL_CUDA=OFF',
    `-DTIDAL_NODE_API_HEADERS=${headers}`,
  ]);
  const targets = only ?? (all ? ['tidal_native', 'tidal_tests', 'tidal_op_harness', 'tidal'] : ['tidal_native']);
  run('cmake', ['--build', buildDirOf(name), '--parallel', String(Math.max(1, cpus().length)), '--target', ...targets]);
  return addonOf(name);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
  try {
    if (names.length === 0) throw new Error(`name a target: ${Object.keys(CROSS_TARGETS).join(', ')}`);
    for (const name of names) {
      const addon = buildNativeCross(name, { all: process.argv.includes('--all') });
      console.log(`build-native-cross: ${path.relative(root, addon)}`);
    }
  } catch (error) {
    console.error(`build-native-cross: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  }
}
