// Launch parameters, plan and launcher of kernels/prefill_attention.cu (which runs
// kernels/prefill_attention_hopper.cu where the device has it). Asynchronous on `stream`;
// returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::cuda {

// Causal attention of `tokens` queries at positions start .. start + tokens - 1 over the
// cache positions [0, start + tokens) (the new tokens' K/V already appended). q [tokens][heads
// * head_dim] bf16, K/V [kv_head][head_stride] bf16 rows of head_dim, out [tokens][heads *
// head_dim] bf16. Tensor cores (bf16 mma, fp32 accumulators), online softmax in fp32.
//
// Which prefill attention kernel a launch runs. Auto: the Hopper kernel (wgmma, TMA, warp
// specialisation; kernels/prefill_attention_hopper.cu) where the device and the build have
// it, else the mma.sync kernel; $TIDAL_PREFILL_KERNEL=mma or =wgmma overrides Auto (A/B runs).
enum class PrefillKernel { Auto, MmaSync, Wgmma };

struct PrefillAttentionLaunch {
  const uint16_t* q = nullptr;
  const uint16_t* keys = nullptr;
  const uint16_t* values = nullptr;
  int64_t head_stride = 0;
  int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  // Heads in a row of q and out; 0: `heads`. A launch over some of the heads (an FP8 cache's KV
  // heads widened a few at a time) passes q and out at its first query head, K/V holding its
  // kv_heads, and the full row here.
  int row_heads = 0;
  int64_t start = 0;
  float scale = 0;
  uint16_t* out = nullptr;
  int warps = 4;  // mma.sync kernel: per block (16 query rows each): 4 (measured default) or 8 (ldmatrix K loads)
  PrefillKernel kernel = PrefillKernel::Auto;
  // Split-KV for short chunks against long caches (kernels/prefill_attention.cu): 0 lets
  // prefill_attention_splits() decide, 1 is one pass, N > 1 forces N key parts (tests, bench).
  // Split launches need split_scratch_bytes >= prefill_attention_scratch_bytes() of device
  // memory; without it an undecided launch runs in one pass and a forced one fails.
  int splits = 0;
  void* split_scratch = nullptr;
  size_t split_scratch_bytes = 0;
  // When set: each (token, head) row's log-sum-exp (natural log) of its scaled scores over the
  // positions it attends, lse[token * row_heads + head], like out (a sparse prefill's selection layer ranks
  // positions by the log-softmax weights; kernels/sparse_prefill.h). The combine kernel writes
  // it, so such a launch runs in 2 parts at least and needs the split scratch.
  float* lse = nullptr;
};
cudaError_t launch_prefill_attention(const PrefillAttentionLaunch& launch, cudaStream_t stream);
// The kernel a launch runs (Auto resolved): MmaSync or Wgmma.
PrefillKernel prefill_attention_kernel(const PrefillAttentionLaunch& launch);
// The key parts a launch runs with (at least 2 when it asks for lse): its `splits` when set,
// else $TIDAL_PREFILL_SPLITS when set, else 1 for chunks of 1024+ queries or caches under 2048 keys, else enough parts
// for 2 to 4 waves of resident blocks (the fullest last wave), at least 1024 keys a part, <= 64. Blocks and tiles are
// those of the kernel the launch runs.
int prefill_attention_splits(const PrefillAttentionLaunch& launch);
// Scratch bytes for `splits` parts: splits * tokens * heads * (head_dim + 2) floats.
size_t prefill_attention_scratch_bytes(const PrefillAttentionLaunch& launch, int splits);

}  // namespace tidal::cuda
