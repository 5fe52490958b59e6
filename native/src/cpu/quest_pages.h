// Quest page metadata and page selection. For every page of kKvPageTokens positions and
// every KV head, the element-wise minimum and maximum of the page's keys bound any q . k in
// the page from above:
//   q . k = sum_i q_i k_i <= sum_i max(q_i * min_i, q_i * max_i)
// because q_i k_i is linear in k_i on [min_i, max_i], so its largest value sits at an end.
// Decoding attends over the pages with the largest bounds.
#pragma once
#include <cstdint>

namespace tidal::cpu {

// Starts a page's bounds from its first key.
void page_bounds_reset(const float* key, int64_t head_dim, float* key_min, float* key_max);

// Widens a page's bounds by one more key.
void page_bounds_extend(const float* key, int64_t head_dim, float* key_min, float* key_max);

// Bounds of `count` >= 1 keys stored as [count][head_dim].
void page_bounds_rebuild(const float* keys, int64_t count, int64_t head_dim, float* key_min, float* key_max);

// sum_i max(q_i * min_i, q_i * max_i).
float page_score_upper_bound(const float* q, const float* key_min, const float* key_max, int64_t head_dim);

// Chooses min(page_budget, num_pages) pages: the last page (it holds the current token)
// always, plus the page_budget - 1 best of the others by bound (ties: lower page first).
// Writes them ascending to `out` and returns how many. `scratch` holds num_pages int32.
int64_t select_pages(const float* bounds, int64_t num_pages, int64_t page_budget, int32_t* out, int32_t* scratch);

}  // namespace tidal::cpu
