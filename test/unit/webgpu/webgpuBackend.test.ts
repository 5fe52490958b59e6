// The WebGPU backend against the CPU backend, the reference: the same fixture models (and the
// embedded model) with random tokens, prefill in chunks against the growing cache, then decode
// steps with full, tidal and quest attention, forks, trims and sequence files. Device buffers
// start as NaN, so a kernel that reads what nothing wrote fails the comparison.
//
// Tolerance: both backends compute in f32 with different summation orders, so they differ by
// rounding. A dot product of n terms rounds to about sqrt(n) * 2^-24 relative; over the layers'
// products (n ~ hidden) that grows with sqrt(hidden * layers). We allow 16 times that, as a
// relative RMS error over the logits, and 16 times the RMS bound for the largest single logit.
//
// Runs on any WebGPU adapter (in CI: Mesa's lavapipe, Vulkan on the CPU). Without one the tests
// skip and say why; with TIDAL_REQUIRE_WEBGPU=1 (set by .ci/run) they fail instead.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, test, TestContext } from 'node:test';

import { addonBuild, loadEngineAddon, NativeAddon, NativeEngine } from '../../../src/native/addon';
import { openWebGpuDevice, WebGpuDevice, WebGpuUnavailableError } from '../../../src/webgpu';
import { random } from '../seededRandom';

// TIDAL_TEST_ADDON=wasm: the same tests through the WebAssembly build of the engine, the engine of
// the platforms without a native build (scripts/test-cross.mjs runs them so).
const build = process.env.TIDAL_TEST_ADDON === 'wasm' ? 'wasm' : 'native';
let addon: NativeAddon;
before(async () => {
  addon = await loadEngineAddon(path.resolve('dist'), build);
  assert.equal(addonBuild(addon), build);
});
const fixture = (name: string) => path.resolve('test/fixtures/models', name);
const models = [
  ...['llama2-mha-bf16', 'llama3-gqa-f32', 'mistral-gqa-f16', 'qwen2-tied-sharded-f32', 'qwen3-qknorm-f32'].map(fixture),
  path.resolve('models/tidal-code-mini'),
];

let opened: Promise<WebGpuDevice | string> | undefined;
function device(): Promise<WebGpuDevice | string> {
  opened ??= openWebGpuDevice({ poisonBuffers: true }).catch((error: unknown) => {
    if (error instanceof WebGpuUnavailableError) return error.message;
    throw error;
  });
  return opened;
}

async function deviceOrSkip(t: TestContext): Promise<WebGpuDevice | undefined> {
  const result = await device();
  if (typeof result !== 'string') return result;
  if (process.env.TIDAL_REQUIRE_WEBGPU === '1') assert.fail(`a WebGPU adapter is required here (TIDAL_REQUIRE_WEBGPU=1): ${result}`);
  console.log(`# SKIP webgpu: ${result}`);
  t.skip(`no WebGPU adapter: ${result}`);
  return undefined;
}

function tolerance(engine: NativeEngine): number {
  const { hiddenSize, numLayers } = engine.modelInfo;
  return 16 * 2 ** -24 * Math.sqrt(hiddenSize * numLayers);
}

function assertClose(expected: Float32Array, actual: Float32Array, relativeRms: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let error = 0;
  let norm = 0;
  let largest = 0;
  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(actual[i] - expected[i]);
    if (!(difference <= Number.MAX_VALUE)) assert.fail(`${what}: logit ${i} is ${actual[i]} (expected ${expected[i]})`);
    error += difference ** 2;
    norm += expected[i] ** 2;
    largest = Math.max(largest, difference);
  }
  const rms = Math.sqrt(norm / expected.length);
  const relative = Math.sqrt(error / norm);
  assert.ok(relative <= relativeRms, `${what}: relative RMS error ${relative.toExponential(2)} > ${relativeRms.toExponential(2)}`);
  assert.ok(largest <= 16 * relativeRms * rms, `${what}: largest error ${largest.toExponential(2)} > ${(16 * relativeRms * rms).toExponential(2)}`);
}

async function pair(gpu: WebGpuDevice, model: string): Promise<[NativeEngine, NativeEngine]> {
  const cpu = await addon.loadModel(model, { threads: 2 });
  const webgpu = await addon.loadModel(model, { backend: 'webgpu', webgpu: gpu });
  assert.equal(webgpu.modelInfo.backend, 'webgpu');
  return [cpu, webgpu];
}

for (const [index, model] of models.entries()) {
  test(`${path.basename(model)}: prefill in chunks and full / tidal / quest decode steps match the cpu backend`, async (t) => {
    const gpu = await deviceOrSkip(t);
    if (!gpu) return;
    const [cpu, webgpu] = await pair(gpu, model);
    try {
      const next = random(1000 + index);
      const vocab = cpu.modelInfo.vocabSize;
      const prompt = Array.from({ length: 45 }, () => Math.floor(next() * vocab));
      const tol = tolerance(cpu);
      const sequences: number[] = [];
      for (const engine of [cpu, webgpu]) sequences.push(await engine.createSequence());
      const expected = await cpu.prefill(sequences[0], prompt, { allLogits: true, chunk: 16 });
      const actual = await webgpu.prefill(sequences[1], prompt, { allLogits: true, chunk: 16 });
      assertClose(expected, actual, tol, 'prefill');
      const steps = Array.from({ length: 4 }, () => Math.floor(next() * vocab));
      for (const attention of [
        { mode: 'full' as const },
        { mode: 'tidal' as const, tokenBudget: 16 },
        { mode: 'tidal' as const, tokenBudget: 20, selectionPolicy: 'perKvHeadSum' as const },
        { mode: 'quest' as const, tokenBudget: 32 },
      ]) {
        const forks = [await cpu.forkSequence(sequences[0]), await webgpu.forkSequence(sequences[1])];
        for (const [step, token] of steps.entries()) {
          const want = await cpu.decode(forks[0], token, attention);
          const got = await webgpu.decode(forks[1], token, attention);
          assertClose(want, got, tol, `${JSON.stringify(attention)} step ${step}`);
        }
      }
    } finally {
      await cpu.unload();
      await webgpu.unload();
    }
  });
}

test('webgpu sequences: a long pass, trim, then decode; save to a file and load it back', async (t) => {
  const gpu = await deviceOrSkip(t);
  if (!gpu) return;
  const [cpu, webgpu] = await pair(gpu, fixture('qwen3-qknorm-f32'));
  const dir = mkdtempSync(path.join(tmpdir(), 'tidal-webgpu-'));
  try {
    const next = random(77);
    // 150 tokens in one pass: the prefill attention's workgroups of 64 tokens, three of them.
    const prompt = Array.from({ length: 150 }, () => Math.floor(next() * 500));
    const tol = tolerance(cpu);
    const a = await cpu.createSequence();
    const b = await webgpu.createSequence();
    assertClose(await cpu.prefill(a, prompt, { allLogits: true }), await webgpu.prefill(b, prompt, { allLogits: true }), tol, 'one 150-token pass');
    await cpu.trimSequence(a, 121);
    await webgpu.trimSequence(b, 121);
    const attention = { mode: 'quest' as const, tokenBudget: 16 };
    assertClose(await cpu.decode(a, 7, attention), await webgpu.decode(b, 7, attention), tol, 'after trim');
    const file = path.join(dir, 'sequence.tkv');
    await webgpu.saveSequence(b, file);
    const restored = await webgpu.loadSequence(file);
    assert.deepEqual(Array.from(await webgpu.sequenceTokens(restored)), Array.from(await webgpu.sequenceTokens(b)));
    assertClose(await cpu.decode(a, 9), await webgpu.decode(restored, 9), tol, 'restored sequence');
  } finally {
    await cpu.unload();
    await webgpu.unload();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('webgpu context shift: kept ranges moved down, keys re-rotated, Quest bounds rebuilt', async (t) => {
  const gpu = await deviceOrSkip(t);
  if (!gpu) return;
  const [cpu, webgpu] = await pair(gpu, fixture('llama3-gqa-f32'));
  try {
    const next = random(31);
    const prompt = Array.from({ length: 90 }, () => Math.floor(next() * 500));
    const tol = tolerance(cpu);
    const a = await cpu.createSequence();
    const b = await webgpu.createSequence();
    await cpu.prefill(a, prompt);
    await webgpu.prefill(b, prompt);
    // A leading range in place, then two that move (one across a page boundary).
    const ranges: [number, number][] = [
      [0, 10],
      [23, 17],
      [50, 33],
    ];
    await cpu.compactSequence(a, ranges);
    await webgpu.compactSequence(b, ranges);
    assert.equal(await webgpu.sequenceLength(b), 60);
    for (const attention of [{ mode: 'full' as const }, { mode: 'quest' as const, tokenBudget: 32 }]) {
      const forks = [await cpu.forkSequence(a), await webgpu.forkSequence(b)];
      for (const token of [4, 8])
        assertClose(await cpu.decode(forks[0], token, attention), await webgpu.decode(forks[1], token, attention), tol, `${attention.mode} after the shift`);
    }
  } finally {
    await cpu.unload();
    await webgpu.unload();
  }
});

test('weights split into many buffer bands (a device with 12 KiB bindings) give the same logits', async (t) => {
  const gpu = await deviceOrSkip(t);
  if (!gpu) return;
  for (const name of ['llama2-mha-bf16', 'qwen2-tied-sharded-f32']) {
    const cpu = await addon.loadModel(fixture(name), { threads: 2 });
    // Bands of 48-96 rows: band boundaries fall inside q (qwen2) and k (llama2).
    const small = { maxBindingBytes: 12288, execute: gpu.execute.bind(gpu) };
    const webgpu = await addon.loadModel(fixture(name), { backend: 'webgpu', webgpu: small });
    try {
      const prompt = Array.from({ length: 20 }, (_, i) => (i * 53 + 7) % 500);
      const a = await cpu.createSequence();
      const b = await webgpu.createSequence();
      assertClose(await cpu.prefill(a, prompt, { allLogits: true }), await webgpu.prefill(b, prompt, { allLogits: true }), tolerance(cpu), `${name} prefill`);
      assertClose(await cpu.decode(a, 3), await webgpu.decode(b, 3), tolerance(cpu), `${name} decode`);
      // A cache whose one layer would not fit a binding is refused with the reason, not a device error.
      await assert.rejects(
        webgpu.prefill(
          b,
          Array.from({ length: 100 }, (_, i) => i),
        ),
        /more than this WebGPU device binds in one buffer/,
      );
    } finally {
      await cpu.unload();
      await webgpu.unload();
    }
  }
});

test('an unloaded model leaves no buffers on the device', async (t) => {
  const gpu = await deviceOrSkip(t);
  if (!gpu) return;
  const device = await openWebGpuDevice();
  try {
    const engine = await addon.loadModel(fixture('qwen3-qknorm-f32'), { backend: 'webgpu', webgpu: device });
    const sequence = await engine.createSequence();
    await engine.prefill(sequence, [1, 2, 3, 4, 5]);
    await engine.forkSequence(sequence);
    assert.ok(device.liveBuffers() > 0);
    await engine.unload();
    // The frees reach the device after the unload has returned.
    for (let i = 0; i < 100 && device.liveBuffers() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(device.liveBuffers(), 0);
  } finally {
    device.destroy();
  }
});

test('the webgpu backend without a device says what to do', async () => {
  await assert.rejects(addon.loadModel(fixture('llama3-gqa-f32'), { backend: 'webgpu' }), /webgpu backend runs where the engine is loaded from Node/);
});
