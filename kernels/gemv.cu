// Matrix-vector product of a decode step (one token): y[r] = beta * y[r] + sum_c W[r][c] x[c]
// with W bf16 [rows][cols] (a Linear weight), x bf16 [cols], y fp32; fp32 accumulation.
// Purely bandwidth-bound (2 bytes of W per 2 flops), so the kernel exists to keep enough
// 16-byte loads of W in flight from its first cycle: each warp owns kRowsPerWarp rows, each
// lane walks them in 16-byte vectors strided by the warp, kUnroll vectors of every row
// loaded before any is used (kRowsPerWarp * kUnroll loads in flight per lane). x is read
// through the read-only cache beside W (it is 8-28 KB and shared by every warp), so no block
// waits for a shared-memory prologue before its first weight load; row sums are warp
// reductions. beta = 1 accumulates into the fp32 residual stream (the residual add is fused).
// Launched early (kernels/common.cuh), the first loads of W overlap the end of the kernel
// before it, and the wait for that kernel comes before the first read of x.
//
// With kSwiglu, W is a gate|up matrix [2 * inner][cols] and the product ends in SwiGLU: a warp's
// two rows are gate row j and up row inner + j, and it writes bf16 silu(gate) * up to out[j]
// (no fp32 y, no separate SwiGLU launch); the sums are the same as without, so the result is
// kernels/swiglu.cu's bit for bit.
//
// The first version staged x in shared memory and kept 8 loads in flight per lane, and was
// slower than cuBLAS on a 7-8B model's matrices (bench/NOTES.md).
#include "gemv.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

constexpr int kGemvThreads = 128;
constexpr int kRowsPerWarp = 2;
constexpr int kUnroll = 8;
constexpr int kRowsPerBlock = kGemvThreads / kWarpSize * kRowsPerWarp;

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  return bf16_low(w.x) * bf16_low(x.x) + bf16_high(w.x) * bf16_high(x.x) + bf16_low(w.y) * bf16_low(x.y) +
         bf16_high(w.y) * bf16_high(x.y) + bf16_low(w.z) * bf16_low(x.z) + bf16_high(w.z) * bf16_high(x.z) +
         bf16_low(w.w) * bf16_low(x.w) + bf16_high(w.w) * bf16_high(x.w);
}

// Weights are streamed once: no L1 allocation for them (x stays cached).
__device__ __forceinline__ uint4 load_streaming(const uint4* address) { return __ldcs(address); }

// kSwiglu: rows = inner, y is the bf16 output (uint16_t) and beta unused.
template <bool kSwiglu>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(const uint16_t* w, int64_t rows, int cols, const uint16_t* x, void* y_out, float beta) {
  let_next_kernel_start();
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  // kSwiglu: output j = the warp's index; its rows j (gate) and rows + j (up).
  const int64_t first = kSwiglu ? int64_t(blockIdx.x) * (kGemvThreads / kWarpSize) + warp
                                : int64_t(blockIdx.x) * kRowsPerBlock + warp * kRowsPerWarp;
  if (first >= rows) {
    wait_for_previous_kernels();
    return;
  }
  const int vectors = cols / 8;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const uint4* row[kRowsPerWarp];
  float acc[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t index = kSwiglu ? first + r * rows : first + r < rows ? first + r : rows - 1;
    row[r] = reinterpret_cast<const uint4*>(w + index * cols);
    acc[r] = 0.0f;
  }
  int v = lane;
  // Launched early, the first loads of W go out before the wait for the kernel that writes x.
  bool waited = false;
  for (; v + (kUnroll - 1) * kWarpSize < vectors; v += kUnroll * kWarpSize) {
    uint4 wv[kRowsPerWarp][kUnroll];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) wv[r][u] = load_streaming(row[r] + v + u * kWarpSize);
    if (!waited) {
      wait_for_previous_kernels();
      waited = true;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint4 xu = __ldg(xv + v + u * kWarpSize);
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) acc[r] += dot8(wv[r][u], xu);
    }
  }
  if (!waited) wait_for_previous_kernels();
  for (; v < vectors; v += kWarpSize) {
    const uint4 xu = __ldg(xv + v);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) acc[r] += dot8(load_streaming(row[r] + v), xu);
  }
  if constexpr (kSwiglu) {
    static_assert(kRowsPerWarp == 2, "a gate row and an up row a warp");
    const float gate = warp_sum(acc[0]), up = warp_sum(acc[1]);
    if (lane == 0) reinterpret_cast<__nv_bfloat16*>(y_out)[first] = __float2bfloat16_rn(silu_times(gate, up));
  } else {
    float* y = static_cast<float*>(y_out);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const float sum = warp_sum(acc[r]);
      if (lane == 0 && first + r < rows) y[first + r] = beta == 0.0f ? sum : beta * y[first + r] + sum;
    }
  }
}

}  // namespace

cudaError_t launch_gemv(const uint16_t* w, int64_t rows, int cols, const uint16_t* x, float* y, float beta,
                        cudaStream_t stream, bool early) {
  if (rows <= 0) return cudaSuccess;
  if (cols % 8 != 0 || cols <= 0) return cudaErrorInvalidValue;
  return launch_kernel(gemv_kernel<false>, dim3(static_cast<unsigned>(ceil_div(rows, kRowsPerBlock))),
                       dim3(kGemvThreads), 0, stream, early, w, rows, cols, x, static_cast<void*>(y), beta);
}

cudaError_t launch_gemv_swiglu(const uint16_t* w, int64_t inner, int cols, const uint16_t* x, uint16_t* out,
                               cudaStream_t stream, bool early) {
  if (inner <= 0) return cudaSuccess;
  if (cols % 8 != 0 || cols <= 0) return cudaErrorInvalidValue;
  return launch_kernel(gemv_kernel<true>, dim3(static_cast<unsigned>(ceil_div(inner, kGemvThreads / kWarpSize))),
                       dim3(kGemvThreads), 0, stream, early, w, inner, cols, x, static_cast<void*>(out), 0.0f);
}

}  // namespace tidal::cuda
