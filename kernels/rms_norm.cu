// RMSNorm of fp32 rows into bf16 (the input of the next matrix product): one block per row,
// the sum of squares reduced in fp32 over the block. The residual add that precedes every
// norm is fused into the matrix product before it (cuBLAS with beta = 1 accumulates into the
// fp32 residual stream), so this kernel only reads the stream once.
//
// A decode step runs this kernel 2 * layers + 1 times on one row, so its latency is what
// counts: the row and the weight are loaded once, as 16-byte vectors all issued before the
// reduction (up to kCached vectors per thread held in registers), instead of a strided loop
// that waits on one load per iteration and then reads the row a second time.
#include "rms_norm.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

constexpr int kNormThreads = 256;
constexpr int kCached = 4;  // float4 vectors per thread held across the reduction

__device__ __forceinline__ uint2 pack_bf16x4(float a, float b, float c, float d) {
  return make_uint2(pack_bf16(a, b), pack_bf16(c, d));
}

// width % 4 == 0, rows 16-byte aligned, width <= 4 * kCached * blockDim.x.
__global__ void rms_norm_vector_kernel(const float* x, int64_t x_stride, const float* weight, int width, float eps,
                                       uint16_t* out, int64_t out_stride) {
  let_next_kernel_start();
  __shared__ float partial[1024 / kWarpSize];
  const float4* row = reinterpret_cast<const float4*>(x + int64_t(blockIdx.x) * x_stride);
  const float4* gain = reinterpret_cast<const float4*>(weight);
  const int vectors = width / 4;
  float4 v[kCached], g[kCached];
#pragma unroll
  for (int j = 0; j < kCached; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    v[j] = i < vectors ? row[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    g[j] = i < vectors ? __ldg(gain + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kCached; ++j) sum += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
  const float inv = rsqrtf(block_sum(sum, partial, blockDim.x / kWarpSize) / float(width) + eps);
  uint2* target = reinterpret_cast<uint2*>(out + int64_t(blockIdx.x) * out_stride);
#pragma unroll
  for (int j = 0; j < kCached; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < vectors)
      target[i] =
          pack_bf16x4(v[j].x * inv * g[j].x, v[j].y * inv * g[j].y, v[j].z * inv * g[j].z, v[j].w * inv * g[j].w);
  }
}

// Any width and alignment.
__global__ void rms_norm_kernel(const float* x, int64_t x_stride, const float* weight, int width, float eps,
                                uint16_t* out, int64_t out_stride) {
  let_next_kernel_start();
  const float* row = x + int64_t(blockIdx.x) * x_stride;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < width; i += kNormThreads) sum += row[i] * row[i];
  __shared__ float partial[kNormThreads / kWarpSize];
  const float inv = rsqrtf(block_sum(sum, partial, kNormThreads / kWarpSize) / float(width) + eps);
  __nv_bfloat16* target = reinterpret_cast<__nv_bfloat16*>(out + int64_t(blockIdx.x) * out_stride);
  for (int i = threadIdx.x; i < width; i += kNormThreads) target[i] = __float2bfloat16_rn(row[i] * inv * weight[i]);
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

cudaError_t launch_rms_norm(const float* x, int64_t x_stride, const float* weight, int rows, int width, float eps,
                            uint16_t* out, int64_t out_stride, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const bool vector = width % 4 == 0 && x_stride % 4 == 0 && out_stride % 4 == 0 && aligned(x, 16) &&
                      aligned(weight, 16) && aligned(out, 8) && width <= 4 * kCached * 1024;
  if (vector) {
    // Enough threads that each holds at most kCached vectors, in whole warps.
    const int vectors = width / 4;
    int threads = static_cast<int>(ceil_div(ceil_div(vectors, kCached), kWarpSize)) * kWarpSize;
    threads = threads < 128 ? 128 : threads;
    rms_norm_vector_kernel<<<rows, threads, 0, stream>>>(x, x_stride, weight, width, eps, out, out_stride);
  } else {
    rms_norm_kernel<<<rows, kNormThreads, 0, stream>>>(x, x_stride, weight, width, eps, out, out_stride);
  }
  return cudaGetLastError();
}

}  // namespace tidal::cuda
