export type { KernelProfile } from './tapeRunner';
export { openWebGpuDevice, WebGpuDevice, WebGpuDeviceOptions, WebGpuUnavailableError } from './webgpuDevice';
export { withWebGpuDevice } from './engineOptions';
