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
#include "kv_fp8.cuh"
#include "quest_pages.h"

namespace tidal::cuda {

namespace {

constexpr int kPageTokens = detail::kQuestPageTokens;

__global__ void decode_qkv_kernel(const DecodeQkvLaunch p) {
  let_next_kernel_start();
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
  const int64_t row = position * p.head_dim;
  const int64_t head_offset = int64_t(kv_head) * p.head_stride;
  uint8_t* codes = static_cast<uint8_t*>(p.keys) + head_offset;             // FP8 cache
  __nv_bfloat16* keys = static_cast<__nv_bfloat16*>(p.keys) + head_offset;  // bf16 cache
  uint32_t* scales = p.scales ? p.scales + int64_t(kv_head) * p.scale_head_stride : nullptr;
  if (p.scales) {
    __shared__ float maxima[2][8];
    const float k_max = block_max(fmaxf(fabsf(y1), fabsf(y2)), maxima[0]);
    const float v_max = block_max(fmaxf(fabsf(v1), fabsf(v2)), maxima[1]);
    const uint16_t k_bits = fp8_row_scale(k_max), v_bits = fp8_row_scale(v_max);
    const float k_scale = fp8_scale_value(k_bits), v_scale = fp8_scale_value(v_bits);
    uint8_t* values = static_cast<uint8_t*>(p.values) + head_offset;
    codes[row + i] = fp8_encode(y1, k_scale);
    codes[row + i + half] = fp8_encode(y2, k_scale);
    values[row + i] = fp8_encode(v1, v_scale);
    values[row + i + half] = fp8_encode(v2, v_scale);
    if (i == 0) scales[position] = uint32_t(k_bits) | (uint32_t(v_bits) << 16);
  } else {
    __nv_bfloat16* values = static_cast<__nv_bfloat16*>(p.values) + head_offset;
    keys[row + i] = __float2bfloat16_rn(y1);
    keys[row + i + half] = __float2bfloat16_rn(y2);
    values[row + i] = __float2bfloat16_rn(v1);
    values[row + i + half] = __float2bfloat16_rn(v2);
  }
  if (!p.key_min) return;
  __syncthreads();  // this block's key row (and scale) is in the cache before the page reads it back
  // This thread's pair of the key at `at`, as the cache holds it.
  auto stored = [&](int64_t at) {
    if (p.scales) {
      const float scale = key_scale_of(scales[at]);
      const float2 x =
          fp8x2_to_float2(uint16_t(codes[at * p.head_dim + i]) | uint16_t(codes[at * p.head_dim + i + half] << 8));
      return make_float2(x.x * scale, x.y * scale);
    }
    return make_float2(__bfloat162float(keys[at * p.head_dim + i]), __bfloat162float(keys[at * p.head_dim + i + half]));
  };
  const int64_t page = position / kPageTokens;
  float lo1 = INFINITY, hi1 = -INFINITY, lo2 = INFINITY, hi2 = -INFINITY;
  for (int64_t at = page * kPageTokens; at <= position; ++at) {
    const float2 k = stored(at);
    lo1 = fminf(lo1, k.x), hi1 = fmaxf(hi1, k.x), lo2 = fminf(lo2, k.y), hi2 = fmaxf(hi2, k.y);
  }
  const int64_t offset = int64_t(kv_head) * p.page_head_stride + page * p.head_dim;
  __nv_bfloat16* key_min = reinterpret_cast<__nv_bfloat16*>(p.key_min) + offset;
  __nv_bfloat16* key_max = reinterpret_cast<__nv_bfloat16*>(p.key_max) + offset;
  // Rounded outwards, so they bound the keys: exact for bf16 keys, which are bf16 values already.
  key_min[i] = __float2bfloat16_rd(lo1);
  key_min[i + half] = __float2bfloat16_rd(lo2);
  key_max[i] = __float2bfloat16_ru(hi1);
  key_max[i + half] = __float2bfloat16_ru(hi2);
}

}  // namespace

cudaError_t launch_decode_qkv(const DecodeQkvLaunch& launch, cudaStream_t stream) {
  if (launch.head_dim % 2 != 0 || launch.head_dim > 512 || launch.heads <= 0 || launch.kv_heads <= 0)
    return cudaErrorInvalidValue;
  decode_qkv_kernel<<<launch.heads + launch.kv_heads, launch.head_dim / 2, 0, stream>>>(launch);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
