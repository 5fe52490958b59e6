// Builds native/ with cmake-js (N-API addon, `tidal` CLI, native tests) into native/build.
// The CUDA backend is compiled when nvcc is found (TIDAL_CUDA=0 turns it off).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
if (!existsSync(cmakeJs)) {
  console.error('build-native: cmake-js is missing; run `npm install` first.');
  process.exit(1);
}
const args = [cmakeJs, 'compile', '--directory', 'native', '--out', 'native/build', '--parallel', String(Math.max(1, cpus().length))];
if (process.env.TIDAL_CUDA === '0') args.push('--CDTIDAL_CUDA=OFF');
if (!process.env.CUDACXX && existsSync('/usr/local/cuda/bin/nvcc')) process.env.CUDACXX = '/usr/local/cuda/bin/nvcc';
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error('build-native: the native build failed (see the compiler output above).');
  process.exit(result.status ?? 1);
}
