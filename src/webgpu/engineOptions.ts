// Engine options for the 'webgpu' backend carry the device it runs on: opened once per process,
// on first use, and shared by every model loaded afterwards.
import type { EngineOptions } from '../native/addon';
import { openWebGpuDevice, WebGpuDevice } from './webgpuDevice';

let shared: Promise<WebGpuDevice> | undefined;

export async function withWebGpuDevice(options: EngineOptions | undefined): Promise<EngineOptions | undefined> {
  if (options?.backend !== 'webgpu' || options.webgpu) return options;
  shared ??= openWebGpuDevice();
  shared.catch(() => (shared = undefined)); // a later load tries again
  return { ...options, webgpu: await shared };
}
