// GPUBufferUsage and GPUMapMode values, as WebGPU defines them (the Node binding has no
// globals for them).
export const STORAGE = 0x80;
export const UNIFORM = 0x40;
export const COPY_DST = 0x08;
export const COPY_SRC = 0x04;
export const MAP_READ = 0x01;
export const MAP_MODE_READ = 0x01;
