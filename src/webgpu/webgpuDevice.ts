// The WebGPU device the native engine's "webgpu" backend runs on: Dawn through the `webgpu`
// npm package (Metal on macOS, D3D12 or Vulkan on Windows, Vulkan on Linux). The engine records
// its forward on a command tape (native/src/webgpu/) and hands it to execute(); this side only
// encodes kernels and reads back what the engine asked for.
import { TidalError } from '../native/errors';
import { KernelProfile, TapeRunner, TapeStats } from './tapeRunner';

/** What loadModel(dir, { backend: 'webgpu', webgpu }) takes. */
export interface WebGpuDevice {
  readonly adapterName: string;
  readonly owners: unknown;
  /** The GPUDevice itself (benchmarks measure its bandwidth). */
  readonly gpuDevice: GPUDevice;
  /** Largest buffer binding, in bytes: the engine splits weight matrices to fit. */
  readonly maxBindingBytes: number;
  execute(words: Uint32Array, uploads: ArrayBuffer[]): Promise<ArrayBuffer[]>;
  /** The cost of the last tape run (a decode step is one tape). */
  lastTape(): TapeStats;
  /** Buffers the engines hold on this device (weights, caches, activations). */
  liveBuffers(): number;
  /** Per-kernel device time of the following tapes (needs `profile` when opened); off again with false. */
  setProfiling(on: boolean): void;
  /** The per-kernel times of the last profiled tape. */
  lastProfile(): KernelProfile;
  destroy(): void;
}

/** No WebGPU adapter or runtime here (ERR_TIDAL_CONFIGURATION); the message says why and what to do. */
export class WebGpuUnavailableError extends TidalError {
  constructor(message: string) {
    super('ERR_TIDAL_CONFIGURATION', message);
    this.name = 'WebGpuUnavailableError';
  }
}

interface WebGpuModule {
  create(options: string[]): GPU;
}

export interface WebGpuDeviceOptions {
  /** Fill every new device buffer with NaN, so that a kernel reading what nothing wrote shows (tests). */
  poisonBuffers?: boolean;
  /** Ask for 'timestamp-query', so setProfiling can time kernels (benchmarks). */
  profile?: boolean;
}

export async function openWebGpuDevice(options: WebGpuDeviceOptions = {}): Promise<WebGpuDevice> {
  let module: WebGpuModule;
  try {
    module = (await import('webgpu')) as unknown as WebGpuModule;
  } catch (error) {
    throw new WebGpuUnavailableError(`The WebGPU runtime (the \`webgpu\` package, Dawn) could not be loaded: ${(error as Error).message}`);
  }
  // Dawn's own options, space-separated (e.g. `adapter=NAME`, `backend=vulkan`,
  // `enable-dawn-features=disable_robustness`): see the webgpu package's README.
  const flags = (process.env.TIDAL_WEBGPU_FLAGS ?? '').split(' ').filter((flag) => flag);
  const gpu = module.create(flags);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new WebGpuUnavailableError(
      'No WebGPU adapter: Dawn found no Metal, D3D12 or Vulkan device. On Linux, install a Vulkan driver ' +
        '(Mesa 25 or newer, e.g. mesa-vulkan-drivers from bookworm-backports on Debian 12), or use the cpu backend.',
    );
  }
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: options.profile && adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    },
  });
  const runner = new TapeRunner(device, options.poisonBuffers);
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.device, info.description].filter((part) => part).join(' ') || 'unknown adapter';
  const maxBindingBytes = Math.floor(Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / 256) * 256;
  let chain: Promise<unknown> = Promise.resolve();
  // The instance and adapter stay referenced while the device lives: Dawn's event processing
  // uses the instance, and a collected one takes the process down.
  const owners = { gpu, adapter };
  return {
    owners,
    gpuDevice: device,
    adapterName,
    maxBindingBytes,
    // Tapes run one after another, in the order the engine sent them.
    execute(words, uploads) {
      const result = chain.then(() => runner.run(words, uploads));
      chain = result.catch(() => undefined);
      return result;
    },
    lastTape: () => runner.lastTape,
    liveBuffers: () => runner.bufferCount,
    setProfiling: (on) => runner.setProfiling(on),
    lastProfile: () => runner.lastProfile,
    destroy() {
      runner.destroy();
      device.destroy();
    },
  };
}
