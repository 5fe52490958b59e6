// Launcher of kernels/kv_append.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// keys[h * head_stride + (start + t) * head_dim + i] = bf16(k of token t, head h), values likewise,
// from the fp32 qkv rows [tokens][stride] (q heads, then k heads, then v heads).
cudaError_t launch_kv_append(const float* qkv, int64_t stride, int tokens, int heads, int kv_heads, int head_dim,
                             uint16_t* keys, uint16_t* values, int64_t head_stride, int64_t start, cudaStream_t stream);

}  // namespace tidal::cuda
