// SwiGLU: silu(gate) * up, fp32 in (the fused gate|up matrix product), bf16 out (the input
// of down_proj).
#include "common.cuh"
#include "cuda/model_kernels.h"

namespace tidal::cuda {

namespace {

__global__ void swiglu_kernel(const float* gate_up, int inner, uint16_t* out) {
  const float* gate = gate_up + int64_t(blockIdx.y) * 2 * inner;
  const float* up = gate + inner;
  __nv_bfloat16* target = reinterpret_cast<__nv_bfloat16*>(out) + int64_t(blockIdx.y) * inner;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < inner; i += gridDim.x * blockDim.x) {
    const float g = gate[i];
    target[i] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * up[i]);
  }
}

}  // namespace

cudaError_t launch_swiglu(const float* gate_up, int tokens, int inner, uint16_t* out, cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  const int blocks = static_cast<int>(ceil_div(inner, 256 * 4));
  swiglu_kernel<<<dim3(blocks, tokens), 256, 0, stream>>>(gate_up, inner, out);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
