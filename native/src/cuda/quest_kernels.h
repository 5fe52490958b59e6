// Quest on the GPU: page metadata (per 16-token page and KV head, the element-wise min and
// max of the keys), page upper-bound scores per query head, and the expansion of selected
// pages into positions for sparse attention.
//
// One decode step of a Quest layer:
//   quest_page_scores   bounds[h][page] = sum_i max(q_i min_i, q_i max_i) / sqrt(head_dim)
//   select_top_k        over pages [0, num_pages - 1), keep page_budget - 1, append the last
//                       page (it holds the current token)
//   expand_pages        pages -> positions (the last page only up to seq_len)
//   decode_attention    sparse, per query head, tidal::quest_position_count() (engine/decoder.h) positions per list
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/attention_kernels.h"

namespace tidal::cuda {

constexpr int64_t kQuestPageTokens = 16;

// Device bf16 arrays [kv_head][page][head_dim]: element (j, page, i) at
// key_min[j * head_stride + page * head_dim + i]. head_stride is a multiple of 8, >= max_pages *
// head_dim.
struct QuestPageTable {
  void* key_min = nullptr;
  void* key_max = nullptr;
  int64_t head_stride = 0;
  int64_t max_pages = 0;
};

inline int64_t quest_page_count(int64_t seq_len) { return (seq_len + kQuestPageTokens - 1) / kQuestPageTokens; }

// Recomputes the pages holding positions [first_position, end_position) from the keys in
// `kv`: after appending tokens, only the last page(s) are touched. Positions below
// end_position of those pages must already be in the cache.
void update_quest_pages(const KvLayerView& kv, const QuestPageTable& pages, int64_t first_position,
                        int64_t end_position, cudaStream_t stream);

struct QuestScoreArgs {
  const void* query = nullptr;  // [num_heads][head_dim], 16-byte aligned
  ElementType query_type = ElementType::F32;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  QuestPageTable pages;
  int64_t num_pages = 0;
  float* bounds = nullptr;  // [num_heads][bounds_stride]
  int64_t bounds_stride = 0;
};

void quest_page_scores(const QuestScoreArgs& args, cudaStream_t stream);

// positions[r][j * 16 + t] = pages[r][j] * 16 + t for every listed page j, skipping the
// positions >= seq_len (only the last listed page may be partial: pages ascending, the last
// page of the cache last).
void expand_pages(const int32_t* pages, int rows, int64_t page_stride, int64_t pages_per_row, int64_t seq_len,
                  int32_t* positions, int64_t position_stride, cudaStream_t stream);

}  // namespace tidal::cuda
