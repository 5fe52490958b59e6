// The main job: build the native engine and the bundles, run the embedded default model
// (models/tidal-code-mini) through the engine host — a code completion and a question about
// a sample repository, with full, TidalDecode and Quest attention, tokens/s printed — then
// package the VSIX and run it in a real VS Code (the integration suite).
//
// Each step runs after the one before has succeeded; the first that fails ends the job with
// its exit code, named on the last line. The tools the integration suite needs (Node 24,
// code-server) are installed as a step of their own on the first run, so a failed download
// reads as that and not as a failed test.
import { spawnSync } from 'node:child_process';

const steps = [
  ['build the native engine', 'node', ['scripts/build-native.mjs']],
  ['bundle the extension and the engine host', 'node', ['esbuild.mjs']],
  ['run the embedded model', 'node', ['dist/embedded-demo.js']],
  ['package the VSIX', 'npm', ['run', 'package']],
  // The offline runner's tools; the electron runner (TIDAL_VSCODE=electron) downloads VS Code itself.
  ...((process.env.TIDAL_VSCODE || 'code-server').toLowerCase() === 'code-server'
    ? [['install the VS Code test tools (first run only)', 'node', ['scripts/setup-vscode-server.mjs']]]
    : []),
  ['run the integration suite in VS Code', 'node', ['test/integration/run.mjs']],
];

for (const [name, command, args] of steps) {
  console.log(`\n$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) {
    const why = result.error ? result.error.message : result.signal ? `killed by ${result.signal}` : `exit code ${result.status}`;
    console.error(`\nmain: "${name}" failed (${why}); the steps after it did not run.`);
    process.exit(result.status || 1);
  }
}
console.log('\nmain: every step passed.');
