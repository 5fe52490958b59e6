// Launch parameters and launcher of kernels/rope.cu. Asynchronous on `stream`; returns the
// launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// In place over qkv [tokens][stride] (q heads, then k heads, then v heads of head_dim each):
// optional per-head RMSNorm of q and k (Qwen3, q_norm/k_norm non-null), then RoPE (rotate-half
// pairs (i, i + head_dim/2), angle = float(start + t) * inv_freq[i]). Also writes q as bf16
// to q_bf16 [tokens][heads * head_dim] when non-null.
struct RopeLaunch {
  float* qkv = nullptr;
  int64_t stride = 0;
  int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  const float* inv_freq = nullptr;  // [head_dim / 2]
  int64_t start = 0;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  float eps = 0;
  uint16_t* q_bf16 = nullptr;
};
cudaError_t launch_rope(const RopeLaunch& launch, cudaStream_t stream);

}  // namespace tidal::cuda
