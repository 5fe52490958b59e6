// One decode step at a long context on the WebGPU backend against a reference backend (CUDA on
// the GPU machine, the CPU here), in the same run:
//   1. the reference prefills `--context` random tokens, times decode steps (full and tidal
//      attention, each on a fork of the prefilled sequence), and saves the sequence;
//   2. the file is rewritten for the webgpu backend (kvFileRetag.ts: K/V widened to f32);
//   3. the webgpu backend loads it and times the same steps; its first logits are compared with
//      the reference's (different K/V and weight rounding: a sanity check, not a test).
// Floors: the bytes a step must read (weights once, K/V of every layer) over the device's read
// bandwidth measured in the same process by a summing kernel.
// Prints a markdown table, writes --out-json and --out-md.
//
// Also: both backends prefill the first --prefill-tokens tokens in one sequence each (timed,
// last-token logits compared), which checks the WebGPU prefill kernels on the device.
//
//   node decode-step.js --model DIR [--reference cuda|cpu] [--context 32768] [--steps 16]
//        [--modes full,tidal] [--token-budget 2048] [--prefill-tokens 2048] [--work DIR]
//        [--out-json F] [--out-md F]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { loadAddon, NativeEngine } from '../../src/native/addon';
import { openWebGpuDevice, WebGpuDevice } from '../../src/webgpu';
import { STORAGE } from '../../src/webgpu/usage';
import { retagKvFileForWebGpu } from './kvFileRetag';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const model = option('model', '');
const reference = option('reference', 'cuda') as 'cuda' | 'cpu';
const context = Number(option('context', '32768'));
const steps = Number(option('steps', '16'));
const modes = option('modes', 'full,tidal').split(',') as ('full' | 'tidal')[];
const tokenBudget = Number(option('token-budget', '2048'));
const work = option('work', '/tmp/tidal-webgpu-bench');
const addonDir = option('addon-dir', path.resolve('dist'));
const outJson = option('out-json', '');
const outMd = option('out-md', '');
const prefillCheck = Number(option('prefill-tokens', '2048'));

interface Row {
  backend: string;
  mode: string;
  context: number;
  median_ms: number;
  min_ms: number;
  floor_ms: number;
  bytes_per_step: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function timeSteps(
  engine: NativeEngine,
  sequence: number,
  mode: 'full' | 'tidal',
  device?: WebGpuDevice,
): Promise<{ ms: number[]; first: Float32Array; encodeMs: number[]; dispatches: number }> {
  const fork = await engine.forkSequence(sequence);
  const attention = { mode, tokenBudget };
  const first = await engine.decode(fork, 17, attention);
  for (let i = 0; i < 2; i++) await engine.decode(fork, 18 + i, attention); // warm-up
  const ms: number[] = [];
  const encodeMs: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = process.hrtime.bigint();
    await engine.decode(fork, 100 + i, attention);
    ms.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (device) encodeMs.push(device.lastTape().encodeMs);
  }
  await engine.releaseSequence(fork);
  return { ms, first, encodeMs, dispatches: device?.lastTape().dispatches ?? 0 };
}

/** Device time per kernel of one decode step (each dispatch in its own timed pass). */
async function profileStep(engine: NativeEngine, sequence: number, mode: 'full' | 'tidal', device: WebGpuDevice): Promise<string[]> {
  try {
    device.setProfiling(true);
  } catch (error) {
    return [`(no per-kernel times: ${(error as Error).message})`];
  }
  const fork = await engine.forkSequence(sequence);
  await engine.decode(fork, 31, { mode, tokenBudget });
  await engine.decode(fork, 32, { mode, tokenBudget });
  device.setProfiling(false);
  await engine.releaseSequence(fork);
  const profile = [...device.lastProfile().entries()].sort((a, b) => b[1].ns - a[1].ns);
  const total = profile.reduce((sum, [, entry]) => sum + entry.ns, 0);
  return [
    `webgpu ${mode}, one step by kernel (device time, each dispatch timed alone): ${(total / 1e6).toFixed(2)} ms in all`,
    '',
    '| kernel | dispatches | us | share |',
    '|---|---:|---:|---:|',
    ...profile.map(([key, entry]) => `| ${key} | ${entry.dispatches} | ${(entry.ns / 1e3).toFixed(1)} | ${((100 * entry.ns) / total).toFixed(1)}% |`),
  ];
}

/**
 * Read bandwidth of the WebGPU device, bytes per second: a compute kernel that sums a buffer of
 * up to 1 GiB with 16-byte loads (what the decode kernels do). Dawn's buffer-to-buffer copy
 * measured a third of what the products read at on the H100 (829 GB/s), so it is no floor.
 */
async function webGpuReadBandwidth(device: WebGpuDevice): Promise<number> {
  const gpu = device.gpuDevice;
  const limit = Math.min(gpu.limits.maxBufferSize, gpu.limits.maxStorageBufferBindingSize);
  const bytes = Math.floor(Math.min(1 << 30, limit) / 4096) * 4096;
  const lanes = 1024 * 256;
  const data = gpu.createBuffer({ size: bytes, usage: STORAGE });
  const sums = gpu.createBuffer({ size: lanes * 4, usage: STORAGE });
  const code = `
@group(0) @binding(0) var<storage, read> data: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u) {
  var acc = vec4f(0.0);
  for (var i = id.x; i < ${bytes / 16}u; i += ${lanes}u) { acc += data[i]; }
  sums[id.x] = acc.x + acc.y + acc.z + acc.w;
}`;
  const pipeline = gpu.createComputePipeline({ layout: 'auto', compute: { module: gpu.createShaderModule({ code }), entryPoint: 'main' } });
  const group = gpu.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: data } },
      { binding: 1, resource: { buffer: sums } },
    ],
  });
  const run = async (count: number) => {
    const encoder = gpu.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    for (let i = 0; i < count; i++) pass.dispatchWorkgroups(lanes / 256);
    pass.end();
    const start = process.hrtime.bigint();
    gpu.queue.submit([encoder.finish()]);
    await gpu.queue.onSubmittedWorkDone();
    return Number(process.hrtime.bigint() - start) / 1e9;
  };
  await run(2);
  const seconds = await run(20);
  data.destroy();
  sums.destroy();
  return (bytes * 20) / seconds;
}

function relativeRms(expected: Float32Array, actual: Float32Array): number {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    error += (actual[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return Math.sqrt(error / norm);
}

async function main(): Promise<void> {
  if (!model) throw new Error('--model DIR is required');
  const addon = loadAddon(addonDir);
  mkdirSync(work, { recursive: true });
  const rows: Row[] = [];
  const notes: string[] = [];
  const kernelTables: string[][] = [];
  const tokens = Array.from({ length: context }, (_, i) => (i * 7919 + 13) % 8000);

  // 1. The reference backend.
  const ref = await addon.loadModel(model, { backend: reference, maxContext: context + 64 });
  const info = ref.modelInfo;
  const kvElements = (positions: number) => 2 * info.numLayers * info.numKvHeads * info.headDim * positions;
  let start = Date.now();
  const sequence = await ref.createSequence();
  await ref.prefill(sequence, tokens);
  notes.push(`${reference} prefill of ${context} tokens: ${((Date.now() - start) / 1000).toFixed(1)} s`);
  let prefillLogits: Float32Array | undefined;
  let referencePrefillMs = 0;
  if (prefillCheck > 0) {
    const short = await ref.createSequence();
    start = Date.now();
    prefillLogits = await ref.prefill(short, tokens.slice(0, prefillCheck));
    referencePrefillMs = Date.now() - start;
    await ref.releaseSequence(short);
  }
  const firstLogits: Record<string, Float32Array> = {};
  for (const mode of modes) {
    const { ms, first } = await timeSteps(ref, sequence, mode);
    firstLogits[mode] = first;
    const kvBytes = kvElements(mode === 'full' ? context : Math.min(context, tokenBudget)) * 2; // bf16 K/V (cuda)
    rows.push({ backend: reference, mode, context, median_ms: median(ms), min_ms: Math.min(...ms), floor_ms: 0, bytes_per_step: info.weightBytes + kvBytes });
  }
  const saved = path.join(work, 'reference.tkv');
  start = Date.now();
  await ref.saveSequence(sequence, saved);
  notes.push(`saved the ${reference} sequence in ${((Date.now() - start) / 1000).toFixed(1)} s`);
  await ref.unload();

  // 2. The file for the webgpu backend.
  const retagged = path.join(work, 'webgpu.tkv');
  start = Date.now();
  retagKvFileForWebGpu(saved, retagged);
  rmSync(saved, { force: true });
  notes.push(`rewrote it for webgpu (f32 K/V) in ${((Date.now() - start) / 1000).toFixed(1)} s`);

  // 3. The webgpu backend. Kernel timestamps unquantised, for the per-kernel table.
  if (!process.env.TIDAL_WEBGPU_FLAGS) process.env.TIDAL_WEBGPU_FLAGS = 'disable-dawn-features=timestamp_quantization';
  const device = await openWebGpuDevice({ profile: true });
  const bandwidth = await webGpuReadBandwidth(device);
  notes.push(`WebGPU adapter: ${device.adapterName}; read bandwidth ${(bandwidth / 1e9).toFixed(0)} GB/s (a summing kernel, 1 GiB)`);
  start = Date.now();
  const webgpu = await addon.loadModel(model, { backend: 'webgpu', webgpu: device, maxContext: context + 64 });
  notes.push(`webgpu model load (weights uploaded): ${((Date.now() - start) / 1000).toFixed(1)} s`);
  if (prefillLogits) {
    const short = await webgpu.createSequence();
    start = Date.now();
    const logits = await webgpu.prefill(short, tokens.slice(0, prefillCheck));
    const ms = Date.now() - start;
    notes.push(
      `prefill of ${prefillCheck} tokens: webgpu ${ms} ms (${((prefillCheck / ms) * 1000).toFixed(0)} tok/s), ${reference} ${referencePrefillMs} ms ` +
        `(${((prefillCheck / referencePrefillMs) * 1000).toFixed(0)} tok/s); last-token logits relative RMS ${relativeRms(prefillLogits, logits).toExponential(2)}`,
    );
    await webgpu.releaseSequence(short);
  }
  start = Date.now();
  const restored = await webgpu.loadSequence(retagged);
  notes.push(`webgpu sequence load (${context} positions): ${((Date.now() - start) / 1000).toFixed(1)} s`);
  for (const mode of modes) {
    const { ms, first, encodeMs, dispatches } = await timeSteps(webgpu, restored, mode, device);
    notes.push(`${mode}: first-step logits, webgpu against ${reference}: relative RMS ${relativeRms(firstLogits[mode], first).toExponential(2)}`);
    notes.push(`${mode}: webgpu step = ${dispatches} dispatches, encoded in ${median(encodeMs).toFixed(2)} ms (median; the device starts every 64)`);
    const positions = mode === 'full' ? context : Math.min(context, tokenBudget);
    const bytes = info.weightBytes + kvElements(positions) * 4; // f32 K/V
    rows.push({ backend: 'webgpu', mode, context, median_ms: median(ms), min_ms: Math.min(...ms), floor_ms: (bytes / bandwidth) * 1e3, bytes_per_step: bytes });
    kernelTables.push(await profileStep(webgpu, restored, mode, device));
  }
  await webgpu.unload();
  device.destroy();
  rmSync(retagged, { force: true });

  const lines = [
    `| backend | mode | context | ms/step (median) | min | floor (ms) | bytes/step (GB) | vs ${reference} |`,
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((row) => {
      const base = rows.find((other) => other.backend === reference && other.mode === row.mode);
      const ratio = base ? (row.median_ms / base.median_ms).toFixed(2) : '';
      return `| ${row.backend} | ${row.mode} | ${row.context} | ${row.median_ms.toFixed(2)} | ${row.min_ms.toFixed(2)} | ${row.floor_ms ? row.floor_ms.toFixed(2) : ''} | ${(row.bytes_per_step / 1e9).toFixed(2)} | ${ratio} |`;
    }),
    '',
    ...notes.map((note) => `- ${note}`),
    ...kernelTables.flatMap((table) => ['', ...table]),
  ];
  const table = lines.join('\n');
  console.log(table);
  if (outMd) writeFileSync(outMd, `${table}\n`);
  if (outJson) writeFileSync(outJson, JSON.stringify({ model: info, rows, notes }, null, 2));
  const summary = modes.map((mode) => {
    const a = rows.find((row) => row.backend === 'webgpu' && row.mode === mode);
    const b = rows.find((row) => row.backend === reference && row.mode === mode);
    return a && b
      ? `${mode} webgpu/${reference} ${(a.median_ms / b.median_ms).toFixed(2)}x (${a.median_ms.toFixed(2)} / ${b.median_ms.toFixed(2)} ms, floor ${a.floor_ms.toFixed(2)} ms)`
      : '';
  });
  console.log(`summary: context ${context}: ${summary.join('; ')}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
