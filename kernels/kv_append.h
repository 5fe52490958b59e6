// Launchers of kernels/kv_append.cu. Asynchronous on `stream`; return the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// keys[h * head_stride + (start + t) * head_dim + i] = bf16(k of token t, head h), values likewise,
// from the fp32 qkv rows [tokens][stride] (q heads, then k heads, then v heads).
cudaError_t launch_kv_append(const float* qkv, int64_t stride, int tokens, int heads, int kv_heads, int head_dim,
                             uint16_t* keys, uint16_t* values, int64_t head_stride, int64_t start, cudaStream_t stream);

// The same into an FP8 cache (kernels/kv_fp8.cuh): codes at the same offsets (bytes), and the
// row's scale pair at scales[h * scale_head_stride + start + t]. head_dim <= 256.
cudaError_t launch_kv_append_fp8(const float* qkv, int64_t stride, int tokens, int heads, int kv_heads, int head_dim,
                                 uint8_t* keys, uint8_t* values, int64_t head_stride, uint32_t* scales,
                                 int64_t scale_head_stride, int64_t start, cudaStream_t stream);

// Positions [0, count) of KV heads [first_head, first_head + heads) of an FP8 cache layer widened
// to bf16: out_keys[(h - first_head) * count * head_dim + p * head_dim + i] = code * scale
// rounded to bf16, values likewise (prefill attention reads bf16 tiles).
cudaError_t launch_kv_widen_fp8(const uint8_t* keys, const uint8_t* values, int64_t head_stride, const uint32_t* scales,
                                int64_t scale_head_stride, int first_head, int heads, int64_t count, int head_dim,
                                uint16_t* out_keys, uint16_t* out_values, cudaStream_t stream);

}  // namespace tidal::cuda
