// The seam between the host-side wrappers (native/src/cuda/*.cpp: argument checks, launch
// planning) and the kernel files (kernels/*.cu: templates and their dispatch). Everything
// here is already validated and planned; the launchers only pick a template instance and
// launch it, returning the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda::detail {

// ---- decode attention (kernels/decode_attention.cu) -------------------------------------

enum class PositionMode : uint8_t { Dense, PerKvHead, PerQueryHead };

// Blocks of the split kernel have this many threads.
constexpr int kAttentionThreads = 128;
// Splits per head at most (bounds the workspace).
constexpr int kMaxSplits = 256;

struct AttentionLaunch {
  const void* query = nullptr;
  bool query_bf16 = false;
  const uint16_t* keys = nullptr;  // bf16 bits
  const uint16_t* values = nullptr;
  int64_t key_head_stride = 0, key_row_stride = 0;
  int64_t value_head_stride = 0, value_row_stride = 0;
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

// ---- top-k selection (kernels/topk_select.cu) --------------------------------------------

enum class GroupReduce : uint8_t { None, Max, Sum };

// Blocks per row: one thread-block cluster.
constexpr int kTopKClusterSize = 8;
constexpr int kTopKThreads = 512;
// Candidate positions must fit the 24 low bits of the 56-bit (key, position) sort value.
constexpr int64_t kTopKMaxCandidates = int64_t(1) << 24;

struct TopKLaunch {
  const float* scores = nullptr;
  int64_t score_stride = 0;
  int rows = 0;
  int group = 1;
  GroupReduce reduce = GroupReduce::None;
  int64_t candidates = 0;
  int64_t k = 0;  // < candidates (the caller handles k >= candidates)
  int32_t* out = nullptr;
  int64_t out_stride = 0;
  int64_t append_position = -1;
  // Keys of a block's slice are cached in dynamic shared memory when they fit.
  int64_t slice = 0;  // candidates per block
  bool keys_in_shared = false;
  // When set (replayed decode graphs): the candidate count, read by the kernel; candidates and
  // slice above are then upper bounds, and the appended position is the candidate count.
  const int64_t* candidates_device = nullptr;
};

cudaError_t launch_select_top_k(const TopKLaunch& launch, cudaStream_t stream);
// Writes 0..candidates-1 (and the appended position) to every row: k >= candidates.
cudaError_t launch_select_all(const TopKLaunch& launch, cudaStream_t stream);
// Largest dynamic shared memory select_top_k may be given (set once per device).
cudaError_t prepare_select_top_k(int max_shared_bytes);
// Clusters of the selection kernel that fit on the GPU at once (rows beyond wait), -1 if unknown.
int top_k_max_active_clusters(bool keys_in_shared, size_t shared_bytes);

// ---- Quest (kernels/quest_pages.cu) -------------------------------------------------------

constexpr int kQuestPageTokens = 16;

struct QuestUpdateLaunch {
  const uint16_t* keys = nullptr;
  int64_t key_head_stride = 0, key_row_stride = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  uint16_t* key_min = nullptr;  // [kv_head][page][head_dim] with page_head_stride per head
  uint16_t* key_max = nullptr;
  int64_t page_head_stride = 0;
  int64_t first_page = 0;
  int64_t page_count = 0;
  int64_t end_position = 0;  // positions >= end_position are not part of any page yet
};

struct QuestScoreLaunch {
  const void* query = nullptr;
  bool query_bf16 = false;
  int num_heads = 0;
  int num_kv_heads = 0;
  int group = 1;
  int head_dim = 0;
  const uint16_t* key_min = nullptr;
  const uint16_t* key_max = nullptr;
  int64_t page_head_stride = 0;
  int64_t num_pages = 0;
  float scale = 0;
  float* bounds = nullptr;  // [num_heads][bounds_stride]
  int64_t bounds_stride = 0;
  int pages_per_block = 0;
};

struct PageExpandLaunch {
  const int32_t* pages = nullptr;
  int64_t page_stride = 0;
  int rows = 0;
  int64_t pages_per_row = 0;
  int64_t seq_len = 0;
  int32_t* positions = nullptr;
  int64_t position_stride = 0;
};

cudaError_t launch_update_quest_pages(const QuestUpdateLaunch& launch, cudaStream_t stream);
cudaError_t launch_quest_page_scores(const QuestScoreLaunch& launch, cudaStream_t stream);
cudaError_t launch_expand_pages(const PageExpandLaunch& launch, cudaStream_t stream);

}  // namespace tidal::cuda::detail
