// The kernels of a sparse prefill pass (kernels/sparse_prefill.h) and the row statistics the
// prefill attention gives them, against float64 references on random inputs:
// - the log-sum-exp of every (token, head) row (PrefillAttentionLaunch::lse) from each prefill
//   kernel, left to the split rule and forced into one part (which must still run the combine);
// - the pass scores, max over the pass's tokens of scale * q.k - lse, with lse of random values
//   (so the maximum is not always the same token's), for head dims 64 and 128 and GQA groups
//   1, 4 and 7, candidate counts that are not multiples of the block's 128 keys; positions past
//   the candidates must stay as they were (poisoned);
// - the gather of per-query-head and per-KV-head lists and the pass's own rows, bit for bit.
// Cache rows past the valid positions are NaN, outputs are poisoned before every launch.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/prefill_attention.h"
#include "kernels/sparse_prefill.h"
#include "prefill_variants.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

struct Shape {
  int tokens;
  int64_t start;
  int heads, kv_heads, head_dim;
};

struct Inputs {
  Shape s;
  int64_t capacity = 0;
  std::vector<uint16_t> q;     // [tokens][heads][d]
  std::vector<uint16_t> k, v;  // [kv_head][capacity][d], NaN past start + tokens
};

Inputs make_inputs(const Shape& s, Rng& rng) {
  Inputs in;
  in.s = s;
  const int64_t total = s.start + s.tokens;
  in.capacity = (total + 127) / 128 * 128 + 8;
  in.q.resize(size_t(s.tokens) * s.heads * s.head_dim);
  for (uint16_t& x : in.q) x = random_bf16(rng);
  in.k.assign(size_t(s.kv_heads) * in.capacity * s.head_dim, 0x7fc0);
  in.v.assign(in.k.size(), 0x7fc0);
  for (int j = 0; j < s.kv_heads; ++j)
    for (int64_t p = 0; p < total; ++p)
      for (int i = 0; i < s.head_dim; ++i) {
        in.k[(size_t(j) * in.capacity + p) * s.head_dim + i] = random_bf16(rng, -2, 2);
        in.v[(size_t(j) * in.capacity + p) * s.head_dim + i] = random_bf16(rng);
      }
  return in;
}

double dot(const Inputs& in, int t, int h, int64_t position) {
  const Shape& s = in.s;
  const int j = h / (s.heads / s.kv_heads);
  double sum = 0;
  for (int i = 0; i < s.head_dim; ++i)
    sum += double(from_bf16(in.q[(size_t(t) * s.heads + h) * s.head_dim + i])) *
           from_bf16(in.k[(size_t(j) * in.capacity + position) * s.head_dim + i]);
  return sum;
}

// lse[t][h] = log sum_{p <= start + t} exp(scale * q.k_p), float64.
std::vector<double> reference_lse(const Inputs& in, double scale) {
  const Shape& s = in.s;
  std::vector<double> out(size_t(s.tokens) * s.heads);
  std::vector<double> x;
  for (int t = 0; t < s.tokens; ++t)
    for (int h = 0; h < s.heads; ++h) {
      const int64_t visible = s.start + t + 1;
      x.resize(size_t(visible));
      double top = -INFINITY;
      for (int64_t p = 0; p < visible; ++p) top = std::max(top, x[size_t(p)] = scale * dot(in, t, h, p));
      double sum = 0;
      for (double v : x) sum += std::exp(v - top);
      out[size_t(t) * s.heads + h] = top + std::log(sum);
    }
  return out;
}

std::string shape_name(const Shape& s) {
  char name[120];
  std::snprintf(name, sizeof name, "tokens=%d start=%lld heads=%d/%d d=%d", s.tokens, static_cast<long long>(s.start),
                s.heads, s.kv_heads, s.head_dim);
  return name;
}

void test_row_statistics(Report& report) {
  const Shape shapes[] = {{37, 1000, 8, 2, 128}, {130, 300, 4, 4, 64}, {9, 2600, 14, 2, 128}, {200, 0, 4, 1, 64}};
  Rng rng(71);
  for (const Shape& s : shapes) {
    const Inputs in = make_inputs(s, rng);
    const double scale = 1.0 / std::sqrt(double(s.head_dim));
    const std::vector<double> want = reference_lse(in, scale);
    DeviceArray<uint16_t> q(in.q), k(in.k), v(in.v), out(in.q.size());
    DeviceArray<float> lse(want.size());
    for (const PrefillVariant& variant : prefill_variants())
      for (int forced : {0, 1}) {
        cuda::PrefillAttentionLaunch p;
        p.q = q.data();
        p.keys = k.data();
        p.values = v.data();
        p.head_stride = in.capacity * s.head_dim;
        p.tokens = s.tokens;
        p.heads = s.heads;
        p.kv_heads = s.kv_heads;
        p.head_dim = s.head_dim;
        p.start = s.start;
        p.scale = float(scale);
        p.out = out.data();
        p.warps = variant.warps;
        p.kernel = variant.kernel;
        p.splits = forced;
        p.lse = lse.data();
        const int splits = cuda::prefill_attention_splits(p);
        DeviceArray<float> scratch(cuda::prefill_attention_scratch_bytes(p, splits) / sizeof(float) + 1);
        scratch.poison();
        lse.poison();
        out.poison();
        // Without room for the partials a launch that wants lse is refused, not run in one part.
        const cudaError_t refused = cuda::launch_prefill_attention(p, nullptr);
        (void)cudaGetLastError();
        p.split_scratch = scratch.data();
        p.split_scratch_bytes = scratch.size() * sizeof(float);
        check_cuda(cuda::launch_prefill_attention(p, nullptr), "prefill attention with lse");
        check_cuda(cudaDeviceSynchronize(), "prefill attention with lse");
        const std::vector<float> got = lse.download();
        double worst = 0;
        for (size_t i = 0; i < want.size(); ++i)
          worst = std::isfinite(got[i]) ? std::max(worst, std::abs(double(got[i]) - want[i])) : INFINITY;
        report.check(
            splits >= 2 && refused == cudaErrorInvalidValue && worst < 2e-3,
            "prefill row log-sum-exp " + shape_name(s) + " " + variant.name + (forced ? " (1 part asked)" : ""),
            format("max abs error %.2e", worst) + ", " + std::to_string(splits) + " parts");
      }
  }
}

void test_pass_scores(Report& report) {
  const Shape shapes[] = {{37, 1000, 8, 2, 128}, {64, 333, 4, 4, 64},   {65, 1300, 28, 4, 128},
                          {1, 130, 4, 1, 64},    {150, 128, 8, 8, 128}, {256, 4097, 32, 8, 128}};
  Rng rng(72);
  for (const Shape& s : shapes) {
    const Inputs in = make_inputs(s, rng);
    const double scale = 1.0 / std::sqrt(double(s.head_dim));
    // lse: any values; spread so that different tokens win different positions.
    std::vector<float> lse(size_t(s.tokens) * s.heads);
    for (float& x : lse) x = float(rng.uniform(2.0, 6.0));
    const int64_t stride = s.start + 37;  // past the candidates: must stay poisoned
    std::vector<double> want(size_t(s.heads) * s.start);
    for (int h = 0; h < s.heads; ++h)
      for (int64_t p = 0; p < s.start; ++p) {
        double best = -INFINITY;
        for (int t = 0; t < s.tokens; ++t)
          best = std::max(best, scale * dot(in, t, h, p) - double(lse[size_t(t) * s.heads + h]));
        want[size_t(h) * s.start + p] = best;
      }
    DeviceArray<uint16_t> q(in.q), k(in.k);
    DeviceArray<float> dlse(lse), out(size_t(s.heads) * stride);
    out.poison();
    cuda::PassScoresLaunch p;
    p.q = q.data();
    p.keys = k.data();
    p.head_stride = in.capacity * s.head_dim;
    p.lse = dlse.data();
    p.tokens = s.tokens;
    p.heads = s.heads;
    p.kv_heads = s.kv_heads;
    p.head_dim = s.head_dim;
    p.candidates = s.start;
    p.scale = float(scale);
    p.out = out.data();
    p.out_stride = stride;
    check_cuda(cuda::launch_pass_scores(p, nullptr), "pass scores");
    check_cuda(cudaDeviceSynchronize(), "pass scores");
    const std::vector<float> got = out.download();
    double worst = 0;
    bool untouched = true;
    for (int h = 0; h < s.heads; ++h) {
      for (int64_t p2 = 0; p2 < s.start; ++p2) {
        const double g = got[size_t(h) * stride + p2];
        worst = std::isfinite(g) ? std::max(worst, std::abs(g - want[size_t(h) * s.start + p2])) : INFINITY;
      }
      for (int64_t p2 = s.start; p2 < stride; ++p2) untouched &= std::isnan(got[size_t(h) * stride + p2]);
    }
    report.check(worst < 1e-3 && untouched, "sparse prefill pass scores " + shape_name(s),
                 format("max abs error %.2e", worst) + (untouched ? "" : ", wrote past the candidates"));
  }
}

void test_gather(Report& report) {
  Rng rng(73);
  struct Case {
    int lists, per_kv_head, d;
    int64_t keep, start, tokens;
  };
  // Per query head (4 lists per KV head), per KV head, head dim 64 and 128, an empty choice.
  const Case cases[] = {{8, 4, 128, 45, 300, 17}, {2, 1, 64, 100, 700, 33}, {7, 7, 128, 0, 50, 9}};
  for (const Case& c : cases) {
    const int kv_heads = c.lists / c.per_kv_head;
    const int64_t capacity = c.start + c.tokens + 5;
    std::vector<uint16_t> k(size_t(kv_heads) * capacity * c.d), v(k.size());
    for (uint16_t& x : k) x = random_bf16(rng);
    for (uint16_t& x : v) x = random_bf16(rng);
    const int64_t stride = c.keep + 3;
    std::vector<int32_t> positions(size_t(c.lists) * stride, -1);
    for (int r = 0; r < c.lists; ++r)
      for (int64_t e = 0; e < c.keep; ++e) positions[size_t(r) * stride + e] = int32_t(rng.below(c.start));
    const int64_t rows = c.keep + c.tokens;
    std::vector<uint16_t> want_k(size_t(c.lists) * rows * c.d), want_v(want_k.size());
    for (int r = 0; r < c.lists; ++r)
      for (int64_t e = 0; e < rows; ++e) {
        const int64_t pos = e < c.keep ? positions[size_t(r) * stride + e] : c.start + (e - c.keep);
        const size_t from = (size_t(r / c.per_kv_head) * capacity + pos) * c.d, to = (size_t(r) * rows + e) * c.d;
        std::copy_n(&k[from], c.d, &want_k[to]);
        std::copy_n(&v[from], c.d, &want_v[to]);
      }
    DeviceArray<uint16_t> dk(k), dv(v), ok(want_k.size()), ov(want_v.size());
    DeviceArray<int32_t> dpos(positions);
    ok.poison();
    ov.poison();
    cuda::GatherListsLaunch g;
    g.keys = dk.data();
    g.values = dv.data();
    g.head_stride = capacity * c.d;
    g.positions = dpos.data();
    g.list_stride = stride;
    g.lists = c.lists;
    g.lists_per_kv_head = c.per_kv_head;
    g.head_dim = c.d;
    g.keep = c.keep;
    g.pass_start = c.start;
    g.pass_tokens = c.tokens;
    g.out_keys = ok.data();
    g.out_values = ov.data();
    check_cuda(cuda::launch_gather_lists(g, nullptr), "gather lists");
    check_cuda(cudaDeviceSynchronize(), "gather lists");
    char name[120];
    std::snprintf(name, sizeof name, "sparse prefill gather lists=%d per KV head=%d d=%d keep=%lld tokens=%lld",
                  c.lists, c.per_kv_head, c.d, static_cast<long long>(c.keep), static_cast<long long>(c.tokens));
    report.check(ok.download() == want_k && ov.download() == want_v, name);
  }
}

}  // namespace

void test_sparse_prefill(Report& report) {
  test_row_statistics(report);
  test_pass_scores(report);
  test_gather(report);
}

}  // namespace tidal::gpu_test
