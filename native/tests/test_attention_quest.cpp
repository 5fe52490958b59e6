// Quest: page key bounds (incremental, rebuilt after trim), the upper bound property on
// random data, and page selection.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cpu/quest_pages.h"
#include "harness.h"
#include "kv_cache_fixture.h"

using namespace tidal;
using namespace tidal_test;

TIDAL_TEST(attention_quest_bound_is_at_least_every_dot_product_in_the_page) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    const int64_t d = 4 + static_cast<int64_t>(seed % 29), tokens = 1 + static_cast<int64_t>(seed % 16);
    const auto keys = random_floats(static_cast<size_t>(d * tokens), seed, -3.0f, 3.0f);
    const auto q = random_floats(static_cast<size_t>(d), seed + 1000, -3.0f, 3.0f);
    std::vector<float> kmin(static_cast<size_t>(d)), kmax(static_cast<size_t>(d));
    cpu::page_bounds_rebuild(keys.data(), tokens, d, kmin.data(), kmax.data());
    const double bound = cpu::page_score_upper_bound(q.data(), kmin.data(), kmax.data(), d);
    double best = -INFINITY, magnitude = 0.0;
    for (int64_t t = 0; t < tokens; ++t) {
      double dot = 0.0;
      for (int64_t i = 0; i < d; ++i) {
        dot += static_cast<double>(q[i]) * keys[t * d + i];
        magnitude += std::fabs(static_cast<double>(q[i]) * keys[t * d + i]);
      }
      best = std::fmax(best, dot);
    }
    CHECK(bound >= best - 1e-6 * magnitude);
    // The bound is tight for a single key.
    if (tokens == 1) CHECK_NEAR(bound, best, 1e-5 * magnitude);
  }
}

TIDAL_TEST(attention_quest_page_bounds_are_maintained_on_append_and_trim) {
  FilledKvCache f = make_filled_kv_cache(2, 2, 8, 45, 17);
  auto check_pages = [&](const cpu::PagedKvCache& cache, int64_t length) {
    for (int64_t page = 0; page * 16 < length; ++page) {
      const int64_t count = std::min<int64_t>(16, length - page * 16);
      for (int64_t l = 0; l < 2; ++l)
        for (int64_t h = 0; h < 2; ++h) {
          std::vector<float> kmin(8), kmax(8);
          cpu::page_bounds_rebuild(f.key(l, h, page * 16), count, 8, kmin.data(), kmax.data());
          for (int i = 0; i < 8; ++i) {
            CHECK(cache.key_min(page, l, h)[i] == kmin[i]);
            CHECK(cache.key_max(page, l, h)[i] == kmax[i]);
          }
        }
    }
  };
  check_pages(*f.cache, 45);
  // A fork inside page 1 gets that page's bounds over its own 5 tokens...
  auto fork = f.cache->fork(21);
  check_pages(static_cast<cpu::PagedKvCache&>(*fork), 21);
  // ...while the source keeps its own.
  check_pages(*f.cache, 45);
  f.cache->trim(37);
  check_pages(*f.cache, 37);
  f.cache->trim(32);
  check_pages(*f.cache, 32);
}

TIDAL_TEST(attention_quest_selects_last_page_and_best_others) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const int64_t pages = 1 + static_cast<int64_t>(seed % 12);
    auto bounds = random_floats(static_cast<size_t>(pages), seed, -5.0f, 5.0f);
    for (int64_t budget : {int64_t{1}, int64_t{2}, int64_t{4}, pages, pages + 2}) {
      std::vector<int32_t> out(static_cast<size_t>(pages)), scratch(static_cast<size_t>(pages));
      const int64_t chosen = cpu::select_pages(bounds.data(), pages, budget, out.data(), scratch.data());
      out.resize(static_cast<size_t>(chosen));
      std::vector<int32_t> others(static_cast<size_t>(pages - 1));
      std::iota(others.begin(), others.end(), 0);
      std::stable_sort(others.begin(), others.end(), [&](int32_t a, int32_t b) { return bounds[a] > bounds[b]; });
      others.resize(static_cast<size_t>(std::min<int64_t>(budget - 1, pages - 1)));
      others.push_back(static_cast<int32_t>(pages - 1));
      std::sort(others.begin(), others.end());
      CHECK(out == others);
    }
  }
}
