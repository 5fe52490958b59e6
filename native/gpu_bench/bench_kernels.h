// Helper kernels of the benchmark: random device data, a queue-filling wait, and a
// read-only sweep that measures the read bandwidth ceiling.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::gpu_bench {

// Random bf16 values in [-1, 1), never zero, from a hash of (seed, index).
void fill_random_bf16(uint16_t* data, size_t count, uint64_t seed, cudaStream_t stream);
void fill_random_f32(float* data, size_t count, uint64_t seed, cudaStream_t stream);
// Keeps the GPU busy for about `microseconds` so that the host can queue the timed launches
// behind it (the events then time the GPU work, not the host's launch calls).
void busy_wait(double microseconds, cudaStream_t stream);
// Reads `bytes` (a multiple of 16) once and writes one value per block to `sink`.
void read_sweep(const void* data, size_t bytes, uint32_t* sink, cudaStream_t stream);

}  // namespace tidal::gpu_bench
