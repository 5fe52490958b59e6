// KV-cache append: the new tokens' keys (after RoPE) and values go from the fp32 qkv rows
// into the cache at their positions. Layout per layer: [kv_head][capacity][head_dim], bf16, or
// FP8 codes with a scale pair per row (kernels/kv_fp8.cuh). Also the widening of FP8 rows back
// to bf16 that prefill attention reads.
#include "kv_append.h"

#include "common.cuh"
#include "kv_fp8.cuh"

namespace tidal::cuda {

namespace {

__global__ void kv_append_kernel(const float* qkv, int64_t stride, int heads, int kv_heads, int head_dim,
                                 __nv_bfloat16* keys, __nv_bfloat16* values, int64_t head_stride, int64_t start) {
  let_next_kernel_start();
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

// One block of 128 threads per (token, KV head); each thread holds up to 2 values of the key
// and of the value row; the row maxima are block reductions.
constexpr int kFp8Threads = 128;

__global__ void __launch_bounds__(kFp8Threads)
    kv_append_fp8_kernel(const float* qkv, int64_t stride, int heads, int kv_heads, int head_dim, uint8_t* keys,
                         uint8_t* values, int64_t head_stride, uint32_t* scales, int64_t scale_head_stride,
                         int64_t start) {
  let_next_kernel_start();
  __shared__ float maxima[2][kFp8Threads / kWarpSize];
  const int t = blockIdx.x;
  const int h = blockIdx.y;
  const float* k = qkv + int64_t(t) * stride + int64_t(heads + h) * head_dim;
  const float* v = k + int64_t(kv_heads) * head_dim;
  float kx[2], vx[2];
  float k_max = 0.0f, v_max = 0.0f;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int i = threadIdx.x + j * kFp8Threads;
    kx[j] = i < head_dim ? k[i] : 0.0f;
    vx[j] = i < head_dim ? v[i] : 0.0f;
    k_max = fmaxf(k_max, fabsf(kx[j]));
    v_max = fmaxf(v_max, fabsf(vx[j]));
  }
  k_max = block_max(k_max, maxima[0]);
  v_max = block_max(v_max, maxima[1]);
  const uint16_t k_bits = fp8_row_scale(k_max), v_bits = fp8_row_scale(v_max);
  const float k_scale = fp8_scale_value(k_bits), v_scale = fp8_scale_value(v_bits);
  const int64_t offset = int64_t(h) * head_stride + (start + t) * head_dim;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int i = threadIdx.x + j * kFp8Threads;
    if (i < head_dim) {
      keys[offset + i] = fp8_encode(kx[j], k_scale);
      values[offset + i] = fp8_encode(vx[j], v_scale);
    }
  }
  if (threadIdx.x == 0)
    scales[int64_t(h) * scale_head_stride + start + t] = uint32_t(k_bits) | (uint32_t(v_bits) << 16);
}

// Thread per 8 values (one 8-byte load of codes, one 16-byte store of bf16); grid (position
// blocks, heads).
__global__ void kv_widen_fp8_kernel(const uint8_t* keys, const uint8_t* values, int64_t head_stride,
                                    const uint32_t* scales, int64_t scale_head_stride, int first_head, int64_t count,
                                    int head_dim, uint16_t* out_keys, uint16_t* out_values) {
  const int pieces = head_dim / 8;
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= count * pieces) return;
  const int64_t position = index / pieces;
  const int piece = static_cast<int>(index % pieces);
  const int head = first_head + static_cast<int>(blockIdx.y);
  const uint32_t pair = __ldg(scales + int64_t(head) * scale_head_stride + position);
  const int64_t source = int64_t(head) * head_stride + position * head_dim + piece * 8;
  const int64_t target = (int64_t(blockIdx.y) * count + position) * head_dim + piece * 8;
  float x[8];
  unpack_fp8x8(__ldg(reinterpret_cast<const uint2*>(keys + source)), x);
  const float ks = key_scale_of(pair), vs = value_scale_of(pair);
  *reinterpret_cast<uint4*>(out_keys + target) =
      make_uint4(pack_bf16(x[0] * ks, x[1] * ks), pack_bf16(x[2] * ks, x[3] * ks), pack_bf16(x[4] * ks, x[5] * ks),
                 pack_bf16(x[6] * ks, x[7] * ks));
  unpack_fp8x8(__ldg(reinterpret_cast<const uint2*>(values + source)), x);
  *reinterpret_cast<uint4*>(out_values + target) =
      make_uint4(pack_bf16(x[0] * vs, x[1] * vs), pack_bf16(x[2] * vs, x[3] * vs), pack_bf16(x[4] * vs, x[5] * vs),
                 pack_bf16(x[6] * vs, x[7] * vs));
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

cudaError_t launch_kv_append_fp8(const float* qkv, int64_t stride, int tokens, int heads, int kv_heads, int head_dim,
                                 uint8_t* keys, uint8_t* values, int64_t head_stride, uint32_t* scales,
                                 int64_t scale_head_stride, int64_t start, cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  if (head_dim > 2 * kFp8Threads) return cudaErrorInvalidValue;
  kv_append_fp8_kernel<<<dim3(tokens, kv_heads), kFp8Threads, 0, stream>>>(
      qkv, stride, heads, kv_heads, head_dim, keys, values, head_stride, scales, scale_head_stride, start);
  return cudaGetLastError();
}

cudaError_t launch_kv_widen_fp8(const uint8_t* keys, const uint8_t* values, int64_t head_stride, const uint32_t* scales,
                                int64_t scale_head_stride, int first_head, int heads, int64_t count, int head_dim,
                                uint16_t* out_keys, uint16_t* out_values, cudaStream_t stream) {
  if (count <= 0 || heads <= 0) return cudaSuccess;
  if (head_dim % 16 != 0) return cudaErrorInvalidValue;
  constexpr int kThreads = 256;
  const int64_t items = count * (head_dim / 8);
  const dim3 grid(static_cast<unsigned>((items + kThreads - 1) / kThreads), static_cast<unsigned>(heads));
  kv_widen_fp8_kernel<<<grid, kThreads, 0, stream>>>(keys, values, head_stride, scales, scale_head_stride, first_head,
                                                     count, head_dim, out_keys, out_values);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
