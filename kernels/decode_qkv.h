// Launch parameters and launcher of kernels/decode_qkv.cu. Asynchronous on `stream`; returns
// the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// One token's bias_add + rope + kv_append + Quest page update in one launch:
// over qkv [heads + 2 * kv_heads][head_dim] in place, bias added to q, k and v (when non-null),
// q/k per-head RMSNorm (when non-null), RoPE of q and k at `position` (read from
// position_device instead when non-null); k and v go to keys / values [kv_head][head_stride]
// at row `position`, and the page of `position` gets its key min/max recomputed (key_min /
// key_max [kv_head][page_head_stride], pages of 16 rows; skipped when key_min is null). With an
// FP8 cache the bounds are of the stored values, rounded outwards to bf16.
struct DecodeQkvLaunch {
  float* qkv = nullptr;
  const float* bias = nullptr;
  int heads = 0, kv_heads = 0, head_dim = 0;
  const float* inv_freq = nullptr;  // [head_dim / 2]
  int64_t position = 0;
  const int64_t* position_device = nullptr;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  float eps = 0;
  void* keys = nullptr;  // bf16, or FP8 codes when `scales` is set (kernels/kv_fp8.cuh)
  void* values = nullptr;
  int64_t head_stride = 0;     // elements between KV heads of the cache (rows of head_dim)
  uint32_t* scales = nullptr;  // FP8: the rows' scale pairs [kv_head][scale_head_stride]
  int64_t scale_head_stride = 0;
  uint16_t* key_min = nullptr;
  uint16_t* key_max = nullptr;
  int64_t page_head_stride = 0;
};
cudaError_t launch_decode_qkv(const DecodeQkvLaunch& launch, cudaStream_t stream);

}  // namespace tidal::cuda
