// The kernels of a sparse prefill pass (AttentionOptions::sparse_prefill) beside the dense
// prefill attention (kernels/prefill_attention.h): the scores a selection layer ranks the
// positions before the pass by, and the gather of each list's K/V rows into a compact cache
// that the prefill attention then reads. Asynchronous on `stream`; each returns the launch's
// error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// For query head h and position j < candidates:
//   out[h * out_stride + j] = max over the pass's tokens t of (scale * q_t,h . k_j - lse[t][h])
// the highest log-softmax weight (natural log) any token of the pass gives position j. lse is
// each (token, head) row's log-sum-exp of its scaled scores over every position it attends
// (PrefillAttentionLaunch::lse). q [tokens][q_row_heads * head_dim] bf16 (the head's query at
// h * head_dim), K [kv_head][head_stride] bf16 rows of head_dim, lse [tokens][heads]. Tensor
// cores (bf16 products, fp32 sums); head_dim 64 or 128.
struct PassScoresLaunch {
  const uint16_t* q = nullptr;
  int q_row_heads = 0;  // heads in a row of q; 0: heads
  const uint16_t* keys = nullptr;
  int64_t head_stride = 0;
  const float* lse = nullptr;
  int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t candidates = 0;
  float scale = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
};
cudaError_t launch_pass_scores(const PassScoresLaunch& launch, cudaStream_t stream);

// A compact cache of `lists` heads with `keep + pass_tokens` rows each: row e < keep of head r
// is the cache's row positions[r * list_stride + e] of KV head r / lists_per_kv_head, row keep +
// t is the pass's token t (cache row pass_start + t) of that KV head. K and V alike, bf16 rows of
// head_dim: out_keys / out_values [lists][keep + pass_tokens][head_dim].
struct GatherListsLaunch {
  const uint16_t* keys = nullptr;
  const uint16_t* values = nullptr;
  int64_t head_stride = 0;
  const int32_t* positions = nullptr;
  int64_t list_stride = 0;
  int lists = 0, lists_per_kv_head = 1, head_dim = 0;
  int64_t keep = 0, pass_start = 0, pass_tokens = 0;
  uint16_t* out_keys = nullptr;
  uint16_t* out_values = nullptr;
};
cudaError_t launch_gather_lists(const GatherListsLaunch& launch, cudaStream_t stream);

}  // namespace tidal::cuda
