// Parameter counts and KV bytes per token computed from a model's shape (as the engine reads
// it: inspectModel), checked against the fixture models' real tensors (safetensors headers)
// and the engine's own figures, and the catalogue's models against their published parameter
// counts.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { loadAddon } from '../../../src/native/addon';
import { CATALOGUE, catalogueFacts, isModelFile, recommendedModel, selectModelFiles, WEIGHT_FORMATS, weightBytes } from '../../../src/core/models/catalogue';
import { estimateMemory, kvBytesPerToken, ModelShape, parameterCount } from '../../../src/core/models/modelShape';

const FIXTURES = 'test/fixtures/models';
const addon = loadAddon(path.resolve('dist'));
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-catalogue-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function shapeOf(dir: string): ModelShape {
  const inspection = addon.inspectModel(dir);
  assert.deepEqual(inspection.problems, [], dir);
  return { architecture: inspection.family!, ...inspection.shape! };
}

// Elements of every tensor in a folder's safetensors files, from their JSON headers.
function safetensorsElements(folder: string): number {
  let total = 0;
  for (const name of readdirSync(folder).filter((n) => n.endsWith('.safetensors'))) {
    const bytes = readFileSync(path.join(folder, name));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { shape: number[] }>;
    for (const [key, info] of Object.entries(header)) if (key !== '__metadata__') total += info.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

test('parameter counts from the shape equal the tensors each fixture model stores (llama, mistral, qwen2 tied, qwen3)', () => {
  const folders = readdirSync(FIXTURES);
  assert.ok(folders.length >= 5);
  for (const name of [...folders.map((f) => path.join(FIXTURES, f)), 'models/tidal-code-mini']) {
    assert.equal(parameterCount(shapeOf(name)), safetensorsElements(name), name);
    assert.equal(addon.inspectModel(name).parameters, safetensorsElements(name), name);
  }
});

test('KV bytes per token match what the engine reports for each fixture model', async () => {
  for (const folder of readdirSync(FIXTURES)) {
    const dir = path.join(FIXTURES, folder);
    const shape = shapeOf(dir);
    const engine = await addon.loadModel(dir, { threads: 1, maxContext: 64 });
    try {
      assert.equal(kvBytesPerToken(shape), engine.modelInfo.kvBytesPerToken, folder);
    } finally {
      await engine.unload();
    }
  }
});

test('catalogue models have their published parameter counts and sensible memory at 8k and full context', () => {
  const published: Record<string, number> = {
    'qwen2.5-coder-0.5b-instruct': 0.49e9,
    'qwen2.5-coder-1.5b-instruct': 1.54e9,
    'qwen2.5-coder-3b-instruct': 3.09e9,
    'qwen2.5-coder-7b-instruct': 7.61e9,
    'qwen2.5-coder-14b-instruct': 14.7e9,
    'qwen3-4b': 4.02e9,
  };
  const bf16 = CATALOGUE.filter((m) => m.weights === 'bf16');
  assert.deepEqual(bf16.map((m) => m.id).sort(), Object.keys(published).sort());
  for (const model of bf16) {
    const facts = catalogueFacts(model, 8192);
    const expected = published[model.id];
    assert.ok(Math.abs(facts.parameters - expected) / expected < 0.01, `${model.id}: ${facts.parameters}`);
    assert.ok(facts.downloadBytes > facts.parameters * 2 && facts.downloadBytes < facts.parameters * 2 + 20e6);
    const m = facts.memory;
    assert.equal(m.contextTokens, 8192);
    assert.equal(m.totalBytes, m.weightBytes + m.kvBytes + m.overheadBytes);
    // f32 K and V for every layer and KV head, + 1/16 for page bounds.
    const s = model.shape;
    assert.equal(m.kvBytes, Math.ceil((8192 * s.layers * 2 * s.kvHeads * s.headDim * 4 * 17) / 16));
    const full = catalogueFacts(model, 0).memory;
    assert.equal(full.contextTokens, s.maxPositions);
    assert.ok(full.kvBytes > m.kvBytes);
  }
  // 0.5B at 32k: 24 layers x 2 x 2 heads x 64 x 4 B = 24 KiB per token (+1/16) -> ~0.84 GB of KV.
  const small = catalogueFacts(CATALOGUE[0], 32768).memory;
  assert.equal(small.kvBytes, (32768 * 24 * 2 * 2 * 64 * 4 * 17) / 16);
  // A context longer than the model's maximum is capped.
  assert.equal(estimateMemory(CATALOGUE[0].shape, 0, 1 << 20).contextTokens, 32768);
  // On CUDA the cache is bf16: half the bytes, the weights unchanged.
  const gpu = catalogueFacts(CATALOGUE[0], 32768, 'bf16').memory;
  assert.equal(gpu.kvFormat, 'bf16');
  assert.equal(gpu.kvBytes, small.kvBytes / 2);
  assert.equal(gpu.weightBytes, small.weightBytes);
  // An FP8 cache: a byte a value and a 2-byte scale a row (24 layers x 2 x 2 heads x (64 + 2)),
  // with Quest's bf16 bounds (+ 2 x 64 x 2 / 16 a row) as the estimate counts them.
  const fp8 = catalogueFacts(CATALOGUE[0], 32768, 'fp8').memory;
  assert.equal(fp8.kvFormat, 'fp8');
  assert.equal(fp8.kvBytes, 32768 * 24 * 2 * 2 * (64 + 2 + (64 * 2) / 16));
  // Per token without Quest's bounds (a cache that never runs Quest has none on CUDA): the
  // engine's figure for an 8B model, 66,560 bytes.
  const llama8b = { layers: 32, kvHeads: 8, headDim: 128 };
  assert.equal(kvBytesPerToken(llama8b, 'fp8'), 66560);
  assert.equal(kvBytesPerToken(llama8b, 'bf16'), 131072);
  assert.equal(kvBytesPerToken(llama8b, 'bf16', true), 131072 + 8192);
});

test('each Qwen2.5-Coder model also comes as Q8_0 and Q4_K_M GGUF; Qwen3 (not read from GGUF) only as bf16', () => {
  const coder = CATALOGUE.filter((m) => m.shape.architecture === 'qwen2');
  assert.equal(coder.length, 15);
  for (const m of coder.filter((m) => m.weights !== 'bf16')) {
    const base = CATALOGUE.find((b) => b.weights === 'bf16' && m.id.startsWith(b.id))!;
    assert.equal(m.id, `${base.id}-${m.weights.toLowerCase()}`);
    assert.equal(m.repo, `${base.repo}-GGUF`);
    assert.equal(m.label, `${base.label} ${m.weights}`);
    assert.deepEqual(m.shape, base.shape);
    assert.equal(m.tokenizerBytes, 0);
  }
  assert.deepEqual(
    CATALOGUE.filter((m) => m.shape.architecture === 'qwen3').map((m) => m.weights),
    ['bf16'],
  );
});

test('GGUF weight bytes are those of the files llama.cpp writes (published sizes of Qwen2.5-Coder 7B and 14B)', () => {
  // Sizes of llama.cpp's quantisations of Qwen2.5-Coder-7B/14B-Instruct as listed on the hub.
  const published: [string, number][] = [
    ['qwen2.5-coder-7b-instruct-q4_k_m', 4.68e9],
    ['qwen2.5-coder-7b-instruct-q8_0', 8.1e9],
    ['qwen2.5-coder-14b-instruct-q4_k_m', 8.99e9],
    ['qwen2.5-coder-14b-instruct-q8_0', 15.7e9],
  ];
  for (const [id, bytes] of published) {
    const model = CATALOGUE.find((m) => m.id === id)!;
    const estimate = weightBytes(model.shape, model.weights);
    assert.ok(Math.abs(estimate - bytes) / bytes < 0.015, `${id}: ${estimate} against ${bytes}`);
    assert.equal(catalogueFacts(model, 8192).downloadBytes, estimate);
  }
  // Q8_0 is 34 bytes per 32 values plus the f32 norms and biases; bf16 2 bytes a parameter.
  const small = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-0.5b-instruct')!.shape;
  const parameters = parameterCount(small);
  const vectors = small.layers * (2 * small.hiddenSize + small.heads * small.headDim + 2 * small.kvHeads * small.headDim) + small.hiddenSize;
  assert.equal(weightBytes(small, 'Q8_0'), ((parameters - vectors) * 34) / 32 + vectors * 4);
  assert.equal(weightBytes(small, 'bf16'), parameters * 2);
  // 0.5B rows of 896 values do not split into 256-value blocks: Q4_K falls back to Q5_0, so its
  // Q4_K_M file is larger than 4.5 bits a parameter.
  assert.ok(weightBytes(small, 'Q4_K_M') > (parameters * 5) / 8);
  // On CUDA an untied embedding stays in host memory: the 7B (untied, a Q4_K embedding of
  // 152064 x 3584) holds its file less the embedding on the GPU, in every format. The 0.5B
  // (tied, Q6_K falling back to Q8_0) takes what its file does: its embedding is the output
  // matrix, in its blocks also where its rows do not split into 256-value blocks (Q8_0).
  const sevenB = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-7b-instruct-q4_k_m')!.shape;
  const sevenBEmbedding = 152064 * 3584;
  assert.equal(sevenB.tiedEmbeddings, false);
  assert.equal(weightBytes(sevenB, 'Q4_K_M', true), weightBytes(sevenB, 'Q4_K_M') - (sevenBEmbedding * 144) / 256);
  assert.equal(weightBytes(sevenB, 'Q8_0', true), weightBytes(sevenB, 'Q8_0') - (sevenBEmbedding * 34) / 32);
  assert.equal(weightBytes(sevenB, 'bf16', true), weightBytes(sevenB, 'bf16') - sevenBEmbedding * 2);
  assert.equal(small.tiedEmbeddings, true);
  assert.equal(weightBytes(small, 'Q4_K_M', true), weightBytes(small, 'Q4_K_M'));
  assert.equal(weightBytes(small, 'bf16', true), weightBytes(small, 'bf16'));
  const oddRows = { ...sevenB, hiddenSize: 3584 + 32, tiedEmbeddings: true };
  assert.equal(weightBytes(oddRows, 'Q4_K_M', true), weightBytes(oddRows, 'Q4_K_M'));
});

test('the recommended catalogue model is the largest that fits the room, in its most precise format that fits', () => {
  const size = (id: string, kv: 'bf16' | 'fp8' | 'f32' = 'bf16') =>
    catalogueFacts(
      CATALOGUE.find((m) => m.id === id)!,
      32768,
      kv,
    ).memory.totalBytes;
  // An 80 GB GPU takes the 14B model in bf16 at 32K tokens (~38 GB); 24 GB the 14B in Q4_K_M
  // (bf16 does not fit, nor Q8_0); a 16 GB card the 7B in Q8_0.
  assert.equal(recommendedModel(32768, 80e9, 'bf16')?.id, 'qwen2.5-coder-14b-instruct');
  assert.equal(recommendedModel(32768, 24e9, 'bf16')?.id, 'qwen2.5-coder-14b-instruct-q4_k_m');
  assert.equal(recommendedModel(32768, 16e9, 'bf16')?.id, 'qwen2.5-coder-7b-instruct-q8_0');
  // Exactly at the edge: the 7B Q8_0 needs its estimate plus a tenth of the room kept free; a
  // byte less and the 7B Q4_K_M is the one.
  const q8 = size('qwen2.5-coder-7b-instruct-q8_0');
  assert.equal(recommendedModel(32768, q8 / 0.9, 'bf16')?.id, 'qwen2.5-coder-7b-instruct-q8_0');
  assert.equal(recommendedModel(32768, q8 / 0.9 - 1, 'bf16')?.id, 'qwen2.5-coder-7b-instruct-q4_k_m');
  // Every model that fits is no larger than the one recommended, and none of its size in a
  // more precise format fits.
  for (const room of [2e9, 6e9, 12e9, 16e9, 24e9, 40e9, 80e9]) {
    const pick = recommendedModel(32768, room, 'bf16')!;
    const fits = CATALOGUE.filter((m) => size(m.id) <= room * 0.9);
    assert.ok(fits.includes(pick), `${room}: ${pick.id}`);
    for (const m of fits) {
      assert.ok(parameterCount(m.shape) <= parameterCount(pick.shape), `${room}: ${m.id} is larger than ${pick.id}`);
      if (parameterCount(m.shape) === parameterCount(pick.shape))
        assert.ok(WEIGHT_FORMATS.indexOf(m.weights) >= WEIGHT_FORMATS.indexOf(pick.weights), `${room}: ${m.id} is more precise than ${pick.id}`);
    }
  }
  // The f32 cache of the CPU needs more than the bf16 one: a room can fit a model on a GPU that it
  // would not fit on the CPU.
  const room = (size('qwen2.5-coder-14b-instruct-q4_k_m') + 1e6) / 0.9;
  assert.equal(recommendedModel(32768, room, 'bf16')?.id, 'qwen2.5-coder-14b-instruct-q4_k_m');
  assert.ok(size('qwen2.5-coder-14b-instruct-q4_k_m', 'f32') > room * 0.9);
  assert.notEqual(recommendedModel(32768, room, 'f32')?.id, 'qwen2.5-coder-14b-instruct-q4_k_m');
  // An FP8 cache leaves more of a 16 GB card to the weights: at 32K tokens the 14B in Q4_K_M
  // needs ~16.4 GB with a bf16 cache (the 7B Q8_0 is picked) and ~13.2 GB with an FP8 one.
  assert.equal(recommendedModel(32768, 16e9, 'fp8')?.id, 'qwen2.5-coder-14b-instruct-q4_k_m');
  assert.ok(size('qwen2.5-coder-14b-instruct-q4_k_m', 'fp8') < 16e9 * 0.9);
  assert.ok(size('qwen2.5-coder-14b-instruct-q4_k_m') > 16e9 * 0.9);
  // Too little for any: none.
  assert.equal(recommendedModel(32768, 100e6, 'f32'), undefined);
});

test('a GGUF model downloads the one file of its quantisation; split parts or none are refused with what the repository has', () => {
  const q4 = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-7b-instruct-q4_k_m')!;
  const q8 = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-7b-instruct-q8_0')!;
  const listing = [
    'README.md',
    '.gitattributes',
    'qwen2.5-coder-7b-instruct-fp16-00001-of-00004.gguf',
    'qwen2.5-coder-7b-instruct-q4_k_m.gguf',
    'qwen2.5-coder-7b-instruct-q4_k_s.gguf',
    'qwen2.5-coder-7b-instruct-q8_0-00001-of-00003.gguf',
    'qwen2.5-coder-7b-instruct-q8_0-00002-of-00003.gguf',
    'qwen2.5-coder-7b-instruct-q8_0-00003-of-00003.gguf',
    'sub/qwen2.5-coder-7b-instruct-q8_0.gguf',
  ].map((p) => ({ path: p }));
  assert.deepEqual(selectModelFiles(q4, listing), [{ path: 'qwen2.5-coder-7b-instruct-q4_k_m.gguf' }]);
  assert.throws(() => selectModelFiles(q8, listing), { code: 'ERR_TIDAL_HUB', message: /has Q8_0 only in 3 split parts, which Tidal does not read yet/ });
  // The name's case does not matter (Qwen3-4B-Q4_K_M.gguf); two candidates are refused.
  assert.deepEqual(selectModelFiles(q4, [{ path: 'Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf' }]), [{ path: 'Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf' }]);
  assert.throws(
    () => selectModelFiles(q4, [{ path: 'a-q4_k_m.gguf' }, { path: 'b-Q4_K_M.gguf' }]),
    /more than one Q4_K_M file \(a-q4_k_m\.gguf, b-Q4_K_M\.gguf\)/,
  );
  assert.throws(() => selectModelFiles(q4, [{ path: 'x-q2_k.gguf' }]), /has no Q4_K_M file \(its GGUF files: x-q2_k\.gguf\)/);
  assert.throws(() => selectModelFiles(q4, [{ path: 'README.md' }]), /has no Q4_K_M file\. Pick the model in another format/);
  // A bf16 model takes its folder files, as before.
  const bf16 = CATALOGUE.find((m) => m.id === 'qwen2.5-coder-7b-instruct')!;
  assert.deepEqual(
    selectModelFiles(bf16, [{ path: 'config.json' }, { path: 'model.safetensors' }, { path: 'model.gguf' }, { path: 'README.md' }]).map((f) => f.path),
    ['config.json', 'model.safetensors'],
  );
});

test('only the files a model folder needs are fetched from a repository', () => {
  const keep = [
    'config.json',
    'model-00001-of-00004.safetensors',
    'model.safetensors.index.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'generation_config.json',
  ];
  const skip = ['README.md', '.gitattributes', 'vocab.json', 'merges.txt', 'onnx/model.safetensors', 'LICENSE', 'model.gguf'];
  for (const p of keep) assert.ok(isModelFile({ path: p }), p);
  for (const p of skip) assert.ok(!isModelFile({ path: p }), p);
});

test('unsupported or broken config.json is refused with what to do', () => {
  let made = 0;
  const withConfig = (config: Record<string, unknown>) => {
    const dir = path.join(scratch, `c${made++}`);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    copyFileSync(path.join(FIXTURES, 'llama3-gqa-f32', 'model.safetensors'), path.join(dir, 'model.safetensors'));
    return addon.inspectModel(dir);
  };
  const refused = (config: Record<string, unknown>, kind: string, pattern: RegExp) => {
    const inspection = withConfig(config);
    assert.equal(inspection.shape, undefined);
    assert.ok(
      inspection.problems.some((p) => p.kind === kind && pattern.test(p.message)),
      JSON.stringify(inspection.problems),
    );
  };
  refused(
    { model_type: 'gpt_neox', architectures: ['GPTNeoXForCausalLM'] },
    'unsupported',
    /unsupported model architecture 'GPTNeoXForCausalLM'.*supported: llama, mistral, qwen2, qwen3/,
  );
  refused({ architectures: ['LlamaForCausalLM'], hidden_size: 64 }, 'malformed', /required field 'vocab_size' is missing|num_attention_heads/);
  refused(
    { model_type: 'llama', hidden_size: 60, num_attention_heads: 6, num_key_value_heads: 4, num_hidden_layers: 1, intermediate_size: 8, vocab_size: 4 },
    'malformed',
    /not a multiple/,
  );
  assert.equal(withConfig({ model_type: 'gpt_neox', architectures: ['GPTNeoXForCausalLM'] }).architecture, 'GPTNeoXForCausalLM');
});
