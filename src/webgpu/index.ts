export { openWebGpuDevice, WebGpuDevice, WebGpuUnavailableError } from './webgpuDevice';
