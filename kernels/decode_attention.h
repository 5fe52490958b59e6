// Launch parameters, plan queries and launcher of kernels/decode_attention.cu. The host-side
// wrappers (native/src/cuda/attention_kernels.cpp) check the arguments and plan the splits;
// the launcher only picks a template instance and launches it, returning the launch's error
// code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda::detail {

enum class PositionMode : uint8_t { Dense, PerKvHead, PerQueryHead };

// Blocks of the split kernel have this many threads.
constexpr int kAttentionThreads = 128;
// Splits per head at most (bounds the workspace).
constexpr int kMaxSplits = 256;

struct AttentionLaunch {
  const void* query = nullptr;
  bool query_bf16 = false;
  const void* keys = nullptr;  // bf16 bits, or FP8 codes when `scales` is set
  const void* values = nullptr;
  int64_t key_head_stride = 0, key_row_stride = 0;  // elements
  int64_t value_head_stride = 0, value_row_stride = 0;
  // FP8 cache (kernels/kv_fp8.cuh): [kv_head][scale_head_stride] scale pairs of the rows.
  const uint32_t* scales = nullptr;
  int64_t scale_head_stride = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int group = 1;  // query heads per KV head
  int head_dim = 0;
  PositionMode mode = PositionMode::Dense;
  int64_t count = 0;  // positions attended per head (seq_len when dense)
  // Dense only, when set (replayed decode graphs): seq_len read by the kernel; count is then
  // an upper bound that the split plan was made for.
  const int64_t* count_device = nullptr;
  const int32_t* positions = nullptr;
  int64_t position_stride = 0;
  float* scores = nullptr;  // dense only, optional
  int64_t score_stride = 0;
  float scale_log2 = 0;  // log2(e) / sqrt(head_dim)
  // Plan: blockIdx.x = split (split_rows positions each), blockIdx.y = KV head (dense, per
  // KV head) or query head (per query head).
  int num_splits = 1;
  int64_t split_rows = 0;
  float* partial_acc = nullptr;    // [num_heads][num_splits][head_dim]
  float* partial_stats = nullptr;  // [num_heads][num_splits][2]: running max (log2 units), sum
  // [units] finished splits per unit, zero between launches (the last block resets its own).
  unsigned* split_counters = nullptr;
  void* out = nullptr;
  bool out_bf16 = false;
};

// Resident blocks per SM of the split kernel that serves this launch's shape (the dense
// variant's figure is used for the per-KV-head one too, so that a sparse list covering every
// position splits exactly as dense attention does and gives bitwise the same result).
int attention_blocks_per_sm(const AttentionLaunch& launch);
// Rows one iteration of a block covers (split_rows is rounded to a multiple of it).
int attention_rows_per_step(const AttentionLaunch& launch);
cudaError_t launch_decode_attention(const AttentionLaunch& launch, cudaStream_t stream);

}  // namespace tidal::cuda::detail
