// Run by scripts/test-cross.mjs with this machine's Node and addon, and with another platform's
// Node and the addon cross-built for it (Windows under Wine, Arm under QEMU): for every fixture
// model on the CPU backend, the logits of a prefill, of a TidalDecode step, and of a full step
// after a save and load of the sequence's KV file (positioned writes, the replace over an older
// file, positioned reads); a model loaded from a folder with a non-ASCII path and from one past MAX_PATH; the refusal of a
// missing model path. Prints one JSON object. Also run with the WebAssembly build: ADDON is then
// its folder, loaded through src/native/wasmAddon.ts bundled to the file TIDAL_WASM_LOADER names.
//   node test/cross/addonDigest.cjs ADDON REPOSITORY_ROOT SCRATCH_FOLDER
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const [addonPath, root, scratch] = process.argv.slice(2);
let addon;
async function loadAddon() {
  if (!fs.statSync(addonPath).isDirectory()) return require(addonPath);
  const { loadWasmAddon } = require(process.env.TIDAL_WASM_LOADER);
  return loadWasmAddon(addonPath);
}

function sample(logits) {
  // 16 logits spread over the vocabulary, and the sum of all of them.
  const picked = [];
  for (let i = 0; i < 16; i++) picked.push(logits[Math.floor((i * (logits.length - 1)) / 15)]);
  let sum = 0;
  for (const value of logits) sum += value;
  return { picked, sum };
}

const load = (folder) => addon.loadModel(folder, { backend: 'cpu', threads: 2, maxContext: 256 });
// The same 48 tokens for every load of a model, so two folders of one model compare.
const promptOf = (engine) => Array.from({ length: 48 }, (_, i) => (i * 7919 + 104729) % engine.modelInfo.vocabSize);

async function main() {
  addon = await loadAddon();
  const out = { platform: process.platform, backends: addon.compiledBackends(), models: {} };
  const fixtures = path.join(root, 'test', 'fixtures', 'models');
  for (const name of fs.readdirSync(fixtures).sort()) {
    const engine = await load(path.join(fixtures, name));
    try {
      const vocab = engine.modelInfo.vocabSize;
      const sequence = await engine.createSequence();
      const prefill = await engine.prefill(sequence, promptOf(engine));
      const tidal = await engine.decode(sequence, 5 % vocab, { mode: 'tidal', tokenBudget: 16, selectionLayers: [1] });
      const file = path.join(scratch, `${name} ünïcode.kv`);
      fs.writeFileSync(file, 'an older file the save replaces');
      await engine.saveSequence(sequence, file);
      const loaded = await engine.loadSequence(file);
      const full = await engine.decode(loaded, 7 % vocab, { mode: 'full' });
      fs.rmSync(file);
      out.models[name] = { prefill: sample(prefill), tidal: sample(tidal), full: sample(full) };
    } finally {
      await engine.unload();
    }
  }
  // A model folder whose path is not ASCII (Windows takes UTF-16 paths; the engine gets UTF-8),
  // and one whose path is longer than Windows' MAX_PATH (260).
  const folders = {
    unicodeFolder: path.join(scratch, 'modèles ünï 模型', 'llama3'),
    longFolder: path.join(scratch, ...Array.from({ length: 6 }, (_, i) => `a-folder-name-of-some-length-${i}-${'x'.repeat(20)}`), 'llama3'),
  };
  for (const [key, folder] of Object.entries(folders)) {
    fs.cpSync(path.join(fixtures, 'llama3-gqa-f32'), folder, { recursive: true });
    const engine = await load(folder);
    try {
      out[key] = sample(await engine.prefill(await engine.createSequence(), promptOf(engine)));
      out[`${key}Length`] = folder.length;
    } finally {
      await engine.unload();
    }
  }
  try {
    await addon.loadModel(path.join(root, 'no-such-model'), { backend: 'cpu' });
    out.missing = 'loaded';
  } catch (error) {
    out.missing = error.message.includes('does not exist') ? 'refused' : error.message;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ error: String(error && error.stack ? error.stack : error) })}\n`);
  process.exitCode = 1;
});
