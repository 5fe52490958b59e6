// SwiGLU: silu(gate) * up, fp32 in (the fused gate|up matrix product), bf16 out (the input
// of down_proj). One thread per 4 outputs (16-byte loads of gate and up, 8-byte stores)
// where the width allows, one per output otherwise; no thread loops, so a one-token step
// pays one round of loads.
#include "swiglu.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void swiglu_kernel(const float* gate_up, int inner, uint16_t* out) {
  let_next_kernel_start();
  const float* gate = gate_up + int64_t(blockIdx.y) * 2 * inner;
  const float* up = gate + inner;
  __nv_bfloat16* target = reinterpret_cast<__nv_bfloat16*>(out) + int64_t(blockIdx.y) * inner;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < inner) target[i] = __float2bfloat16_rn(silu_times(gate[i], up[i]));
}

// inner % 4 == 0: gate, up and out rows 16- / 8-byte aligned.
__global__ void swiglu_vector_kernel(const float* gate_up, int inner, uint16_t* out) {
  let_next_kernel_start();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= inner / 4) return;
  const float4* gate = reinterpret_cast<const float4*>(gate_up + int64_t(blockIdx.y) * 2 * inner);
  const float4 g = gate[i], u = gate[inner / 4 + i];
  reinterpret_cast<uint2*>(out + int64_t(blockIdx.y) * inner)[i] = make_uint2(
      pack_bf16(silu_times(g.x, u.x), silu_times(g.y, u.y)), pack_bf16(silu_times(g.z, u.z), silu_times(g.w, u.w)));
}

}  // namespace

cudaError_t launch_swiglu(const float* gate_up, int tokens, int inner, uint16_t* out, cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  const bool vector =
      inner % 4 == 0 && reinterpret_cast<uintptr_t>(gate_up) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  if (vector) {
    swiglu_vector_kernel<<<dim3(static_cast<unsigned>(ceil_div(inner / 4, kThreads)), tokens), kThreads, 0, stream>>>(
        gate_up, inner, out);
  } else {
    swiglu_kernel<<<dim3(static_cast<unsigned>(ceil_div(inner, kThreads)), tokens), kThreads, 0, stream>>>(gate_up,
                                                                                                           inner, out);
  }
  return cudaGetLastError();
}

}  // namespace tidal::cuda
