// Bundles bench/eval/sparseFirstStep.ts with esbuild and runs it; arguments are passed through.
// Needs the addon built in native/build (npm install builds it).
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';

const outfile = 'out/bench/eval/sparseFirstStep.js';
await esbuild.build({ entryPoints: ['bench/eval/sparseFirstStep.ts'], outfile, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'warning' });
const result = spawnSync(process.execPath, [outfile, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
