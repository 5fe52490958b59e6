// Bundles the shifted-KV accuracy benchmark with esbuild next to a private copy of the native
// addon (a rebuild during the run cannot replace the library under it) and runs it; arguments
// are passed through.
//   node bench/context/run.mjs [--trials N] [--cursors-per-trial N] [--repo-tokens N] [--threads N] [--json FILE]
// Needs the native addon with compactSequence (npm run build).
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';

const outDir = 'out/bench/context';
await esbuild.build({
  entryPoints: ['bench/context/shiftAccuracy.ts'],
  outfile: `${outDir}/shiftAccuracy.js`,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  logLevel: 'warning',
});
const addon = ['native/build/Release/tidal_native.node', 'dist/native/tidal_native.node'].find((candidate) => existsSync(candidate));
if (!addon) {
  console.error('bench/context: the native addon is missing; run `npm run build` first.');
  process.exit(1);
}
mkdirSync(`${outDir}/native`, { recursive: true });
copyFileSync(addon, `${outDir}/native/tidal_native.node.tmp`);
renameSync(`${outDir}/native/tidal_native.node.tmp`, `${outDir}/native/tidal_native.node`);
const result = spawnSync(process.execPath, ['--enable-source-maps', `${outDir}/shiftAccuracy.js`, ...process.argv.slice(2)], { stdio: 'inherit' });
if (result.signal) console.error(`bench/context: the benchmark was killed by ${result.signal}`);
process.exit(result.status ?? 1);
