// `npm test`: every test layer in order — TypeScript type check, unit tests, native tests
// (ctest), integration tests inside a real VS Code. Stops at the first failing layer and
// prints one summary line per layer.
import { spawnSync } from 'node:child_process';

const layers = [
  ['typecheck', 'npx', ['tsc', '-p', '.', '--noEmit']],
  ['unit', 'node', ['scripts/test-unit.mjs']],
  ['native', 'ctest', ['--test-dir', 'native/build', '--output-on-failure']],
  ['integration', 'node', ['test/integration/run.mjs']],
];
const only = process.argv.slice(2);
const summary = [];
let failed = false;
for (const [name, command, args] of layers) {
  if (only.length && !only.includes(name)) continue;
  const start = Date.now();
  console.log(`\n=== ${name} ===`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  const seconds = ((Date.now() - start) / 1000).toFixed(1);
  const ok = result.status === 0;
  summary.push(`${ok ? 'ok  ' : 'FAIL'} ${name} (${seconds} s)`);
  if (!ok) {
    failed = true;
    break;
  }
}
console.log(`\n${summary.join('\n')}`);
process.exit(failed ? 1 : 0);
