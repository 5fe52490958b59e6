export { openWebGpuDevice, WebGpuDevice, WebGpuDeviceOptions, WebGpuUnavailableError } from './webgpuDevice';
