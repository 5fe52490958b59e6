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
import { CATALOGUE, catalogueFacts, isModelFile, recommendedModel } from '../../../src/core/models/catalogue';
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
  assert.deepEqual(CATALOGUE.map((m) => m.id).sort(), Object.keys(published).sort());
  for (const model of CATALOGUE) {
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
});

test('the recommended catalogue model is the largest that fits the room, with the KV format of where it runs', () => {
  const sizes = new Map(CATALOGUE.map((m) => [m.id, catalogueFacts(m, 32768, 'bf16').memory.totalBytes]));
  // An 80 GB GPU takes the 14B model at 32K tokens (~38 GB); 24 GB takes the 7B (~18 GB).
  assert.equal(recommendedModel(32768, 80e9, 'bf16')?.id, 'qwen2.5-coder-14b-instruct');
  assert.equal(recommendedModel(32768, 24e9, 'bf16')?.id, 'qwen2.5-coder-7b-instruct');
  // Exactly at the edge: the 7B needs its estimate plus a tenth of the room kept free.
  const sevenB = sizes.get('qwen2.5-coder-7b-instruct')!;
  assert.equal(recommendedModel(32768, sevenB / 0.9, 'bf16')?.id, 'qwen2.5-coder-7b-instruct');
  assert.notEqual(recommendedModel(32768, sevenB / 0.9 - 1, 'bf16')?.id, 'qwen2.5-coder-7b-instruct');
  // The f32 cache of the CPU needs more than the bf16 one: a room can fit a model on a GPU that it
  // would not fit on the CPU.
  const room = (sizes.get('qwen2.5-coder-7b-instruct')! + 1e6) / 0.9;
  assert.equal(recommendedModel(32768, room, 'bf16')?.id, 'qwen2.5-coder-7b-instruct');
  assert.notEqual(recommendedModel(32768, room, 'f32')?.id, 'qwen2.5-coder-7b-instruct');
  // Too little for any: none.
  assert.equal(recommendedModel(32768, 100e6, 'f32'), undefined);
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
