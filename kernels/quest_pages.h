// Launch parameters and launchers of kernels/quest_pages.cu. The host-side wrappers
// (native/src/cuda/quest_kernels.cpp) check the arguments and plan the launches; the
// launchers only launch, returning the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda::detail {

constexpr int kQuestPageTokens = 16;

struct QuestUpdateLaunch {
  const void* keys = nullptr;  // bf16, or FP8 codes when `scales` is set (bounds rounded outwards)
  int64_t key_head_stride = 0, key_row_stride = 0;
  const uint32_t* scales = nullptr;
  int64_t scale_head_stride = 0;
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
