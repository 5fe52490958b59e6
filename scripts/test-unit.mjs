// Unit tests: bundles each test/unit/**/*.test.ts with esbuild and runs them with Node's
// test runner. Tests that need the built engine host use dist/ (built by `npm run build`).
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return findTests(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

const tests = findTests('test/unit');
rmSync('out/test/unit', { recursive: true, force: true });
await esbuild.build({
  entryPoints: tests,
  outdir: 'out/test/unit',
  outbase: 'test/unit',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  external: ['vscode'],
  logLevel: 'warning',
});
const compiled = tests.map((file) => path.join('out/test/unit', path.relative('test/unit', file)).replace(/\.ts$/, '.js'));
// --test-force-exit: a test file whose tests are done exits even if some handle (a child's
// pipe, a timer) is still open, instead of holding CI until its time limit.
const result = spawnSync(process.execPath, ['--test', '--test-force-exit', '--test-reporter=spec', ...compiled], { stdio: 'inherit' });
process.exit(result.status ?? 1);
