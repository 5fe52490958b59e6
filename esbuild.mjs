// Bundles src/ into dist/: the extension (runs in VS Code's extension host) and the engine
// host (a separate Node process). `vscode` stays external; the native addon is copied next
// to the bundles, never bundled.
//   node esbuild.mjs [--production] [--watch]
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import { WASM_ADDON_FILES } from './scripts/build-native-wasm.mjs';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

// Chat templates render in a worker thread, which runs code given as text (src/core/prompt/chatTemplate.ts):
// the bundles carry @huggingface/jinja as text too, as the global `tidalJinja`.
const jinja = await esbuild.build({
  stdin: { contents: "export * from '@huggingface/jinja';", resolveDir: process.cwd() },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'iife',
  globalName: 'tidalJinja',
  minify: true,
  write: false,
  logLevel: 'warning',
});

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  external: ['vscode', 'webgpu'],
  define: { TIDAL_JINJA_BUNDLE: JSON.stringify(jinja.outputFiles[0].text) },
  logLevel: 'info',
};

const addonBuilt = 'native/build/Release/tidal_native.node';

// The WebGPU runtime (the `webgpu` package: its loader and this platform's dawn.node) next to the
// engine host, which imports it for the 'webgpu' backend; the package of this platform carries it.
function copyWebGpuRuntime() {
  const platform = `${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`;
  for (const file of ['index.js', 'package.json', `dist/${platform}/dawn.node`]) {
    const from = `node_modules/webgpu/${file}`;
    if (!existsSync(from)) return;
    mkdirSync(path.dirname(`dist/node_modules/webgpu/${file}`), { recursive: true });
    copyFileSync(from, `dist/node_modules/webgpu/${file}`);
  }
}
// The WebAssembly build of the engine (scripts/build-native-wasm.mjs), when there is one, at
// dist/native-wasm/: the engine of the platforms without a native build (src/native/wasmAddon.ts).
function copyWasmAddon() {
  if (!WASM_ADDON_FILES.every((file) => existsSync(`native/build-wasm/${file}`))) return;
  mkdirSync('dist/native-wasm', { recursive: true });
  for (const file of WASM_ADDON_FILES) copyFileSync(`native/build-wasm/${file}`, `dist/native-wasm/${file}`);
}
const copyAddon = {
  name: 'copy-native-addon',
  setup(build) {
    build.onEnd(() => {
      copyWasmAddon();
      if (!existsSync(addonBuilt)) {
        console.warn(`esbuild: ${addonBuilt} is missing; run \`npm run install\` to build the native engine.`);
        return;
      }
      mkdirSync('dist/native', { recursive: true });
      copyFileSync(addonBuilt, 'dist/native/tidal_native.node');
      copyWebGpuRuntime();
    });
  },
};

const contexts = await Promise.all([
  esbuild.context({ ...common, entryPoints: { extension: 'src/vscode/extension.ts' }, outdir: 'dist' }),
  esbuild.context({ ...common, entryPoints: { 'engine-host': 'src/host/main.ts' }, outdir: 'dist', plugins: [copyAddon] }),
  esbuild.context({ ...common, entryPoints: { 'embedded-demo': 'src/host/embeddedDemo.ts' }, outdir: 'dist' }),
  // The chat panel's script runs in the webview (a browser), with markdown-it and highlight.js inside.
  esbuild.context({ ...common, platform: 'browser', target: 'es2022', format: 'iife', external: [], entryPoints: { 'chat-panel': 'src/vscode/webview/chatPanel.ts' }, outdir: 'dist' }),
  esbuild.context({ ...common, entryPoints: { 'tidal-serve': 'src/serve/main.ts' }, outdir: 'dist' }),
  esbuild.context({ ...common, entryPoints: { 'tidal-eval': 'src/eval/main.ts' }, outdir: 'dist' }),
]);

if (watch) {
  await Promise.all(contexts.map((context) => context.watch()));
} else {
  await Promise.all(contexts.map((context) => context.rebuild()));
  await Promise.all(contexts.map((context) => context.dispose()));
}
