// KV-cache append: the new tokens' keys (after RoPE) and values go from the fp32 qkv rows
// into the bf16 cache at their positions. Layout per layer: [kv_head][capacity][head_dim].
#include "kv_append.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

__global__ void kv_append_kernel(const float* qkv, int64_t stride, int heads, int kv_heads, int head_dim,
                                 __nv_bfloat16* keys, __nv_bfloat16* values, int64_t head_stride, int64_t start) {
  const int t = blockIdx.x;
  const int h = blockIdx.y;
  const float* k = qkv + int64_t(t) * stride + int64_t(heads + h) * head_dim;
  const float* v = k + int64_t(kv_heads) * head_dim;
  const int64_t offset = int64_t(h) * head_stride + (start + t) * head_dim;
  for (int i = threadIdx.x; i < head_dim; i += blockDim.x) {
    keys[offset + i] = __float2bfloat16_rn(k[i]);
    values[offset + i] = __float2bfloat16_rn(v[i]);
  }
}

}  // namespace

cudaError_t launch_kv_append(const float* qkv, int64_t stride, int tokens, int heads, int kv_heads, int head_dim,
                             uint16_t* keys, uint16_t* values, int64_t head_stride, int64_t start,
                             cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  kv_append_kernel<<<dim3(tokens, kv_heads), 128, 0, stream>>>(
      qkv, stride, heads, kv_heads, head_dim, reinterpret_cast<__nv_bfloat16*>(keys),
      reinterpret_cast<__nv_bfloat16*>(values), head_stride, start);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
