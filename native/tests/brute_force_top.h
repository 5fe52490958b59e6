// The reference ranking of the selection tests: the `keep` best positions of `scores` by
// (score descending, position ascending), returned ascending.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace tidal_test {

inline std::vector<int32_t> brute_force_top(const std::vector<double>& scores, int64_t keep) {
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  order.resize(static_cast<size_t>(std::min<int64_t>(keep, static_cast<int64_t>(scores.size()))));
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace tidal_test
