// Bundles bench/ttft/ttft.ts next to a copy of the native addon and runs it:
//   node bench/ttft/run.mjs [--model DIR] [--tokens N] [--threads N] [--repeats N] [--stretch-context]
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';

const outDir = 'out/bench/ttft';
await esbuild.build({
  entryPoints: ['bench/ttft/ttft.ts'],
  outfile: `${outDir}/ttft.js`,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
});
mkdirSync(`${outDir}/native`, { recursive: true });
copyFileSync('native/build/Release/tidal_native.node', `${outDir}/native/tidal_native.node`);
if (process.argv.includes('--bundle-only')) process.exit(0);
const result = spawnSync(process.execPath, [`${outDir}/ttft.js`, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
