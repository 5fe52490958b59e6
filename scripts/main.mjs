// The main job: build the native engine and the bundles, package the VSIX, and run it in a
// real VS Code (the integration smoke test, which installs the VSIX and runs its commands).
import { spawnSync } from 'node:child_process';

function run(command, args) {
  console.log(`\n$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run('node', ['scripts/build-native.mjs']);
run('npm', ['run', 'package']);
run('node', ['test/integration/run.mjs']);
