// The main job: build the native engine and the bundles, run the embedded default model
// (models/tidal-code-mini) through the engine host — a code completion and a question about
// a sample repository, with full, TidalDecode and Quest attention, tokens/s printed — then
// package the VSIX and run it in a real VS Code (the integration smoke test).
import { spawnSync } from 'node:child_process';

function run(command, args) {
  console.log(`\n$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run('node', ['scripts/build-native.mjs']);
run('node', ['esbuild.mjs']);
run('node', ['dist/embedded-demo.js']);
run('npm', ['run', 'package']);
run('node', ['test/integration/run.mjs']);
