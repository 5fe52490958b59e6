// Unit tests: bundles each test/unit/**/*.test.ts with esbuild and runs them with Node's
// test runner. Tests that need the built engine host use dist/ (built by `npm run build`).
// `node scripts/test-unit.mjs test/adversarial` runs another folder of tests the same way.
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

const root = process.argv[2] ?? 'test/unit';
const outDir = path.join('out', root);
const tests = findTests(root);
rmSync(outDir, { recursive: true, force: true });
await esbuild.build({
  entryPoints: tests,
  outdir: outDir,
  outbase: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  // eslint loads its config and plugins from node_modules at run time (test/unit/lint).
  external: ['vscode', 'eslint', 'webgpu'],
  logLevel: 'warning',
});
const compiled = tests.map((file) => path.join(outDir, path.relative(root, file)).replace(/\.ts$/, '.js'));
// --test-force-exit: a test file whose tests are done exits even if some handle (a child's
// pipe, a timer) is still open, instead of holding CI until its time limit.
const result = spawnSync(process.execPath, ['--test', '--test-force-exit', '--test-reporter=spec', ...compiled], { stdio: 'inherit' });
process.exit(result.status ?? 1);
