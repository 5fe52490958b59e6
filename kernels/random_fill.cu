// Deterministic pseudo-random fills for random-weight benchmark models and KV caches built
// on the device (a 16 GB model would take minutes to generate on the host). Each element is
// a hash (splitmix64) of the seed and its index; zero is never produced.
#include "random_fill.h"

#include <algorithm>

#include "common.cuh"

namespace tidal::cuda {

namespace {

__device__ __forceinline__ float uniform_at(uint64_t seed, uint64_t index, float center, float half_width) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = (float((z >> 40) | 1) / float(1 << 24)) * 2.0f - 1.0f;  // (-1, 1), never 0 exactly
  const float v = center + half_width * u;
  return v == 0.0f ? 1e-3f : v;
}

__global__ void fill_bf16_kernel(__nv_bfloat16* out, size_t count, float center, float half_width, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    const float v = uniform_at(seed, i, center, half_width);
    __nv_bfloat16 b = __float2bfloat16_rn(v);
    if (__bfloat162float(b) == 0.0f) b = __float2bfloat16_rn(1e-3f);
    out[i] = b;
  }
}

__global__ void fill_f32_kernel(float* out, size_t count, float center, float half_width, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    out[i] = uniform_at(seed, i, center, half_width);
}

int grid_for(size_t count) { return static_cast<int>(std::min<size_t>((count + 255) / 256, 65536)); }

}  // namespace

cudaError_t launch_fill_uniform_bf16(uint16_t* out, size_t count, float center, float half_width, uint64_t seed,
                                     cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  fill_bf16_kernel<<<grid_for(count), 256, 0, stream>>>(reinterpret_cast<__nv_bfloat16*>(out), count, center,
                                                        half_width, seed);
  return cudaGetLastError();
}

cudaError_t launch_fill_uniform_f32(float* out, size_t count, float center, float half_width, uint64_t seed,
                                    cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  fill_f32_kernel<<<grid_for(count), 256, 0, stream>>>(out, count, center, half_width, seed);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
