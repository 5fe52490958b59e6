#include "cpu/quest_pages.h"

#include <algorithm>

#include "cpu/token_selection.h"

namespace tidal::cpu {

void page_bounds_reset(const float* key, int64_t head_dim, float* key_min, float* key_max) {
  for (int64_t i = 0; i < head_dim; ++i) key_min[i] = key_max[i] = key[i];
}

void page_bounds_extend(const float* key, int64_t head_dim, float* key_min, float* key_max) {
  for (int64_t i = 0; i < head_dim; ++i) {
    key_min[i] = std::min(key_min[i], key[i]);
    key_max[i] = std::max(key_max[i], key[i]);
  }
}

void page_bounds_rebuild(const float* keys, int64_t count, int64_t head_dim, float* key_min, float* key_max) {
  page_bounds_reset(keys, head_dim, key_min, key_max);
  for (int64_t t = 1; t < count; ++t) page_bounds_extend(keys + t * head_dim, head_dim, key_min, key_max);
}

float page_score_upper_bound(const float* q, const float* key_min, const float* key_max, int64_t head_dim) {
  float bound = 0.0f;
  for (int64_t i = 0; i < head_dim; ++i) bound += std::max(q[i] * key_min[i], q[i] * key_max[i]);
  return bound;
}

int64_t select_pages(const float* bounds, int64_t num_pages, int64_t page_budget, int32_t* out, int32_t* scratch) {
  if (num_pages <= 0 || page_budget <= 0) return 0;
  const int64_t others = select_top_positions(bounds, num_pages - 1, page_budget - 1, out, scratch);
  out[others] = static_cast<int32_t>(num_pages - 1);
  return others + 1;
}

}  // namespace tidal::cpu
