// Greedy sampling on the device: per row, the lowest index of the largest logit (NaN never
// wins), so that a decode loop need not copy the vocabulary back to pick a token.
#include "sampling.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

constexpr int kArgmaxThreads = 1024;

__device__ __forceinline__ bool better(float a, int64_t ia, float b, int64_t ib) {
  if (a != a) return false;
  if (b != b) return true;
  return a > b || (a == b && ia < ib);
}

__global__ void argmax_kernel(const float* logits, int64_t width, int32_t* out) {
  const float* row = logits + int64_t(blockIdx.x) * width;
  float best = __int_as_float(0x7fc00000);
  int64_t best_index = width;
  for (int64_t i = threadIdx.x; i < width; i += kArgmaxThreads)
    if (better(row[i], i, best, best_index)) {
      best = row[i];
      best_index = i;
    }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int64_t other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    if (better(other, other_index, best, best_index)) {
      best = other;
      best_index = other_index;
    }
  }
  __shared__ float values[kArgmaxThreads / kWarpSize];
  __shared__ int64_t indices[kArgmaxThreads / kWarpSize];
  if (threadIdx.x % kWarpSize == 0) {
    values[threadIdx.x / kWarpSize] = best;
    indices[threadIdx.x / kWarpSize] = best_index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kArgmaxThreads / kWarpSize; ++w)
      if (better(values[w], indices[w], best, best_index)) {
        best = values[w];
        best_index = indices[w];
      }
    out[blockIdx.x] = best_index < width ? int32_t(best_index) : 0;
  }
}

}  // namespace

cudaError_t launch_argmax(const float* logits, int rows, int64_t width, int32_t* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  argmax_kernel<<<rows, kArgmaxThreads, 0, stream>>>(logits, width, out);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
