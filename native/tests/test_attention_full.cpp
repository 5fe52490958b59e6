// Attention of one query over a paged KV cache: dense against a float64 reference, and the
// position-list form (used by tidal and quest) against dense and against the reference.
#include <cmath>
#include <vector>

#include "cpu/attention.h"
#include "cpu/simd_support.h"
#include "harness.h"
#include "kv_cache_fixture.h"

using namespace tidal;
using namespace tidal_test;

namespace {

// Naive float64 attention over the listed positions of one layer/head.
std::vector<double> naive_attention(const FilledKvCache& f, int64_t layer, int64_t head, const std::vector<float>& q,
                                    const std::vector<int32_t>& positions, double scale) {
  const int64_t d = f.layout.head_dim;
  std::vector<double> s(positions.size());
  double mx = -INFINITY;
  for (size_t i = 0; i < positions.size(); ++i) {
    double dot = 0.0;
    for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(q[j]) * f.key(layer, head, positions[i])[j];
    s[i] = dot * scale;
    mx = std::fmax(mx, s[i]);
  }
  double sum = 0.0;
  for (double& e : s) sum += (e = std::exp(e - mx));
  std::vector<double> out(static_cast<size_t>(d), 0.0);
  for (size_t i = 0; i < positions.size(); ++i)
    for (int64_t j = 0; j < d; ++j) out[j] += s[i] / sum * f.value(layer, head, positions[i])[j];
  return out;
}

}  // namespace

TIDAL_TEST(attention_dense_decode_matches_naive_float64) {
  for (bool simd : {false, true}) {
    const bool previous = cpu::set_simd_enabled(simd);
    for (int64_t head_dim : {8, 20, 64}) {
      // 45 positions: two full pages and a partial third.
      FilledKvCache f = make_filled_kv_cache(2, 3, head_dim, 45, 10 + head_dim);
      const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
      const auto q = random_floats(static_cast<size_t>(head_dim), 20 + head_dim, -2.0f, 2.0f);
      for (int64_t layer = 0; layer < 2; ++layer)
        for (int64_t head = 0; head < 3; ++head)
          for (int64_t count : {1, 16, 17, 45}) {
            std::vector<float> scratch(static_cast<size_t>(count)), out(static_cast<size_t>(head_dim));
            cpu::attend(q.data(), f.cache->head_view(layer, head), nullptr, count, scale, scratch.data(), out.data());
            std::vector<int32_t> all(static_cast<size_t>(count));
            for (int64_t i = 0; i < count; ++i) all[i] = static_cast<int32_t>(i);
            const auto expected = naive_attention(f, layer, head, q, all, scale);
            for (int64_t j = 0; j < head_dim; ++j) CHECK_NEAR(out[j], expected[j], 2e-6);
          }
    }
    cpu::set_simd_enabled(previous);
  }
}

TIDAL_TEST(attention_over_every_position_listed_equals_dense_bitwise) {
  FilledKvCache f = make_filled_kv_cache(1, 2, 32, 70, 3);
  const auto q = random_floats(32, 4, -2.0f, 2.0f);
  std::vector<int32_t> all(70);
  for (int i = 0; i < 70; ++i) all[i] = i;
  for (int64_t head = 0; head < 2; ++head) {
    std::vector<float> scratch(70), dense(32), listed(32);
    cpu::attend(q.data(), f.cache->head_view(0, head), nullptr, 70, 0.17f, scratch.data(), dense.data());
    cpu::attend(q.data(), f.cache->head_view(0, head), all.data(), 70, 0.17f, scratch.data(), listed.data());
    CHECK(bitwise_equal(dense, listed));
  }
}

TIDAL_TEST(attention_over_a_position_subset_matches_naive_float64) {
  FilledKvCache f = make_filled_kv_cache(1, 1, 16, 60, 8);
  const auto q = random_floats(16, 9, -2.0f, 2.0f);
  const std::vector<int32_t> subset = {0, 3, 15, 16, 17, 31, 40, 59};
  std::vector<float> scratch(subset.size()), out(16);
  cpu::attend(q.data(), f.cache->head_view(0, 0), subset.data(), static_cast<int64_t>(subset.size()), 0.25f,
              scratch.data(), out.data());
  const auto expected = naive_attention(f, 0, 0, q, subset, 0.25);
  for (int j = 0; j < 16; ++j) CHECK_NEAR(out[j], expected[j], 2e-6);

  // The scores alone are the scaled dot products, in list order.
  std::vector<float> scores(subset.size());
  cpu::attention_scores(q.data(), f.cache->head_view(0, 0), subset.data(), static_cast<int64_t>(subset.size()), 0.25f,
                        scores.data());
  for (size_t i = 0; i < subset.size(); ++i) {
    double dot = 0.0;
    for (int j = 0; j < 16; ++j) dot += static_cast<double>(q[j]) * f.key(0, 0, subset[i])[j];
    CHECK_NEAR(scores[i], dot * 0.25, 1e-6);
  }
}

TIDAL_TEST(attention_grouped_heads_equal_one_head_at_a_time_bitwise) {
  FilledKvCache f = make_filled_kv_cache(1, 1, 24, 50, 12);
  const int64_t heads = 5;
  const auto q = random_floats(static_cast<size_t>(heads * 24), 13, -2.0f, 2.0f);
  const std::vector<int32_t> subset = {1, 2, 8, 16, 33, 49};
  for (bool listed : {false, true}) {
    const int32_t* positions = listed ? subset.data() : nullptr;
    const int64_t count = listed ? static_cast<int64_t>(subset.size()) : 50;
    std::vector<float> scratch(static_cast<size_t>(heads * count)), grouped(static_cast<size_t>(heads * 24));
    cpu::attend_grouped(q.data(), heads, f.cache->head_view(0, 0), positions, count, 0.2f, scratch.data(),
                        grouped.data());
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<float> one(24);
      cpu::attend(q.data() + h * 24, f.cache->head_view(0, 0), positions, count, 0.2f, scratch.data(), one.data());
      CHECK(bitwise_equal(one, std::vector<float>(grouped.begin() + h * 24, grouped.begin() + (h + 1) * 24)));
    }
  }
}
