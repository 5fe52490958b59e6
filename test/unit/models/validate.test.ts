// Validation of model folders and GGUF files before loading, through the engine's readers
// (inspectModel): complete fixtures pass with a summary; each kind of broken folder or file is
// refused with a message saying what to do; without the engine a model is let through with a
// warning.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { validateModel as validateWith, ValidationOptions, ValidationResult } from '../../../src/core/models/validate';
import type { NativeAddon } from '../../../src/native/addon';
import { random } from '../seededRandom';
import { testReader } from './testReader';
import { ggufImage, gpt2TokenizerMetadata, GgufEntry, GgufTensor } from './ggufImage';

// The native addon, or the WebAssembly build with TIDAL_TEST_ADDON=wasm (testReader.ts).
let addon: NativeAddon;
before(async () => {
  addon = await testReader();
});
const validateModel = (modelPath: string, options: ValidationOptions) => validateWith(modelPath, options, addon);

const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-validate-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const PLENTY = { contextTokens: 0, freeMemoryBytes: 64e9 };
const TOKENIZER = 'test/fixtures/tokenizers/chatml-byte-bpe';
let folders = 0;

// A model folder from a fixture model plus the fixture tokenizer, optionally edited.
function folderOf(fixture: string, edit?: (dir: string) => void, tokenizer = true): string {
  const dir = path.join(scratch, `m${folders++}`);
  mkdirSync(dir);
  const source = path.join('test/fixtures/models', fixture);
  for (const name of [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'model.safetensors.index.json',
    ...[1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`),
  ]) {
    try {
      copyFileSync(path.join(source, name), path.join(dir, name));
    } catch {
      // not every fixture has every file
    }
  }
  if (tokenizer) for (const name of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(TOKENIZER, name), path.join(dir, name));
  edit?.(dir);
  return dir;
}

const errors = (r: ValidationResult) => r.issues.filter((i) => i.severity === 'error').map((i) => i.message);
function assertRefused(result: ValidationResult, pattern: RegExp): void {
  assert.equal(result.ok, false);
  assert.ok(
    errors(result).some((m) => pattern.test(m)),
    `errors: ${errors(result).join(' | ')}`,
  );
}

test('complete folders of every supported architecture pass, with their dtype and sizes', () => {
  for (const [fixture, arch, dtype] of [
    ['llama2-mha-bf16', 'llama', 'BF16'],
    ['llama3-gqa-f32', 'llama', 'F32'],
    ['mistral-gqa-f16', 'mistral', 'F16'],
    ['qwen2-tied-sharded-f32', 'qwen2', 'F32'],
    ['qwen3-qknorm-f32', 'qwen3', 'F32'],
  ]) {
    const result = validateModel(folderOf(fixture), { contextTokens: 256, freeMemoryBytes: 64e9 });
    assert.deepEqual(result.issues, [], fixture);
    assert.equal(result.ok, true);
    assert.equal(result.summary!.architecture, arch);
    assert.equal(result.summary!.dtype, dtype);
    assert.equal(result.summary!.memory.contextTokens, 256);
    // Safetensors weights are used as stored.
    assert.ok(result.summary!.memory.weightBytes > 0 && result.summary!.memory.weightBytes === result.summary!.fileBytes);
  }
  const shipped = validateModel('models/tidal-code-mini', PLENTY);
  assert.equal(shipped.ok, true, JSON.stringify(shipped.issues));
  assert.equal(shipped.summary!.memory.contextTokens, 131072);
});

test('broken folders are refused with what to do', () => {
  assertRefused(validateModel(path.join(scratch, 'nowhere'), PLENTY), /does not exist.*Pick a model folder/);
  assertRefused(
    validateModel(
      folderOf('mistral-gqa-f16', (d) => rmSync(path.join(d, 'config.json'))),
      PLENTY,
    ),
    /config\.json.*Pick a model folder/,
  );
  assertRefused(validateModel(folderOf('mistral-gqa-f16', undefined, false), PLENTY), /no tokenizer\.json.*Download the tokenizer files/);
  assertRefused(
    validateModel(
      folderOf('mistral-gqa-f16', (d) => rmSync(path.join(d, 'model.safetensors'))),
      PLENTY,
    ),
    /no model weights in .*model\.safetensors/,
  );
  assertRefused(
    validateModel(
      folderOf('qwen2-tied-sharded-f32', (d) => rmSync(path.join(d, 'model-00003-of-00004.safetensors'))),
      PLENTY,
    ),
    /model-00003-of-00004\.safetensors.*download the model again/,
  );
  assertRefused(
    validateModel(
      folderOf('mistral-gqa-f16', (d) => truncateSync(path.join(d, 'model.safetensors'), 300_000)),
      PLENTY,
    ),
    /truncated.*download the model again/,
  );
  assertRefused(
    validateModel(
      folderOf('mistral-gqa-f16', (d) => writeFileSync(path.join(d, 'model.safetensors'), 'garbage')),
      PLENTY,
    ),
    /too short for a safetensors file.*download the model again/,
  );
  const editConfig = (change: (c: Record<string, unknown>) => void) => (d: string) => {
    const file = path.join(d, 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8'));
    change(config);
    writeFileSync(file, JSON.stringify(config));
  };
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editConfig((c) => {
          c.model_type = 'gemma2';
          c.architectures = ['Gemma2ForCausalLM'];
        }),
      ),
      PLENTY,
    ),
    /unsupported model architecture 'Gemma2ForCausalLM'.*Pick another model/,
  );
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editConfig((c) => {
          c.quantization_config = { quant_method: 'awq' };
        }),
      ),
      PLENTY,
    ),
    /quantized checkpoints are not supported \(quantization_config method 'awq'\)/,
  );
  const f8 = folderOf('mistral-gqa-f16', (d) => {
    const file = path.join(d, 'model.safetensors');
    const bytes = readFileSync(file);
    const length = Number(bytes.readBigUInt64LE(0));
    const header = Buffer.from(
      bytes
        .subarray(8, 8 + length)
        .toString('utf8')
        .replace('"F16"', '"F8_E4M3"'),
    );
    const newLength = Buffer.alloc(8);
    newLength.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(file, Buffer.concat([newLength, header, bytes.subarray(8 + length)]));
  });
  assertRefused(validateModel(f8, PLENTY), /dtype 'F8_E4M3', which is not supported; supported dtypes: F32, F16, BF16.*Pick another model/);
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editConfig((c) => {
          c.num_hidden_layers = 7;
        }),
      ),
      PLENTY,
    ),
    /missing tensor 'model\.layers\.6\..*do not belong to one model/,
  );
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editConfig((c) => {
          c.intermediate_size = 180;
        }),
      ),
      PLENTY,
    ),
    /gate_proj.*\[176, 64\], expected \[180, 64\]/,
  );
  const noChat = validateModel(
    folderOf('mistral-gqa-f16', (d) => rmSync(path.join(d, 'tokenizer_config.json'))),
    PLENTY,
  );
  assert.equal(noChat.ok, true);
  assert.match(noChat.issues[0].message, /tokenizer_config\.json is missing/);
});

test('without the native engine a model is let through with a warning; the engine checks it on load', () => {
  const result = validateWith(path.join(scratch, 'nowhere'), PLENTY, undefined, 'no addon for linux-riscv64');
  assert.equal(result.ok, true);
  assert.equal(result.summary, undefined);
  assert.deepEqual(
    result.issues.map((i) => i.severity),
    ['warning'],
  );
  assert.match(result.issues[0].message, /could not check this model here \(no addon for linux-riscv64\)/);
});

test("cause 11: weights beyond config.json's layers, and a tokenizer that does not fit the model, are refused", () => {
  const editJson = (name: string, change: (c: Record<string, any>) => void) => (d: string) => {
    const file = path.join(d, name);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    change(json);
    writeFileSync(file, JSON.stringify(json));
  };
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editJson('config.json', (c) => {
          c.num_hidden_layers = 5;
        }),
      ),
      PLENTY,
    ),
    /model\.layers\.5\.\* \(9 tensors\) are in the weights but not used by config\.json's 5 layers/,
  );
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editJson('tokenizer.json', (t) => {
          t.model.vocab = {};
          t.model.merges = [];
        }),
      ),
      PLENTY,
    ),
    /tokenizer\.json has an empty vocabulary/,
  );
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editJson('tokenizer.json', (t) => {
          t.model.vocab.far = 4096;
        }),
      ),
      PLENTY,
    ),
    /ids outside the model \('far' = 4096\): the model's embedding holds only 512 token ids/,
  );
  assertRefused(
    validateModel(
      folderOf(
        'mistral-gqa-f16',
        editJson('tokenizer_config.json', (c) => {
          c.eos_token = '<|absent|>';
        }),
      ),
      PLENTY,
    ),
    /The eos_token '<\|absent\|>' of the tokenizer .*tokenizer\.json is not in its vocabulary/,
  );
  const longTokens = ggufFile(
    {
      ...qwen2Meta,
      ...gpt2TokenizerMetadata(
        { ...JSON.parse(readFileSync(path.join(TOKENIZER, 'tokenizer.json'), 'utf8')), added_tokens: [{ id: 600, content: '<|far|>', special: true }] },
        { eos_token: '<|far|>' },
        'qwen2',
      ),
    },
    { embd: 1, q: 0 },
  );
  assertRefused(
    validateModel(longTokens, PLENTY),
    /the tokenizer has 601 tokens but the embedding token_embd\.weight only 512 rows, so the tokenizer and the model do not belong together/,
  );
});

test('a model that does not fit the free memory or the free GPU memory gets a warning with the numbers', () => {
  const dir = folderOf('llama3-gqa-f32');
  const cpu = validateModel(dir, { contextTokens: 0, freeMemoryBytes: 1e6 });
  assert.equal(cpu.ok, true);
  assert.equal(cpu.issues.length, 1);
  assert.match(cpu.issues[0].message, /needs about .* f32 KV cache at \d+ tokens.* 1\.0 MB of memory is free.*tidal\.context\.maxTokens/);
  const gpu = validateModel(dir, { contextTokens: 0, freeMemoryBytes: 64e9, gpuFreeBytes: 1e6 });
  assert.match(gpu.issues[0].message, /bf16 KV cache at \d+ tokens.*the GPU has 1\.0 MB free/);
  // On the GPU the cache is bf16: half the CPU's f32 bytes.
  assert.equal(gpu.summary!.memory.kvBytes * 2, cpu.summary!.memory.kvBytes);
  assert.deepEqual(validateModel(dir, { contextTokens: 0, freeMemoryBytes: 1e6, gpuFreeBytes: 64e9 }).issues, []);
});

// ---- GGUF files ----

const tokenizerMeta = gpt2TokenizerMetadata(JSON.parse(readFileSync(path.join(TOKENIZER, 'tokenizer.json'), 'utf8')), { eos_token: '<|im_end|>' }, 'qwen2');
const qwen2Meta: Record<string, GgufEntry> = {
  'general.architecture': { type: 'string', value: 'qwen2' },
  'qwen2.block_count': { type: 'u32', value: 1 },
  'qwen2.embedding_length': { type: 'u32', value: 256 },
  'qwen2.feed_forward_length': { type: 'u32', value: 512 },
  'qwen2.attention.head_count': { type: 'u32', value: 4 },
  'qwen2.attention.head_count_kv': { type: 'u32', value: 2 },
  'qwen2.context_length': { type: 'u32', value: 2048 },
  ...tokenizerMeta,
};
// Every tensor of the one-layer qwen2 model above (tied embeddings), with random bytes; the
// embedding and attn_q in the given ggml types. Quantised types are stored in blocks.
const BLOCK: Record<number, [number, number]> = { 0: [1, 4], 1: [1, 2], 10: [256, 84], 12: [256, 144], 14: [256, 210], 8: [32, 34] };
function qwen2Tensors(types: { embd: number; q: number }, seed: number): GgufTensor[] {
  const next = random(seed);
  const tensor = (name: string, ne: number[], type = 0): GgufTensor => {
    const [elements, bytes] = BLOCK[type];
    const data = Buffer.alloc((ne.reduce((a, b) => a * b, 1) / elements) * bytes);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(next() * 256);
    return { name, type, ne, bytes: data };
  };
  return [
    tensor('token_embd.weight', [256, 512], types.embd),
    tensor('blk.0.attn_norm.weight', [256]),
    tensor('blk.0.attn_q.weight', [256, 256], types.q),
    tensor('blk.0.attn_q.bias', [256]),
    tensor('blk.0.attn_k.weight', [256, 128]),
    tensor('blk.0.attn_k.bias', [128]),
    tensor('blk.0.attn_v.weight', [256, 128]),
    tensor('blk.0.attn_v.bias', [128]),
    tensor('blk.0.attn_output.weight', [256, 256]),
    tensor('blk.0.ffn_norm.weight', [256]),
    tensor('blk.0.ffn_gate.weight', [256, 512]),
    tensor('blk.0.ffn_up.weight', [256, 512]),
    tensor('blk.0.ffn_down.weight', [512, 256]),
    tensor('output_norm.weight', [256]),
  ];
}
function ggufFile(metadata: Record<string, GgufEntry>, types: { embd: number; q: number }, tensors = qwen2Tensors(types, folders)): string {
  const file = path.join(scratch, `g${folders++}.gguf`);
  writeFileSync(file, ggufImage(metadata, tensors));
  return file;
}

test('a GGUF file passes with its shape; quantised matrices keep their blocks in memory and on a GPU, where the rest takes bf16', () => {
  for (const [embd, q, dtype] of [
    [1, 12, 'F32+F16+Q4_K'],
    [0, 14, 'F32+Q6_K'],
    [1, 8, 'F32+F16+Q8_0'],
  ] as const) {
    const tensors = qwen2Tensors({ embd, q }, 100 + q);
    const result = validateModel(ggufFile(qwen2Meta, { embd, q }, tensors), { contextTokens: 1024, freeMemoryBytes: 64e9 });
    assert.deepEqual(result.issues, []);
    const s = result.summary!;
    assert.equal(s.kind, 'gguf');
    assert.equal(s.architecture, 'qwen2');
    assert.equal(s.dtype, dtype);
    const elements = (t: GgufTensor) => t.ne.reduce((a, b) => a * b, 1);
    assert.equal(
      s.parameters,
      tensors.reduce((sum, t) => sum + elements(t), 0),
    );
    assert.equal(
      s.fileBytes,
      tensors.reduce((sum, t) => sum + t.bytes.length, 0),
    );
    // On the CPU a quantised matrix stays as stored; a quantised vector would become f32.
    assert.equal(
      s.memory.weightBytes,
      tensors.reduce((sum, t) => sum + (t.type <= 1 || t.ne.length === 2 ? t.bytes.length : elements(t) * 4), 0),
    );
    const onGpu = validateModel(ggufFile(qwen2Meta, { embd, q }, tensors), { contextTokens: 1024, freeMemoryBytes: 64e9, gpuFreeBytes: 64e9 });
    // On CUDA: Q8_0 / Q4_K / Q6_K matrices (type ids 8, 12, 14) in their blocks, the embedding
    // too; everything else bf16. Each case here has one such matrix.
    const kept = (t: GgufTensor) => t.ne.length === 2 && [8, 12, 14].includes(t.type);
    assert.equal(tensors.filter(kept).length, 1);
    assert.equal(
      onGpu.summary!.memory.weightBytes,
      tensors.reduce((sum, t) => sum + (kept(t) ? t.bytes.length : elements(t) * 2), 0),
    );
    assert.equal(onGpu.summary!.memory.kvFormat, 'bf16');
    // 1 layer x 2 x 2 KV heads x head_dim 64 x 4 bytes x 17/16 per token.
    assert.equal(s.memory.kvBytes, (1024 * 1 * 2 * 2 * 64 * 4 * 17) / 16);
  }
});

test('GGUF files the engine cannot run are refused with what to do', () => {
  assertRefused(validateModel(ggufFile(qwen2Meta, { embd: 1, q: 10 }), PLENTY), /stores tensors as Q2_K, which the engine does not dequantise.*Q4_K_M/);
  assertRefused(
    validateModel(ggufFile({ ...qwen2Meta, 'general.architecture': { type: 'string', value: 'phi3' } }, { embd: 1, q: 0 }), PLENTY),
    /unsupported architecture 'phi3'.*Pick another model/,
  );
  const { ['qwen2.block_count']: _, ...noLayers } = qwen2Meta;
  assertRefused(validateModel(ggufFile(noLayers, { embd: 1, q: 0 }), PLENTY), /qwen2\.block_count/);
  assertRefused(
    validateModel(ggufFile({ ...qwen2Meta, 'tokenizer.ggml.pre': { type: 'string', value: 'exotic' } }, { embd: 1, q: 0 }), PLENTY),
    /'exotic' pre-tokenizer/,
  );
  const cut = ggufFile(qwen2Meta, { embd: 1, q: 0 });
  truncateSync(cut, 60_000);
  assertRefused(validateModel(cut, PLENTY), /truncated.*download the model again/);
  const noOutputNorm = qwen2Tensors({ embd: 1, q: 0 }, 7).filter((t) => t.name !== 'output_norm.weight');
  assertRefused(validateModel(ggufFile(qwen2Meta, { embd: 1, q: 0 }, noOutputNorm), PLENTY), /missing tensor 'output_norm\.weight' \(expected shape \[256\]\)/);
});
