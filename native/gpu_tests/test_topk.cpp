// Top-k selection on the GPU against a CPU brute force: sort every position by (-score,
// position) with NaN last, keep the first k, sort them ascending. The indices must be equal.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "cuda/selection_kernels.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

enum class Data {
  Random,   // distinct values in practice
  Ties,     // 17 distinct values: the k-th is inside a run of equal scores
  Equal,    // every score the same
  Special,  // random with NaN, +-0 and +-inf sprinkled in
};

const char* data_name(Data data) {
  switch (data) {
    case Data::Random:
      return "random";
    case Data::Ties:
      return "ties";
    case Data::Equal:
      return "all-equal";
    default:
      return "nan/inf/-0";
  }
}

float random_score(Rng& rng, Data data) {
  switch (data) {
    case Data::Random:
      return float(rng.uniform(-8.0, 8.0));
    case Data::Ties:
      return float(std::round(rng.uniform(-1.0, 1.0) * 8.0) / 8.0);
    case Data::Equal:
      return 0.375f;
    default: {
      const int64_t pick = rng.below(40);
      if (pick == 0) return std::numeric_limits<float>::quiet_NaN();
      if (pick == 1) return 0.0f;
      if (pick == 2) return -0.0f;
      if (pick == 3) return INFINITY;
      if (pick == 4) return -INFINITY;
      return float(rng.uniform(-2.0, 2.0));
    }
  }
}

bool ranks_before(float a, int32_t ia, float b, int32_t ib) {
  const bool a_nan = std::isnan(a), b_nan = std::isnan(b);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

std::vector<int32_t> brute_force(const float* scores, int64_t n, int64_t k) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [scores](int32_t a, int32_t b) { return ranks_before(scores[a], a, scores[b], b); });
  order.resize(size_t(std::min(k, n)));
  std::sort(order.begin(), order.end());
  return order;
}

struct Case {
  int rows;
  int64_t n;
  int64_t k;
  Data data;
  int group = 1;
  cuda::ScoreReduce reduce = cuda::ScoreReduce::None;
  bool append = false;
};

void run_case(Report& report, Rng& rng, const Case& c) {
  if (quick_mode() && c.n > 4097) return;
  const int64_t stride = c.n + 7;
  const int score_rows = c.rows * c.group;
  std::vector<float> scores(size_t(score_rows * stride), std::numeric_limits<float>::quiet_NaN());
  for (int r = 0; r < score_rows; ++r)
    for (int64_t i = 0; i < c.n; ++i) scores[size_t(r * stride + i)] = random_score(rng, c.data);
  // With appending, the scores row also holds the current position (not a candidate).
  DeviceArray<float> device_scores(scores);

  cuda::TopKArgs args;
  args.scores = device_scores.data();
  args.score_stride = stride;
  args.rows = c.rows;
  args.group = c.group;
  args.reduce = c.reduce;
  args.candidates = c.n;
  args.k = c.k;
  args.append_position = c.append ? c.n : -1;
  const int64_t written = cuda::top_k_output_count(args);
  args.out_stride = written + 3;
  DeviceArray<int32_t> out(size_t(c.rows * args.out_stride));
  out.poison();
  args.out = out.data();
  cuda::select_top_k(args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "select_top_k");
  const std::vector<int32_t> got = out.download();

  int64_t bad_rows = 0;
  std::vector<float> combined(size_t(c.n));
  for (int r = 0; r < c.rows; ++r) {
    const float* row = &scores[size_t(r * c.group * stride)];
    std::copy(row, row + c.n, combined.begin());
    for (int g = 1; g < c.group; ++g) {
      const float* other = row + g * stride;
      for (int64_t i = 0; i < c.n; ++i)
        combined[size_t(i)] = c.reduce == cuda::ScoreReduce::Sum ? combined[size_t(i)] + other[i]
                                                                 : std::max(combined[size_t(i)], other[i]);
    }
    std::vector<int32_t> expected = brute_force(combined.data(), c.n, c.k);
    if (c.append) expected.push_back(int32_t(c.n));
    // Three entries past the written ones must still hold the poison.
    bool ok = true;
    for (int64_t j = 0; j < args.out_stride; ++j) {
      const int32_t value = got[size_t(r * args.out_stride + j)];
      ok = ok && (j < written ? value == expected[size_t(j)] : value == -1);
    }
    if (!ok) ++bad_rows;
  }
  const char* reduce = c.reduce == cuda::ScoreReduce::Max ? " max" : c.reduce == cuda::ScoreReduce::Sum ? " sum" : "";
  report.check(bad_rows == 0,
               "top-k rows=" + std::to_string(c.rows) + " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
                   " " + data_name(c.data) + (c.group > 1 ? " G=" + std::to_string(c.group) + reduce : "") +
                   (c.append ? " +current" : ""),
               std::to_string(bad_rows) + " rows differ");
}

}  // namespace

void test_top_k(Report& report) {
  Rng rng(77001);
  const std::vector<Case> cases = {
      {3, 1, 1, Data::Random},
      {3, 1, 5, Data::Random, 1, cuda::ScoreReduce::None, true},
      {4, 17, 4, Data::Random},
      {4, 17, 0, Data::Random, 1, cuda::ScoreReduce::None, true},
      {5, 1000, 1, Data::Random},
      {5, 1000, 7, Data::Ties},
      {5, 1000, 999, Data::Random},
      {5, 1000, 1000, Data::Random},
      {5, 1000, 100, Data::Equal},
      {7, 4097, 2048, Data::Random},
      {7, 4097, 2048, Data::Ties},
      {7, 4097, 300, Data::Special},
      {6, 33333, 2047, Data::Random, 1, cuda::ScoreReduce::None, true},
      {6, 33333, 4096, Data::Ties},
      {6, 33333, 4095, Data::Special},
      {32, 100000, 2047, Data::Random, 1, cuda::ScoreReduce::None, true},
      {2, 100000, 4096, Data::Equal},
      {8, 33332, 2047, Data::Random, 4, cuda::ScoreReduce::Max, true},
      {8, 33332, 2047, Data::Random, 4, cuda::ScoreReduce::Sum, true},
      {2, 4096, 127, Data::Ties, 7, cuda::ScoreReduce::Sum},
      {2, 4096, 127, Data::Special, 7, cuda::ScoreReduce::Max},
      {2, 1000000, 4096, Data::Random},
      {1, 1000000, 4095, Data::Ties, 1, cuda::ScoreReduce::None, true},
  };
  for (const Case& c : cases) run_case(report, rng, c);
}

}  // namespace tidal::gpu_test
