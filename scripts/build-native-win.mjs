// Cross-builds the native engine for Windows x64 with MinGW-w64 (Debian's
// g++-mingw-w64-x86-64-posix): the N-API addon (CPU and WebGPU backends; CUDA needs nvcc on
// Windows) into native/build-win32-x64, with its Node-API calls resolved from the executable that
// loads it (node.exe, or VS Code's Code.exe). `--all` also builds the native tests, the op
// harness and the CLI as .exe files (scripts/test-windows.mjs runs them under Wine).
//   node scripts/build-native-win.mjs [--all]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const WINDOWS_BUILD_DIR = path.join(root, 'native', 'build-win32-x64');
export const WINDOWS_ADDON = path.join(WINDOWS_BUILD_DIR, 'tidal_native.node');
const COMPILER = 'x86_64-w64-mingw32-g++-posix';

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.slice(0, 2).join(' ')} … failed (exit ${result.status ?? result.signal})`);
}

export function hasWindowsCompiler() {
  return spawnSync(COMPILER, ['--version'], { stdio: 'ignore' }).status === 0;
}

export function buildNativeWindows({ all = false } = {}) {
  if (!hasWindowsCompiler()) {
    throw new Error(
      `${COMPILER} was not found. Install MinGW-w64 with the posix thread model:\n` +
        '  sudo apt-get install -y --no-install-recommends g++-mingw-w64-x86-64-posix\n' +
        '(scripts/setup-windows-cross.sh does this, with Wine for the tests)',
    );
  }
  const headers = path.join(root, 'node_modules', 'node-api-headers');
  if (!existsSync(path.join(headers, 'def', 'node_api.def'))) throw new Error('node-api-headers is missing; run `npm install` first');
  const ninja = spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
  run('cmake', [
    '-S',
    'native',
    '-B',
    WINDOWS_BUILD_DIR,
    ...(ninja ? ['-G', 'Ninja'] : []),
    `-DCMAKE_TOOLCHAIN_FILE=${path.join(root, 'native', 'cmake', 'mingw-w64-x86_64.cmake')}`,
    '-DCMAKE_BUILD_TYPE=Release',
    '-DTIDAL_CUDA=OFF',
    `-DTIDAL_NODE_API_HEADERS=${headers}`,
  ]);
  const targets = all ? ['tidal_native', 'tidal_tests', 'tidal_op_harness', 'tidal'] : ['tidal_native'];
  run('cmake', ['--build', WINDOWS_BUILD_DIR, '--parallel', String(Math.max(1, cpus().length)), '--target', ...targets]);
  return WINDOWS_ADDON;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const addon = buildNativeWindows({ all: process.argv.includes('--all') });
    console.log(`build-native-win: ${path.relative(root, addon)}`);
  } catch (error) {
    console.error(`build-native-win: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  }
}
