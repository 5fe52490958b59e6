// The per-head work of a one-token decode step between the q|k|v projection and attention,
// in one launch: bias (Qwen2), per-head RMSNorm of q and k (Qwen3), RoPE, the K/V append to
// the bf16 cache and the Quest page update of the page the new key lands in. The prefill
// path runs these as separate kernels over many tokens (bias_add.cu, rope.cu, kv_append.cu,
// quest_pages.cu); a decode step would pay each of their launch latencies once per layer.
//
// One block per head (query heads first, then KV heads), one thread per rotated pair
// (i, i + head_dim / 2), with the same arithmetic as the separate kernels: RoPE's angle is
// float(position) * inv_freq[i] with its cosine and sine in double. A KV-head block writes
// its key and value, then (after the block barrier that makes those writes visible to it)
// recomputes its page's element-wise key min / max from the page's keys in the cache.
#include "decode_qkv.h"

#include "common.cuh"
#include "quest_pages.h"

namespace tidal::cuda {

namespace {

constexpr int kPageTokens = detail::kQuestPageTokens;

__global__ void decode_qkv_kernel(const DecodeQkvLaunch p) {
  __shared__ float partial[8];
  const int head = blockIdx.x;  // < heads: a query head; else a KV head
  const int half = p.head_dim / 2;
  const int i = threadIdx.x;
  const bool is_query = head < p.heads;
  const int64_t position = p.position_device ? *p.position_device : p.position;
  float* vec = p.qkv + int64_t(head) * p.head_dim;
  float x1 = vec[i], x2 = vec[i + half];
  if (p.bias) {
    x1 += p.bias[int64_t(head) * p.head_dim + i];
    x2 += p.bias[int64_t(head) * p.head_dim + i + half];
  }
  const float* norm = is_query ? p.q_norm : p.k_norm;
  if (norm) {
    const float inv = rsqrtf(block_sum(x1 * x1 + x2 * x2, partial) / float(p.head_dim) + p.eps);
    x1 = x1 * inv * norm[i];
    x2 = x2 * inv * norm[i + half];
  }
  const float angle = float(position) * p.inv_freq[i];
  const float c = static_cast<float>(cos(static_cast<double>(angle)));
  const float s = static_cast<float>(sin(static_cast<double>(angle)));
  const float y1 = x1 * c - x2 * s;
  const float y2 = x2 * c + x1 * s;
  vec[i] = y1;
  vec[i + half] = y2;
  if (is_query) return;

  const int kv_head = head - p.heads;
  float* value = p.qkv + int64_t(p.heads + p.kv_heads + kv_head) * p.head_dim;
  float v1 = value[i], v2 = value[i + half];
  if (p.bias) {
    v1 += p.bias[int64_t(p.heads + p.kv_heads + kv_head) * p.head_dim + i];
    v2 += p.bias[int64_t(p.heads + p.kv_heads + kv_head) * p.head_dim + i + half];
    value[i] = v1;
    value[i + half] = v2;
  }
  __nv_bfloat16* keys = reinterpret_cast<__nv_bfloat16*>(p.keys) + int64_t(kv_head) * p.head_stride;
  __nv_bfloat16* values = reinterpret_cast<__nv_bfloat16*>(p.values) + int64_t(kv_head) * p.head_stride;
  const int64_t row = position * p.head_dim;
  keys[row + i] = __float2bfloat16_rn(y1);
  keys[row + i + half] = __float2bfloat16_rn(y2);
  values[row + i] = __float2bfloat16_rn(v1);
  values[row + i + half] = __float2bfloat16_rn(v2);
  if (!p.key_min) return;
  __syncthreads();  // this block's key row is in the cache before the page reads it back

  const int64_t page = position / kPageTokens;
  float lo1 = INFINITY, hi1 = -INFINITY, lo2 = INFINITY, hi2 = -INFINITY;
  for (int64_t at = page * kPageTokens; at <= position; ++at) {
    const float a = __bfloat162float(keys[at * p.head_dim + i]);
    const float b = __bfloat162float(keys[at * p.head_dim + i + half]);
    lo1 = fminf(lo1, a), hi1 = fmaxf(hi1, a), lo2 = fminf(lo2, b), hi2 = fmaxf(hi2, b);
  }
  const int64_t offset = int64_t(kv_head) * p.page_head_stride + page * p.head_dim;
  __nv_bfloat16* key_min = reinterpret_cast<__nv_bfloat16*>(p.key_min) + offset;
  __nv_bfloat16* key_max = reinterpret_cast<__nv_bfloat16*>(p.key_max) + offset;
  // Exact: the bounds are key values, already bf16.
  key_min[i] = __float2bfloat16_rn(lo1);
  key_min[i + half] = __float2bfloat16_rn(lo2);
  key_max[i] = __float2bfloat16_rn(hi1);
  key_max[i + half] = __float2bfloat16_rn(hi2);
}

}  // namespace

cudaError_t launch_decode_qkv(const DecodeQkvLaunch& launch, cudaStream_t stream) {
  if (launch.head_dim % 2 != 0 || launch.head_dim > 512 || launch.heads <= 0 || launch.kv_heads <= 0)
    return cudaErrorInvalidValue;
  decode_qkv_kernel<<<launch.heads + launch.kv_heads, launch.head_dim / 2, 0, stream>>>(launch);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
