// Bias add over fp32 rows (Qwen2's q/k/v biases, an o_proj bias).
#include "bias_add.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

__global__ void bias_add_kernel(float* x, int64_t stride, const float* bias, int width) {
  let_next_kernel_start();
  float* row = x + int64_t(blockIdx.x) * stride;
  for (int i = threadIdx.x; i < width; i += blockDim.x) row[i] += bias[i];
}

}  // namespace

cudaError_t launch_bias_add(float* x, int64_t stride, const float* bias, int rows, int width, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  bias_add_kernel<<<rows, 256, 0, stream>>>(x, stride, bias, width);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
