// GGUF block-quantised matrices kept in their blocks on the WebGPU device (Q8_0, Q4_K, Q6_K,
// read by src/webgpu/kernels/quantized.ts) against the CPU backend, which dequantises the same
// blocks: a small llama-shaped .gguf with random blocks, mixed types inside the q|k|v and
// gate|up products (as Q4_K_M files have), prefill and decode logits within f32 rounding.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { loadAddon } from '../../../src/native/addon';
import { openWebGpuDevice, WebGpuUnavailableError } from '../../../src/webgpu';
import { GgufEntry, ggufImage, GgufTensor } from '../models/ggufImage';
import { random } from '../seededRandom';

const addon = loadAddon(path.resolve('dist'));
const scratch = mkdtempSync(path.join(tmpdir(), 'tidal-webgpu-gguf-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const HIDDEN = 256,
  LAYERS = 2,
  HEADS = 4,
  KV_HEADS = 2,
  HEAD_DIM = 64,
  INTERMEDIATE = 512,
  VOCAB = 512;
const Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14;
const blockOf: Record<number, { values: number; bytes: number }> = {
  [Q8_0]: { values: 32, bytes: 34 },
  [Q4_K]: { values: 256, bytes: 144 },
  [Q6_K]: { values: 256, bytes: 210 },
};

// f16 bits of a small positive number (normal range: at least 2^-14).
function f16(value: number): number {
  const exponent = Math.floor(Math.log2(value));
  const mantissa = Math.round((value / 2 ** exponent - 1) * 1024);
  return ((exponent + 15) << 10) | mantissa;
}

// Random blocks whose values stay around 0.02-0.05 (scales chosen per type).
function quantized(type: number, rows: number, cols: number, next: () => number): Buffer {
  const { values, bytes } = blockOf[type];
  const out = Buffer.alloc((rows * cols * bytes) / values);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(next() * 256);
  for (let block = 0; block < out.length / bytes; block++) {
    const at = block * bytes;
    if (type === Q8_0) out.writeUInt16LE(f16(3e-4), at);
    if (type === Q4_K) {
      out.writeUInt16LE(f16(1e-4), at);
      out.writeUInt16LE(f16(1e-4), at + 2);
    }
    if (type === Q6_K) out.writeUInt16LE(f16(1e-4), at + 208);
  }
  return out;
}

function f32Tensor(name: string, values: number[]): GgufTensor {
  return { name, type: 0, ne: [values.length], bytes: Buffer.from(new Float32Array(values).buffer) };
}

function model(): string {
  const next = random(4242);
  const matrix = (name: string, type: number, rows: number, cols: number): GgufTensor => ({
    name,
    type,
    ne: [cols, rows],
    bytes: quantized(type, rows, cols, next),
  });
  const ones = (n: number) => Array.from({ length: n }, () => 0.8 + 0.4 * next());
  const tensors: GgufTensor[] = [
    matrix('token_embd.weight', Q8_0, VOCAB, HIDDEN),
    f32Tensor('output_norm.weight', ones(HIDDEN)),
    matrix('output.weight', Q6_K, VOCAB, HIDDEN),
  ];
  for (let l = 0; l < LAYERS; l++) {
    tensors.push(
      f32Tensor(`blk.${l}.attn_norm.weight`, ones(HIDDEN)),
      matrix(`blk.${l}.attn_q.weight`, Q4_K, HEADS * HEAD_DIM, HIDDEN),
      matrix(`blk.${l}.attn_k.weight`, Q4_K, KV_HEADS * HEAD_DIM, HIDDEN),
      matrix(`blk.${l}.attn_v.weight`, Q6_K, KV_HEADS * HEAD_DIM, HIDDEN),
      matrix(`blk.${l}.attn_output.weight`, Q8_0, HIDDEN, HEADS * HEAD_DIM),
      f32Tensor(`blk.${l}.ffn_norm.weight`, ones(HIDDEN)),
      matrix(`blk.${l}.ffn_gate.weight`, Q4_K, INTERMEDIATE, HIDDEN),
      matrix(`blk.${l}.ffn_up.weight`, Q8_0, INTERMEDIATE, HIDDEN),
      matrix(`blk.${l}.ffn_down.weight`, Q6_K, HIDDEN, INTERMEDIATE),
    );
  }
  const metadata: Record<string, GgufEntry> = {
    'general.architecture': { type: 'string', value: 'llama' },
    'llama.block_count': { type: 'u32', value: LAYERS },
    'llama.embedding_length': { type: 'u32', value: HIDDEN },
    'llama.feed_forward_length': { type: 'u32', value: INTERMEDIATE },
    'llama.attention.head_count': { type: 'u32', value: HEADS },
    'llama.attention.head_count_kv': { type: 'u32', value: KV_HEADS },
    'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
    'llama.rope.freq_base': { type: 'f32', value: 10000 },
    'llama.context_length': { type: 'u32', value: 4096 },
    'llama.vocab_size': { type: 'u32', value: VOCAB },
  };
  const file = path.join(scratch, 'quantized.gguf');
  writeFileSync(file, ggufImage(metadata, tensors));
  return file;
}

test("Q8_0, Q4_K and Q6_K matrices read in their blocks on the WebGPU device give the cpu backend's logits", async (t) => {
  let device;
  try {
    device = await openWebGpuDevice({ poisonBuffers: true });
  } catch (error) {
    if (!(error instanceof WebGpuUnavailableError) || process.env.TIDAL_REQUIRE_WEBGPU === '1') throw error;
    console.log(`# SKIP webgpu: ${error.message}`);
    t.skip(`no WebGPU adapter: ${error.message}`);
    return;
  }
  const file = model();
  const cpu = await addon.loadModel(file, { threads: 2 });
  const webgpu = await addon.loadModel(file, { backend: 'webgpu', webgpu: device });
  try {
    assert.equal(cpu.modelInfo.dtype, 'mixed');
    const tolerance = 16 * 2 ** -24 * Math.sqrt(HIDDEN * LAYERS);
    const compare = (expected: Float32Array, actual: Float32Array, what: string) => {
      let error = 0,
        norm = 0;
      for (let i = 0; i < expected.length; i++) {
        assert.ok(Number.isFinite(actual[i]), `${what}: logit ${i} is ${actual[i]}`);
        error += (actual[i] - expected[i]) ** 2;
        norm += expected[i] ** 2;
      }
      const relative = Math.sqrt(error / norm);
      assert.ok(relative <= tolerance, `${what}: relative RMS error ${relative.toExponential(2)} > ${tolerance.toExponential(2)}`);
    };
    const next = random(9);
    const prompt = Array.from({ length: 21 }, () => Math.floor(next() * VOCAB));
    const a = await cpu.createSequence();
    const b = await webgpu.createSequence();
    // 16-token passes (the tiled product), a 5-token pass (the small one), then decode steps.
    compare(await cpu.prefill(a, prompt, { allLogits: true, chunk: 16 }), await webgpu.prefill(b, prompt, { allLogits: true, chunk: 16 }), 'prefill');
    for (const token of [5, 77, 300]) compare(await cpu.decode(a, token), await webgpu.decode(b, token), `decode ${token}`);
  } finally {
    await cpu.unload();
    await webgpu.unload();
    device.destroy();
  }
});
