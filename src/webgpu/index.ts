export { openWebGpuDevice, WebGpuDevice, WebGpuDeviceOptions, WebGpuUnavailableError } from './webgpuDevice';
export { withWebGpuDevice } from './engineOptions';
