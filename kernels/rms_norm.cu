// RMSNorm of fp32 rows into bf16 (the input of the next matrix product): one block per row,
// the sum of squares reduced in fp32 over the block. The residual add that precedes every
// norm is fused into the matrix product before it (cuBLAS with beta = 1 accumulates into the
// fp32 residual stream), so this kernel only reads the stream once.
#include "common.cuh"
#include "cuda/model_kernels.h"

namespace tidal::cuda {

namespace {

constexpr int kNormThreads = 256;

__global__ void rms_norm_kernel(const float* x, int64_t x_stride, const float* weight, int width, float eps,
                                uint16_t* out, int64_t out_stride) {
  const float* row = x + int64_t(blockIdx.x) * x_stride;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < width; i += kNormThreads) sum += row[i] * row[i];
  __shared__ float partial[kNormThreads / kWarpSize];
  sum = warp_sum(sum);
  if (threadIdx.x % kWarpSize == 0) partial[threadIdx.x / kWarpSize] = sum;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kNormThreads / kWarpSize; ++w) total += partial[w];
  const float inv = rsqrtf(total / float(width) + eps);
  __nv_bfloat16* target = reinterpret_cast<__nv_bfloat16*>(out + int64_t(blockIdx.x) * out_stride);
  for (int i = threadIdx.x; i < width; i += kNormThreads) target[i] = __float2bfloat16_rn(row[i] * inv * weight[i]);
}

}  // namespace

cudaError_t launch_rms_norm(const float* x, int64_t x_stride, const float* weight, int rows, int width, float eps,
                            uint16_t* out, int64_t out_stride, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  rms_norm_kernel<<<rows, kNormThreads, 0, stream>>>(x, x_stride, weight, width, eps, out, out_stride);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
