// `npm test`: bundles src/ (the unit tests start the built engine host), then every test
// layer in order — TypeScript type check, the C++/CUDA format check, the lint (layers, see
// eslint.config.mjs), the TypeScript format check (prettier), the import cycle check, unit tests, the
// hostile-input suite, native tests (ctest), the Windows x64, Linux Arm and WebAssembly engines (Wine, QEMU, Node), integration tests inside a real VS Code (the
// linux-x64 package, then the universal one with its WebAssembly engine, then without any engine). Stops
// at the first failing layer, prints one summary line per layer and a last line with the
// test counts over all layers.
import { spawn } from 'node:child_process';

const layers = [
  ['build', 'node', ['esbuild.mjs']],
  ['typecheck', 'npx', ['tsc', '-p', '.', '--noEmit']],
  ['format', 'node', ['scripts/check-format.mjs']],
  ['lint', 'npx', ['eslint', '--max-warnings', '0', '.']],
  ['prettier', 'npx', ['prettier', '--check', 'src', 'test']],
  ['cycles', 'node', ['scripts/check-cycles.mjs']],
  ['unit', 'node', ['scripts/test-unit.mjs']],
  ['adversarial', 'node', ['scripts/test-unit.mjs', 'test/adversarial']],
  ['native', 'ctest', ['--test-dir', 'native/build', '--output-on-failure', '--verbose']],
  // The engines for Windows x64 (under Wine) and Linux on Arm (under QEMU), cross-built here: native tests, the addon against this one, the main job.
  ['cross', 'node', ['scripts/test-cross.mjs']],
  ['integration', 'node', ['test/integration/run.mjs']],
  // The universal package (no native engine: the WebAssembly one) in the same VS Code: the engine host runs it, a question answered locally.
  ['integration-wasm', 'node', ['test/integration/run.mjs'], { TIDAL_NATIVE_ENGINE: 'wasm' }],
  // The same without its WebAssembly engine (no engine at all): activation, the status bar, the remote backend.
  ['integration-no-native', 'node', ['test/integration/run.mjs'], { TIDAL_NATIVE_ENGINE: 'absent' }],
  // A workspace of two folders (a .code-workspace): the repository, #file mentions, Used N files and completions across both.
  ['integration-multi-root', 'node', ['test/integration/run.mjs'], { TIDAL_WORKSPACE: 'multi-root' }],
];

// Counts from each runner's own closing lines.
function countTests(output) {
  let passed = 0;
  let failed = 0;
  const nodePass = output.match(/^ℹ pass (\d+)$/m);
  const nodeFail = output.match(/^ℹ fail (\d+)$/m);
  if (nodePass) passed += Number(nodePass[1]);
  if (nodeFail) failed += Number(nodeFail[1]);
  // Our native harness and the integration runner both end with "N passed, M failed".
  for (const match of output.matchAll(/(?:^|\s)(\d+) passed, (\d+) failed\s*$/gm)) {
    passed += Number(match[1]);
    failed += Number(match[2]);
  }
  return { passed, failed };
}

function runLayer(command, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let output = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      output += chunk.toString();
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

const only = process.argv.slice(2);
const summary = [];
let total = { passed: 0, failed: 0 };
let failedLayer = false;
for (const [name, command, args, env] of layers) {
  if (only.length && !only.includes(name)) continue;
  const start = Date.now();
  console.log(`\n=== ${name} ===`);
  const { code, output } = await runLayer(command, args, env);
  const counts = countTests(output);
  total = { passed: total.passed + counts.passed, failed: total.failed + counts.failed };
  const seconds = ((Date.now() - start) / 1000).toFixed(1);
  const ok = code === 0;
  const tally = counts.passed + counts.failed > 0 ? `, ${counts.passed} passed, ${counts.failed} failed` : '';
  summary.push(`${ok ? 'ok  ' : 'FAIL'} ${name} (${seconds} s${tally})`);
  if (!ok) {
    failedLayer = true;
    if (counts.failed === 0) total.failed += 1; // a layer that broke before its tests ran
    break;
  }
}
console.log(`\n${summary.join('\n')}`);
console.log(`Total: ${total.passed} passed, ${total.failed} failed`);
process.exit(failedLayer || total.passed === 0 ? 1 : 0);
