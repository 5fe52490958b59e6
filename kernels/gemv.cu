// Matrix-vector product of a decode step (one token): y[r] = beta * y[r] + sum_c W[r][c] x[c]
// with W bf16 [rows][cols] (a Linear weight), x bf16 [cols], y fp32; fp32 accumulation.
// Purely bandwidth-bound (2 bytes of W per 2 flops), so the kernel exists to keep enough
// 16-byte loads in flight: x sits in shared memory, each warp walks two rows at once with
// four 16-byte loads per row in flight per lane, and the row sums are warp reductions.
// beta = 1 accumulates into the fp32 residual stream (the residual add is fused here).
#include "common.cuh"
#include "cuda/model_kernels.h"

namespace tidal::cuda {

namespace {

constexpr int kGemvThreads = 256;
constexpr int kGemvRowsPerWarp = 2;
constexpr int kGemvUnroll = 4;

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  return bf16_low(w.x) * bf16_low(x.x) + bf16_high(w.x) * bf16_high(x.x) + bf16_low(w.y) * bf16_low(x.y) +
         bf16_high(w.y) * bf16_high(x.y) + bf16_low(w.z) * bf16_low(x.z) + bf16_high(w.z) * bf16_high(x.z) +
         bf16_low(w.w) * bf16_low(x.w) + bf16_high(w.w) * bf16_high(x.w);
}

__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const uint16_t* w, int64_t rows, int cols,
                                                            const uint16_t* x, float* y, float beta) {
  extern __shared__ __align__(16) uint4 xs[];
  const int vectors = cols / 8;
  for (int i = threadIdx.x; i < vectors; i += kGemvThreads) xs[i] = load_vector(x + int64_t(i) * 8);
  __syncthreads();
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t first = (int64_t(blockIdx.x) * (kGemvThreads / kWarpSize) + warp) * kGemvRowsPerWarp;
  if (first >= rows) return;
  const uint4* row[kGemvRowsPerWarp];
  float acc[kGemvRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kGemvRowsPerWarp; ++r) {
    const int64_t index = first + r < rows ? first + r : rows - 1;
    row[r] = reinterpret_cast<const uint4*>(w + index * cols);
    acc[r] = 0.0f;
  }
  int v = lane;
  for (; v + (kGemvUnroll - 1) * kWarpSize < vectors; v += kGemvUnroll * kWarpSize) {
    uint4 wv[kGemvRowsPerWarp][kGemvUnroll];
#pragma unroll
    for (int r = 0; r < kGemvRowsPerWarp; ++r)
#pragma unroll
      for (int u = 0; u < kGemvUnroll; ++u) wv[r][u] = load_vector(row[r] + v + u * kWarpSize);
#pragma unroll
    for (int u = 0; u < kGemvUnroll; ++u) {
      const uint4 xv = xs[v + u * kWarpSize];
#pragma unroll
      for (int r = 0; r < kGemvRowsPerWarp; ++r) acc[r] += dot8(wv[r][u], xv);
    }
  }
  for (; v < vectors; v += kWarpSize) {
    const uint4 xv = xs[v];
#pragma unroll
    for (int r = 0; r < kGemvRowsPerWarp; ++r) acc[r] += dot8(load_vector(row[r] + v), xv);
  }
#pragma unroll
  for (int r = 0; r < kGemvRowsPerWarp; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0 && first + r < rows) y[first + r] = beta == 0.0f ? sum : beta * y[first + r] + sum;
  }
}

}  // namespace

cudaError_t launch_gemv(const uint16_t* w, int64_t rows, int cols, const uint16_t* x, float* y, float beta,
                        cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (cols % 8 != 0 || cols <= 0) return cudaErrorInvalidValue;
  const size_t shared = size_t(cols) * 2;
  if (shared > 48 * 1024) {
    static const cudaError_t raised =
        cudaFuncSetAttribute(gemv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024);
    if (raised != cudaSuccess) return raised;
    if (shared > 200 * 1024) return cudaErrorInvalidValue;
  }
  const int64_t rows_per_block = (kGemvThreads / kWarpSize) * kGemvRowsPerWarp;
  gemv_kernel<<<static_cast<unsigned>(ceil_div(rows, rows_per_block)), kGemvThreads, shared, stream>>>(w, rows, cols,
                                                                                                       x, y, beta);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
