// Bundles the typing replay benchmark with esbuild and runs it; arguments are passed through.
//   node bench/completions/run.mjs [--workspace DIR] [--files a.ts,b.ts] [--edits N] [--threads N]
// Needs dist/native/tidal_native.node (npm run build).
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';

const outfile = 'out/bench/completions/typingReplay.js';
await esbuild.build({
  entryPoints: ['bench/completions/typingReplay.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  logLevel: 'warning',
});
const result = spawnSync(process.execPath, ['--enable-source-maps', outfile, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
