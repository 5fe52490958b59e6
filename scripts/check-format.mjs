// Checks that the C++ and CUDA sources (native/, kernels/) are formatted by .clang-format, with
// the clang-format binary of the `clang-format` npm package. `--fix` rewrites them instead.
// Exits 1 naming the files that differ.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const sourceDirs = ['native', 'kernels'];
const skipDirs = new Set(['build', 'node_modules']);
const extensions = new Set(['.cpp', '.h', '.cu', '.cuh']);

function sources(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skipDirs.has(entry.name)) out.push(...sources(full));
    } else if (extensions.has(path.extname(entry.name))) {
      out.push(full);
    }
  }
  return out;
}

const require = createRequire(import.meta.url);
const binary = path.join(path.dirname(require.resolve('clang-format/package.json')), 'bin',
  `${process.platform === 'win32' ? 'win32' : `${process.platform}_${process.arch}`}`,
  process.platform === 'win32' ? 'clang-format.exe' : 'clang-format');
const files = sourceDirs.flatMap((d) => sources(path.join(root, d))).sort();
const fix = process.argv.includes('--fix');
const args = fix ? ['-i', '--style=file', ...files] : ['--dry-run', '--Werror', '--style=file', ...files];
const run = spawnSync(binary, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
if (run.error) {
  console.error(`clang-format could not run (${binary}): ${run.error.message}`);
  process.exit(1);
}
if (fix) {
  console.log(`formatted ${files.length} files`);
  process.exit(run.status ?? 1);
}
const differing = [...new Set([...run.stderr.matchAll(/^(.+?):\d+:\d+: (?:error|warning)/gm)].map((m) => path.relative(root, m[1])))];
if (run.status !== 0 || differing.length) {
  console.error(`${differing.length} of ${files.length} files are not formatted as .clang-format says:`);
  for (const f of differing) console.error(`  ${f}`);
  console.error('run `node scripts/check-format.mjs --fix` and commit the result');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
console.log(`${files.length} C++ and CUDA files formatted as .clang-format says`);
console.log('1 passed, 0 failed');
