// Packages the extension from dist/ (build it first: `node esbuild.mjs --production`):
//   linux-x64   `vsce package --target linux-x64`, with the native engine
//               (dist/native/tidal_native.node) → dist/tidal-code.vsix, the package the
//               integration tests install
//   universal   no target, no native binary → dist/tidal-code-universal.vsix, for every
//               other platform (win32-x64, darwin-arm64, linux-arm64, ...): the remote backend
// VS Code installs the package of its own platform where there is one, else the universal one.
// Each package's file list is checked after packaging: the linux-x64 one must hold the addon,
// the universal one no .node file at all.
//   node scripts/package-vsix.mjs [linux-x64|universal ...]   (default: both)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ADDON = 'dist/native/tidal_native.node';

const PACKAGES = {
  'linux-x64': { out: 'dist/tidal-code.vsix', target: 'linux-x64', native: true },
  universal: { out: 'dist/tidal-code-universal.vsix', target: undefined, native: false },
};

/** The .vscodeignore for a package without the native engine: the same list, the addon and the WebGPU runtime (which the engine drives) left out. */
function ignoreFileWithoutNative(dir) {
  const lines = readFileSync('.vscodeignore', 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== `!${ADDON}` && !line.includes('dist/node_modules/webgpu'));
  const file = path.join(dir, 'vscodeignore-universal');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** The names of the entries of a zip file, read from its central directory. */
function zipEntryNames(buffer) {
  const endSignature = 0x06054b50;
  let end = buffer.length - 22;
  while (end >= 0 && buffer.readUInt32LE(end) !== endSignature) end--;
  if (end < 0) throw new Error('not a zip file (no end of central directory)');
  const count = buffer.readUInt16LE(end + 10);
  let offset = buffer.readUInt32LE(end + 16);
  const names = [];
  for (let i = 0; i < count; i++) {
    if (buffer.readUInt32LE(offset) !== 0x02014b50) throw new Error('broken zip central directory');
    const nameLength = buffer.readUInt16LE(offset + 28);
    const extraLength = buffer.readUInt16LE(offset + 30);
    const commentLength = buffer.readUInt16LE(offset + 32);
    names.push(buffer.toString('utf8', offset + 46, offset + 46 + nameLength));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

function packageOne(name, scratch) {
  const spec = PACKAGES[name];
  if (spec.native && !existsSync(ADDON)) {
    throw new Error(`${ADDON} is missing: build the native engine (\`npm run install\`) and bundle (\`node esbuild.mjs --production\`) first`);
  }
  const args = ['vsce', 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '--out', spec.out];
  if (spec.target) args.push('--target', spec.target);
  if (!spec.native) args.push('--ignoreFile', ignoreFileWithoutNative(scratch));
  const result = spawnSync('npx', args, { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`vsce package (${name}) failed (exit ${result.status ?? result.signal})`);

  const entries = zipEntryNames(readFileSync(spec.out));
  const nativeFiles = entries.filter((entry) => entry.endsWith('.node'));
  if (!entries.includes('extension.vsixmanifest')) throw new Error(`${spec.out} has no extension.vsixmanifest`);
  if (spec.native && !nativeFiles.includes(`extension/${ADDON}`)) throw new Error(`${spec.out} lacks extension/${ADDON}`);
  if (!spec.native && nativeFiles.length > 0) throw new Error(`${spec.out} holds native files: ${nativeFiles.join(', ')}`);
  const megabytes = (statSync(spec.out).size / 2 ** 20).toFixed(1);
  console.log(`${spec.out}: ${name}, ${entries.length} files, ${megabytes} MiB, native engine: ${nativeFiles.length > 0 ? nativeFiles.join(', ') : 'none'}`);
}

const requested = process.argv.slice(2);
const names = requested.length > 0 ? requested : Object.keys(PACKAGES);
for (const name of names) {
  if (!PACKAGES[name]) {
    console.error(`package-vsix: unknown package "${name}"; expected one of ${Object.keys(PACKAGES).join(', ')}`);
    process.exit(2);
  }
}
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-package-'));
try {
  for (const name of names) packageOne(name, scratch);
} catch (error) {
  console.error(`package-vsix: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
