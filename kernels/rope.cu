// RoPE (rotate-half pairs, as Hugging Face applies it) on the q and k heads of the fused
// qkv projection, in place, with Qwen3's per-head RMSNorm before it when given. The angle
// is float(position) * inv_freq[i] in fp32 and its cosine/sine are taken in double, as the
// CPU backend does, so both see the same rotation; llama3 scaling lives in inv_freq.
// One block per (token, head), one thread per rotated pair.
#include "rope.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

__global__ void rope_kernel(RopeLaunch p) {
  let_next_kernel_start();
  const int t = blockIdx.x;
  const int head = blockIdx.y;  // < heads: a query head; else a key head
  const int half = p.head_dim / 2;
  const int i = threadIdx.x;
  const bool is_query = head < p.heads;
  float* vec = p.qkv + int64_t(t) * p.stride + int64_t(head) * p.head_dim;
  float x1 = vec[i], x2 = vec[i + half];
  const float* norm = is_query ? p.q_norm : p.k_norm;
  if (norm) {
    __shared__ float partial[8];
    const float inv = rsqrtf(block_sum(x1 * x1 + x2 * x2, partial) / float(p.head_dim) + p.eps);
    x1 = x1 * inv * norm[i];
    x2 = x2 * inv * norm[i + half];
  }
  const float angle = float(p.start + t) * p.inv_freq[i];
  const float c = static_cast<float>(cos(static_cast<double>(angle)));
  const float s = static_cast<float>(sin(static_cast<double>(angle)));
  const float y1 = x1 * c - x2 * s;
  const float y2 = x2 * c + x1 * s;
  vec[i] = y1;
  vec[i + half] = y2;
  if (is_query && p.q_bf16) {
    __nv_bfloat16* q = reinterpret_cast<__nv_bfloat16*>(p.q_bf16) + (int64_t(t) * p.heads + head) * p.head_dim;
    q[i] = __float2bfloat16_rn(y1);
    q[i + half] = __float2bfloat16_rn(y2);
  }
}

}  // namespace

cudaError_t launch_rope(const RopeLaunch& launch, cudaStream_t stream) {
  if (launch.tokens <= 0) return cudaSuccess;
  if (launch.head_dim % 2 != 0 || launch.head_dim > 512) return cudaErrorInvalidValue;
  rope_kernel<<<dim3(launch.tokens, launch.heads + launch.kv_heads), launch.head_dim / 2, 0, stream>>>(launch);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
