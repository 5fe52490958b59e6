// The split one-token attention kernels (src/webgpu/kernels/decodeAttention.ts) run directly on
// the device against a float64 reference, for partition sizes the engine picks at contexts that
// the fixture models never reach: one partial tile (32 positions), one full tile (128), and
// several tiles per partition (160: a full tile and a partial one; 256 and 512: full tiles), each
// over the dense prefix and over per-head position lists, and more partitions than the combine
// kernel takes in one chunk. Random queries, keys and values; the
// output buffer starts as NaN.
import assert from 'node:assert/strict';
import { test, TestContext } from 'node:test';

import { openWebGpuDevice, WebGpuDevice, WebGpuUnavailableError } from '../../../src/webgpu';
import { decodeAttentionCombineWgsl, decodeAttentionPartsWgsl } from '../../../src/webgpu/kernels/decodeAttention';
import { COPY_DST, COPY_SRC, MAP_MODE_READ, MAP_READ, STORAGE, UNIFORM } from '../../../src/webgpu/usage';
import { random } from '../seededRandom';

let opened: Promise<WebGpuDevice | string> | undefined;
async function deviceOrSkip(t: TestContext): Promise<GPUDevice | undefined> {
  opened ??= openWebGpuDevice({}).catch((error: unknown) => {
    if (error instanceof WebGpuUnavailableError) return error.message;
    throw error;
  });
  const result = await opened;
  if (typeof result !== 'string') return result.gpuDevice;
  if (process.env.TIDAL_REQUIRE_WEBGPU === '1') assert.fail(`a WebGPU adapter is required here (TIDAL_REQUIRE_WEBGPU=1): ${result}`);
  t.skip(`no WebGPU adapter: ${result}`);
  return undefined;
}

interface Case {
  heads: number;
  kvHeads: number;
  headDim: number;
  positions: number;
  partition: number;
  listed: boolean;
}

function reference(c: Case, q: Float32Array, keys: Float32Array, values: Float32Array, lists: Int32Array, listCount: number, stride: number): Float64Array {
  const out = new Float64Array(c.heads * c.headDim);
  const group = c.heads / c.kvHeads;
  const scale = 1 / Math.sqrt(c.headDim);
  for (let h = 0; h < c.heads; h++) {
    const kv = Math.floor(h / group);
    const count = c.listed ? listCount : c.positions;
    const at = (i: number) => (c.listed ? lists[h * stride + i] : i);
    const scores = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      let s = 0;
      for (let d = 0; d < c.headDim; d++) s += q[h * c.headDim + d] * keys[(at(i) * c.kvHeads + kv) * c.headDim + d];
      scores[i] = s * scale;
    }
    const largest = Math.max(...scores);
    let total = 0;
    for (let i = 0; i < count; i++) total += Math.exp(scores[i] - largest);
    for (let i = 0; i < count; i++) {
      const weight = Math.exp(scores[i] - largest) / total;
      for (let d = 0; d < c.headDim; d++) out[h * c.headDim + d] += weight * values[(at(i) * c.kvHeads + kv) * c.headDim + d];
    }
  }
  return out;
}

const pipelines = new Map<string, GPUComputePipeline>();

async function run(device: GPUDevice, c: Case, seed: number): Promise<void> {
  const next = random(seed);
  const fill = (n: number, spread: number) => Float32Array.from({ length: n }, () => (next() * 2 - 1) * spread);
  const q = fill(c.heads * c.headDim, 1);
  // Keys spread enough that the softmax is peaked somewhere, so a wrong rescaling shows.
  const keys = fill(c.positions * c.kvHeads * c.headDim, 3);
  const values = fill(c.positions * c.kvHeads * c.headDim, 1);
  const stride = c.positions;
  const listCount = c.listed ? c.positions - 7 : 0;
  const lists = new Int32Array(Math.max(1, c.heads * stride));
  if (c.listed) {
    for (let h = 0; h < c.heads; h++) {
      // Every position but 7 random ones, in a shuffled order.
      const all = Array.from({ length: c.positions }, (_, i) => i);
      for (let i = all.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [all[i], all[j]] = [all[j], all[i]];
      }
      lists.set(all.slice(0, listCount), h * stride);
    }
  }
  const partitions = Math.ceil((c.listed ? listCount : c.positions) / c.partition);
  const buffer = (data: ArrayBufferView | number, usage = STORAGE | COPY_DST) => {
    const bytes = typeof data === 'number' ? data : data.byteLength;
    const made = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage });
    if (typeof data !== 'number') device.queue.writeBuffer(made, 0, data.buffer, data.byteOffset, data.byteLength);
    return made;
  };
  const params = new Uint32Array(20);
  const scale = new Float32Array([1 / Math.sqrt(c.headDim)]);
  // ATTEND_FIELDS, then part_size and partitions.
  params.set([
    1,
    1,
    c.heads,
    c.kvHeads,
    c.headDim,
    c.positions - 1,
    2,
    3,
    4,
    new Uint32Array(scale.buffer)[0],
    0,
    c.positions,
    c.listed ? 5 : 0,
    stride,
    listCount,
    c.partition,
    partitions,
  ]);
  const uniform = buffer(params, UNIFORM | COPY_DST);
  const partials = buffer(c.heads * partitions * (c.headDim + 2) * 4);
  const out = buffer(
    Float32Array.from({ length: c.heads * c.headDim }, () => NaN),
    STORAGE | COPY_DST | COPY_SRC,
  );
  const scores = buffer(16);
  const inputs = [buffer(q), buffer(keys), buffer(values)];
  const listBuffer = buffer(lists);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const [source, bindings, groups] of [
    [
      decodeAttentionPartsWgsl(c.listed ? 1 : c.heads / c.kvHeads, c.headDim),
      [...inputs, partials, scores, listBuffer],
      (c.listed ? c.heads : c.kvHeads) * partitions,
    ],
    [decodeAttentionCombineWgsl(), [partials, out], c.heads],
  ] as const) {
    let pipeline = pipelines.get(source);
    if (!pipeline) {
      pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: source }), entryPoint: 'main' } });
      pipelines.set(source, pipeline);
    }
    const entries = [uniform, ...bindings].map((b, binding) => ({ binding, resource: { buffer: b } }));
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(groups);
  }
  pass.end();
  const staging = device.createBuffer({ size: out.size, usage: MAP_READ | COPY_DST });
  encoder.copyBufferToBuffer(out, 0, staging, 0, out.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MAP_MODE_READ);
  const got = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  const want = reference(c, q, keys, values, lists, listCount, stride);
  let error = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]), `${JSON.stringify(c)}: output ${i} is ${got[i]}`);
    error += (got[i] - want[i]) ** 2;
    norm += want[i] ** 2;
  }
  const relative = Math.sqrt(error / norm);
  assert.ok(relative < 1e-5, `${JSON.stringify(c)}: relative RMS error ${relative.toExponential(2)}`);
  for (const b of [uniform, partials, out, scores, listBuffer, staging, ...inputs]) b.destroy();
}

test('split one-token attention matches float64 for every partition shape (partial, full and several tiles), dense and listed', async (t) => {
  const device = await deviceOrSkip(t);
  if (!device) return;
  let seed = 1;
  for (const [heads, kvHeads, headDim] of [
    [8, 2, 32],
    [4, 1, 128],
    [6, 6, 64],
    [2, 1, 256],
  ])
    for (const partition of [32, 128, 160, 256, 512])
      for (const listed of [false, true]) await run(device, { heads, kvHeads, headDim, positions: 700, partition, listed }, seed++);
  // More partitions than the combine's chunk of 256.
  await run(device, { heads: 4, kvHeads: 2, headDim: 64, positions: 9000, partition: 32, listed: false }, seed++);
});
