#include "cpu/token_selection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace tidal::cpu {

namespace {

// NaN ranks below every number, -inf included.
inline bool ranks_before(float a, int32_t ia, float b, int32_t ib) {
  const bool a_nan = std::isnan(a), b_nan = std::isnan(b);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

}  // namespace

int64_t select_top_positions(const float* scores, int64_t count, int64_t keep, int32_t* out, int32_t* scratch) {
  if (keep <= 0 || count <= 0) return 0;
  if (keep >= count) {
    for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(i);
    return count;
  }
  for (int64_t i = 0; i < count; ++i) scratch[i] = static_cast<int32_t>(i);
  auto better = [scores](int32_t a, int32_t b) { return ranks_before(scores[a], a, scores[b], b); };
  std::nth_element(scratch, scratch + keep, scratch + count, better);
  std::copy(scratch, scratch + keep, out);
  std::sort(out, out + keep);
  return keep;
}

void reduce_group_scores(const float* scores, int64_t stride, int64_t first_head, int64_t group_size, int64_t count,
                         GroupSelection reduce, float* out) {
  const float* first = scores + first_head * stride;
  std::copy(first, first + count, out);
  for (int64_t g = 1; g < group_size; ++g) {
    const float* row = scores + (first_head + g) * stride;
    if (reduce == GroupSelection::KvHeadSum) {
      for (int64_t i = 0; i < count; ++i) out[i] += row[i];
    } else {
      for (int64_t i = 0; i < count; ++i) out[i] = std::max(out[i], row[i]);
    }
  }
}

int64_t select_positions_for_heads(const float* scores, int64_t stride, int64_t num_heads, int64_t group_size,
                                   int64_t count, int64_t keep, GroupSelection reduce, int32_t* out) {
  std::vector<int32_t> scratch(static_cast<size_t>(std::max<int64_t>(count, 1)));
  std::vector<float> combined(static_cast<size_t>(std::max<int64_t>(count, 1)));
  int64_t kept = 0;
  if (reduce == GroupSelection::PerQueryHead) {
    for (int64_t h = 0; h < num_heads; ++h)
      kept = select_top_positions(scores + h * stride, count, keep, out + h * keep, scratch.data());
    return kept;
  }
  for (int64_t first = 0; first < num_heads; first += group_size) {
    reduce_group_scores(scores, stride, first, group_size, count, reduce, combined.data());
    kept = select_top_positions(combined.data(), count, keep, out + first * keep, scratch.data());
    for (int64_t g = 1; g < group_size; ++g)
      std::copy(out + first * keep, out + first * keep + kept, out + (first + g) * keep);
  }
  return kept;
}

}  // namespace tidal::cpu
