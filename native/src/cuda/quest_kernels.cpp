// Argument checks and launch planning of the Quest kernels (kernels/quest_pages.cu).
#include "cuda/quest_kernels.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/cuda_error.h"
#include "kernels/device_info.h"
#include "kernels/quest_pages.h"

namespace tidal::cuda {

namespace {

void require(bool condition, const char* function, const std::string& message) {
  if (!condition) throw std::invalid_argument(std::string(function) + ": " + message);
}

bool aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

}  // namespace

void update_quest_pages(const KvLayerView& kv, const QuestPageTable& pages, int64_t first_position,
                        int64_t end_position, cudaStream_t stream) {
  const char* name = "update_quest_pages";
  require(kv.head_dim == 64 || kv.head_dim == 128, name, "head_dim must be 64 or 128");
  require(kv.keys && pages.key_min && pages.key_max, name, "keys and page tables must be set");
  require(aligned16(kv.keys) && aligned16(pages.key_min) && aligned16(pages.key_max), name,
          "keys and page tables must be 16-byte aligned");
  require(kv.key_row_stride % 8 == 0 && kv.key_head_stride % 8 == 0 && pages.head_stride % 8 == 0, name,
          "strides must be multiples of 8 elements");
  require(0 <= first_position && first_position <= end_position, name, "need 0 <= first_position <= end_position");
  if (first_position == end_position) return;
  detail::QuestUpdateLaunch launch;
  launch.keys = kv.keys;
  launch.scales = kv.scales;
  launch.scale_head_stride = kv.scale_head_stride;
  launch.key_head_stride = kv.key_head_stride;
  launch.key_row_stride = kv.key_row_stride;
  launch.num_kv_heads = kv.num_kv_heads;
  launch.head_dim = kv.head_dim;
  launch.key_min = static_cast<uint16_t*>(pages.key_min);
  launch.key_max = static_cast<uint16_t*>(pages.key_max);
  launch.page_head_stride = pages.head_stride;
  launch.first_page = first_position / kQuestPageTokens;
  launch.page_count = (end_position - 1) / kQuestPageTokens - launch.first_page + 1;
  launch.end_position = end_position;
  require(launch.first_page + launch.page_count <= pages.max_pages, name, "page table too small");
  throw_if_failed(detail::launch_update_quest_pages(launch, stream), "launching the Quest page update");
}

void quest_page_scores(const QuestScoreArgs& args, cudaStream_t stream) {
  const char* name = "quest_page_scores";
  require(args.head_dim == 64 || args.head_dim == 128, name, "head_dim must be 64 or 128");
  require(args.num_kv_heads > 0 && args.num_heads % args.num_kv_heads == 0 && args.num_heads / args.num_kv_heads <= 8,
          name, "num_heads must be 1 to 8 times num_kv_heads");
  require(args.query && args.pages.key_min && args.pages.key_max && args.bounds, name, "pointers must be set");
  require(aligned16(args.query) && aligned16(args.pages.key_min) && aligned16(args.pages.key_max), name,
          "query and page tables must be 16-byte aligned");
  require(args.num_pages > 0 && args.num_pages <= args.pages.max_pages, name, "num_pages out of range");
  require(args.bounds_stride >= args.num_pages, name, "bounds_stride must be >= num_pages");
  detail::QuestScoreLaunch launch;
  launch.query = args.query;
  launch.query_bf16 = args.query_type == ElementType::BF16;
  launch.num_heads = args.num_heads;
  launch.num_kv_heads = args.num_kv_heads;
  launch.group = args.num_heads / args.num_kv_heads;
  launch.head_dim = args.head_dim;
  launch.key_min = static_cast<const uint16_t*>(args.pages.key_min);
  launch.key_max = static_cast<const uint16_t*>(args.pages.key_max);
  launch.page_head_stride = args.pages.head_stride;
  launch.num_pages = args.num_pages;
  launch.scale = float(1.0 / std::sqrt(double(args.head_dim)));
  launch.bounds = args.bounds;
  launch.bounds_stride = args.bounds_stride;
  // Enough blocks for about 4 per SM, each a whole number of passes of its row groups.
  const int64_t pages_per_pass = 128 / (args.head_dim / 8);
  const int64_t target_blocks = int64_t(current_device_info().sm_count) * 4;
  int64_t per_block = (args.num_pages * args.num_kv_heads + target_blocks - 1) / target_blocks;
  per_block = std::max<int64_t>(pages_per_pass, (per_block + pages_per_pass - 1) / pages_per_pass * pages_per_pass);
  launch.pages_per_block = static_cast<int>(per_block);
  throw_if_failed(detail::launch_quest_page_scores(launch, stream), "launching Quest page scores");
}

void expand_pages(const int32_t* pages, int rows, int64_t page_stride, int64_t pages_per_row, int64_t seq_len,
                  int32_t* positions, int64_t position_stride, cudaStream_t stream) {
  const char* name = "expand_pages";
  require(rows >= 0 && pages_per_row >= 0 && page_stride >= pages_per_row, name, "bad page list shape");
  require(position_stride >= pages_per_row * kQuestPageTokens, name, "position_stride too small");
  if (rows == 0 || pages_per_row == 0) return;
  detail::PageExpandLaunch launch;
  launch.pages = pages;
  launch.page_stride = page_stride;
  launch.rows = rows;
  launch.pages_per_row = pages_per_row;
  launch.seq_len = seq_len;
  launch.positions = positions;
  launch.position_stride = position_stride;
  throw_if_failed(detail::launch_expand_pages(launch, stream), "launching page expansion");
}

}  // namespace tidal::cuda
