// Packages the extension from dist/ (build it first: `node esbuild.mjs --production`):
//   linux-x64   `vsce package --target linux-x64`, with the native engine
//               (dist/native/tidal_native.node) → dist/tidal-code.vsix, the package the
//               integration tests install
//   win32-x64, linux-arm64
//               `vsce package --target <target>`, with the engine cross-built by
//               scripts/build-native-cross.mjs (native/build-<target>/tidal_native.node, placed
//               at dist/native/ in the package) and Dawn's runtime of that platform for the
//               WebGPU backend → dist/tidal-code-<target>.vsix; packaged from a staging folder,
//               so dist/ keeps this machine's engine
//   darwin-arm64, darwin-x64, win32-arm64
//               `vsce package --target <target>`, no native engine: the WebAssembly one
//               (dist/native-wasm, scripts/build-native-wasm.mjs) and Dawn's runtime of that
//               platform, which the WebAssembly engine drives for the WebGPU backend (Metal on
//               macOS) → dist/tidal-code-<target>.vsix, staged like the cross targets
//   universal   no target, no native binary (the WebAssembly engine, dist/native-wasm, instead)
//               → dist/tidal-code-universal.vsix, for every other platform: the CPU backend
//               through WebAssembly, and the remote backend
// VS Code installs the package of its own platform where there is one, else the universal one.
// Each package's file list is checked after packaging: the linux-x64 one must hold the addon,
// the universal one no .node file at all and the WebAssembly engine, the darwin and win32-arm64
// ones the WebAssembly engine and their dawn.node alone.
//   node scripts/package-vsix.mjs [linux-x64|win32-x64|linux-arm64|darwin-arm64|darwin-x64|win32-arm64|universal ...]
//   (default: linux-x64, universal, each cross target whose engine is built, and the WebAssembly platforms)
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { addonOf, CROSS_TARGETS } from './build-native-cross.mjs';
import { WASM_ADDON_FILES } from './build-native-wasm.mjs';

const ADDON = 'dist/native/tidal_native.node';

const CROSS = Object.keys(CROSS_TARGETS);

const PACKAGES = {
  'linux-x64': { out: 'dist/tidal-code.vsix', target: 'linux-x64', native: true },
  'win32-x64': { out: 'dist/tidal-code-win32-x64.vsix', target: 'win32-x64', native: true, staged: true },
  'linux-arm64': { out: 'dist/tidal-code-linux-arm64.vsix', target: 'linux-arm64', native: true, staged: true },
  // No native build (no Apple SDK here; no Windows-on-Arm toolchain in Debian): the WebAssembly
  // engine, with Dawn's runtime of the platform for the WebGPU backend (Metal on macOS).
  'darwin-arm64': { out: 'dist/tidal-code-darwin-arm64.vsix', target: 'darwin-arm64', native: false, staged: true, runtime: 'darwin-universal' },
  'darwin-x64': { out: 'dist/tidal-code-darwin-x64.vsix', target: 'darwin-x64', native: false, staged: true, runtime: 'darwin-universal' },
  'win32-arm64': { out: 'dist/tidal-code-win32-arm64.vsix', target: 'win32-arm64', native: false, staged: true, runtime: 'win32-arm64' },
  universal: { out: 'dist/tidal-code-universal.vsix', target: undefined, native: false },
};
/** The packages of the WebAssembly engine with a WebGPU runtime. */
const WASM_PLATFORMS = ['darwin-arm64', 'darwin-x64', 'win32-arm64'];

/**
 * A folder holding what a cross target's package carries, laid out as the extension expects:
 * the bundles and files the .vscodeignore lets through, that platform's addon at dist/native/,
 * and the webgpu package's loader with that platform's runtime (dawn.node, and on Windows
 * dxcompiler.dll and d3dcompiler_47.dll) instead of this machine's.
 */
function stageCross(target, scratch, { native = true, runtimeName = target } = {}) {
  const addon = addonOf(target);
  if (native) {
    if (!existsSync(addon)) throw new Error(`${addon} is missing: build it with \`node scripts/build-native-cross.mjs ${target}\``);
    const head = readFileSync(addon).subarray(0, 4);
    const format = target.startsWith('win32') ? head.subarray(0, 2).toString('latin1') === 'MZ' : head.toString('latin1') === '\x7fELF';
    if (!format) throw new Error(`${addon} is not a ${target} library`);
  }
  const stage = path.join(scratch, target);
  // What the .vscodeignore lets through ("!file" or "!folder/**"), but this machine's addon and WebGPU runtime.
  const kept = readFileSync('.vscodeignore', 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('!') && line.slice(1) !== ADDON && !line.includes('dist/node_modules/webgpu'))
    .filter((line) => !line.includes('dist/native-wasm') || existsSync('dist/native-wasm'))
    .map((line) => line.slice(1).replace(/\/\*\*$/, ''));
  for (const entry of ['.vscodeignore', ...kept]) {
    mkdirSync(path.dirname(path.join(stage, entry)), { recursive: true });
    cpSync(entry, path.join(stage, entry), { recursive: true });
  }
  if (native) {
    mkdirSync(path.join(stage, 'dist/native'), { recursive: true });
    copyFileSync(addon, path.join(stage, ADDON));
  }
  const runtime = `node_modules/webgpu/dist/${runtimeName}`;
  if (!existsSync(path.join(runtime, 'dawn.node'))) throw new Error(`${runtime}/dawn.node is missing; run \`npm install\``);
  mkdirSync(path.join(stage, `dist/node_modules/webgpu/dist/${runtimeName}`), { recursive: true });
  for (const file of ['index.js', 'package.json']) copyFileSync(`node_modules/webgpu/${file}`, path.join(stage, 'dist/node_modules/webgpu', file));
  for (const file of readdirSync(runtime)) copyFileSync(path.join(runtime, file), path.join(stage, `dist/node_modules/webgpu/dist/${runtimeName}`, file));
  return stage;
}

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
  if (!spec.native && !existsSync('dist/native-wasm/tidal_native.wasm')) {
    throw new Error('dist/native-wasm is missing: build the WebAssembly engine (`node scripts/build-native-wasm.mjs`) and bundle (`node esbuild.mjs --production`) first');
  }
  if (spec.native && !existsSync(ADDON)) {
    throw new Error(`${ADDON} is missing: build the native engine (\`npm run install\`) and bundle (\`node esbuild.mjs --production\`) first`);
  }
  const cwd = spec.staged ? stageCross(spec.target, scratch, { native: spec.native, runtimeName: spec.runtime ?? spec.target }) : process.cwd();
  const vsce = path.resolve('node_modules/.bin/vsce');
  const args = ['package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '--out', path.resolve(spec.out)];
  if (spec.target) args.push('--target', spec.target);
  if (!spec.staged && !spec.native) args.push('--ignoreFile', ignoreFileWithoutNative(scratch));
  const result = spawnSync(vsce, args, { stdio: 'inherit', cwd });
  if (result.status !== 0) throw new Error(`vsce package (${name}) failed (exit ${result.status ?? result.signal})`);

  const entries = zipEntryNames(readFileSync(spec.out));
  const nativeFiles = entries.filter((entry) => entry.endsWith('.node'));
  if (!entries.includes('extension.vsixmanifest')) throw new Error(`${spec.out} has no extension.vsixmanifest`);
  if (spec.native && !nativeFiles.includes(`extension/${ADDON}`)) throw new Error(`${spec.out} lacks extension/${ADDON}`);
  const ownNative = spec.runtime ? nativeFiles.filter((entry) => !entry.endsWith('/dawn.node')) : nativeFiles;
  if (!spec.native && ownNative.length > 0) throw new Error(`${spec.out} holds native files: ${ownNative.join(', ')}`);
  // The WebAssembly engine: the universal package's only engine; the others carry it where it was built.
  const wasm = WASM_ADDON_FILES.map((file) => `extension/dist/native-wasm/${file}`);
  if (!spec.native && !wasm.every((file) => entries.includes(file))) {
    throw new Error(`${spec.out} lacks the WebAssembly engine (${wasm.filter((file) => !entries.includes(file)).join(', ')})`);
  }
  const dawn = entries.filter((entry) => entry.endsWith('/dawn.node'));
  const runtimeName = spec.runtime ?? spec.target;
  if ((spec.native || spec.runtime) && (dawn.length !== 1 || !dawn[0].includes(`/dist/${runtimeName}/`))) {
    throw new Error(`${spec.out} should carry the ${runtimeName} WebGPU runtime alone, not ${dawn.join(', ') || 'none'}`);
  }
  const megabytes = (statSync(spec.out).size / 2 ** 20).toFixed(1);
  console.log(`${spec.out}: ${name}, ${entries.length} files, ${megabytes} MiB, native engine: ${nativeFiles.length > 0 ? nativeFiles.join(', ') : 'none'}`);
}

const requested = process.argv.slice(2);
const built = CROSS.filter((target) => existsSync(addonOf(target)));
const names = requested.length > 0 ? requested : ['linux-x64', 'universal', ...built, ...WASM_PLATFORMS];
if (requested.length === 0) {
  for (const target of CROSS.filter((t) => !built.includes(t))) {
    console.log(`package-vsix: no ${target} package (${addonOf(target)} is not built; node scripts/build-native-cross.mjs ${target})`);
  }
}
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
