// Split-KV prefill attention (kernels/prefill_attention.cu) against a float64 reference and
// against the one-pass kernel: short chunks (1 to 300 queries) at cache lengths around the
// 64-key tile and up to ~99K, head dims 64 and 128, GQA groups 1, 4 and 7, 4- and 8-warp
// blocks and the Hopper kernel, the key range forced into 1, 2, 3 and 13 parts and left to the
// rule. Keys with
// large scores ("spikes") sit on both sides of every part boundary, at the chunk's first and
// last positions and inside it, so a part that drops, repeats or unmasks a key shows. Keys and
// values past the valid positions are NaN; outputs and scratch are poisoned (NaN) before every
// launch. Also the split rule itself, and its fallbacks when no scratch is given.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "kernels/prefill_attention.h"
#include "prefill_variants.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

constexpr int kForcedSplits[] = {1, 2, 3, 13};
// Relative L2 of the whole output (what the prefill tests accept: bf16 P and output roundings
// give 2e-3 to 4e-3), and of the worst (token, head) row, so that one wrong row cannot hide in
// a large output.
constexpr double kTolerance = 1e-2;
constexpr double kRowTolerance = 3e-2;

struct Case {
  int tokens;
  int64_t start;  // positions already in the cache; the chunk's queries sit at start .. start + tokens - 1
  int heads, kv_heads, head_dim;
  const char* note;
};

struct CaseData {
  Case c;
  int64_t capacity = 0;
  std::vector<uint16_t> q;     // [tokens][heads][head_dim]
  std::vector<uint16_t> k, v;  // [kv_head][capacity][head_dim]
  std::vector<int64_t> spikes;
};

// Part boundaries (in keys) of a query tile whose keys end at `key_end`, by the kernel's rule:
// parts of ceil(tiles / splits) tiles from key 0.
std::vector<int64_t> part_boundaries(int64_t key_end, int splits, int key_tile) {
  const int64_t tiles = (key_end + key_tile - 1) / key_tile;
  const int64_t per = (tiles + splits - 1) / splits;
  std::vector<int64_t> out;
  for (int64_t b = per; b < tiles; b += per) out.push_back(b * key_tile);
  return out;
}

CaseData make_case(const Case& c, Rng& rng) {
  CaseData data;
  data.c = c;
  const int64_t total = c.start + c.tokens;
  const int d = c.head_dim, group = c.heads / c.kv_heads;
  data.capacity = (total + 255) / 256 * 256 + 16;  // rows past total hold NaN
  data.q.resize(size_t(c.tokens) * c.heads * d);
  for (uint16_t& x : data.q) x = random_bf16(rng);
  data.k.assign(size_t(c.kv_heads) * data.capacity * d, 0x7fc0);
  data.v.assign(data.k.size(), 0x7fc0);
  for (int j = 0; j < c.kv_heads; ++j)
    for (int64_t p = 0; p < total; ++p)
      for (int i = 0; i < d; ++i) {
        data.k[(size_t(j) * data.capacity + p) * d + i] = random_bf16(rng, -2, 2);
        data.v[(size_t(j) * data.capacity + p) * d + i] = random_bf16(rng);
      }
  // Spikes: key = 8 x the query of the first head of the group of the first token that sees
  // the position (score ~30 there: that row's output is about V at the spike; other rows give
  // it a large but not dominant weight). Positions: 0, the chunk's first, middle and last, and
  // both sides of every boundary of 2, 3 and 13 parts of the longest query tile, for the
  // 64-key tiles of the mma.sync kernel and the 128-key tiles of the Hopper kernel.
  std::vector<int64_t> spikes = {0, c.start, c.start + c.tokens / 2, total - 1};
  for (int key_tile : {64, 128})
    for (int splits : {2, 3, 13})
      for (int64_t b : part_boundaries(total, splits, key_tile)) {
        spikes.push_back(b - 1);
        spikes.push_back(b);
      }
  std::sort(spikes.begin(), spikes.end());
  spikes.erase(std::unique(spikes.begin(), spikes.end()), spikes.end());
  for (int64_t p : spikes) {
    if (p < 0 || p >= total) continue;
    const int64_t token = std::clamp<int64_t>(p - c.start, 0, c.tokens - 1);
    for (int j = 0; j < c.kv_heads; ++j)
      for (int i = 0; i < d; ++i)
        data.k[(size_t(j) * data.capacity + p) * d + i] =
            to_bf16(8.0f * from_bf16(data.q[(size_t(token) * c.heads + size_t(j) * group) * d + i]));
    data.spikes.push_back(p);
  }
  return data;
}

// out[t][h] = sum_{p <= start + t} softmax_p(q_th . k_p / sqrt(d)) v_p in float64, rows spread
// over the host's threads.
std::vector<double> reference(const CaseData& data) {
  const Case& c = data.c;
  const int d = c.head_dim, group = c.heads / c.kv_heads;
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> out(data.q.size());
  const int64_t rows = int64_t(c.tokens) * c.heads;
  const int workers = int(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, rows));
  auto work = [&](int worker) {
    std::vector<double> scores, q(static_cast<size_t>(d)), acc(static_cast<size_t>(d));
    for (int64_t row = worker; row < rows; row += workers) {
      const int t = int(row / c.heads), h = int(row % c.heads), j = h / group;
      for (int i = 0; i < d; ++i) q[size_t(i)] = from_bf16(data.q[size_t(row) * d + i]);
      const int64_t visible = c.start + t + 1;
      scores.assign(size_t(visible), 0.0);
      double top = -INFINITY;
      for (int64_t p = 0; p < visible; ++p) {
        const uint16_t* key = &data.k[(size_t(j) * data.capacity + p) * d];
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += q[size_t(i)] * from_bf16(key[i]);
        scores[size_t(p)] = dot * scale;
        top = std::max(top, scores[size_t(p)]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = 0; p < visible; ++p) {
        const double w = std::exp(scores[size_t(p)] - top);
        sum += w;
        const uint16_t* value = &data.v[(size_t(j) * data.capacity + p) * d];
        for (int i = 0; i < d; ++i) acc[size_t(i)] += w * from_bf16(value[i]);
      }
      for (int i = 0; i < d; ++i) out[size_t(row) * d + i] = acc[size_t(i)] / sum;
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(work, w);
  work(0);
  for (std::thread& thread : threads) thread.join();
  return out;
}

// The largest relative L2 error of one row of head_dim values; infinity for NaN or infinity.
double worst_row_error(const std::vector<double>& ref, const std::vector<double>& got, int d) {
  double worst = 0;
  for (size_t row = 0; row * d < ref.size(); ++row) {
    double diff = 0, norm = 0;
    for (int i = 0; i < d; ++i) {
      const double r = ref[row * d + i], g = got[row * d + i];
      if (!std::isfinite(g)) return INFINITY;
      diff += (g - r) * (g - r);
      norm += r * r;
    }
    worst = std::max(worst, std::sqrt(diff / std::max(norm, 1e-300)));
  }
  return worst;
}

struct DeviceCase {
  DeviceArray<uint16_t> q, k, v, out;
  explicit DeviceCase(const CaseData& data) : q(data.q), k(data.k), v(data.v), out(data.q.size()) {}
};

cuda::PrefillAttentionLaunch launch_for(const CaseData& data, const DeviceCase& device, const PrefillVariant& variant,
                                        int splits) {
  const Case& c = data.c;
  cuda::PrefillAttentionLaunch p;
  p.q = device.q.data();
  p.keys = device.k.data();
  p.values = device.v.data();
  p.head_stride = data.capacity * c.head_dim;
  p.tokens = c.tokens;
  p.heads = c.heads;
  p.kv_heads = c.kv_heads;
  p.head_dim = c.head_dim;
  p.start = c.start;
  p.scale = float(1.0 / std::sqrt(double(c.head_dim)));
  p.out = device.out.data();
  p.warps = variant.warps;
  p.kernel = variant.kernel;
  p.splits = splits;
  return p;
}

std::vector<double> widen(const std::vector<uint16_t>& bits) {
  std::vector<double> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = from_bf16(bits[i]);
  return out;
}

// Runs one launch into the poisoned output with a poisoned scratch of the size the launch
// needs; `used` gets the part count it ran with.
std::vector<double> run(const cuda::PrefillAttentionLaunch& base, DeviceCase& device, int* used) {
  cuda::PrefillAttentionLaunch p = base;
  *used = cuda::prefill_attention_splits(p);
  const size_t bytes = cuda::prefill_attention_scratch_bytes(p, *used);
  DeviceArray<float> scratch(std::max<size_t>(bytes / sizeof(float), 1));
  scratch.poison();
  p.split_scratch = scratch.data();
  p.split_scratch_bytes = bytes;
  device.out.poison();
  check_cuda(cuda::launch_prefill_attention(p, nullptr), "prefill attention");
  check_cuda(cudaDeviceSynchronize(), "prefill attention");
  return widen(device.out.download());
}

std::string case_name(const Case& c, const PrefillVariant& variant) {
  char name[200];
  std::snprintf(name, sizeof name, "prefill split tokens=%d start=%lld heads=%d/%d d=%d %s%s%s", c.tokens,
                static_cast<long long>(c.start), c.heads, c.kv_heads, c.head_dim, variant.name, c.note[0] ? " " : "",
                c.note);
  return name;
}

// Every part count (forced 1, 2, 3, 13 and the rule's) on every kernel variant: one check per
// variant, its detail "S=parts error/worst row/against one pass" per run.
void check_case(Report& report, const Case& c, Rng& rng) {
  const CaseData data = make_case(c, rng);
  const std::vector<double> ref = reference(data);
  DeviceCase device(data);
  for (const PrefillVariant& variant : prefill_variants()) {
    std::vector<double> one_pass;
    bool ok = true;
    std::string detail;
    for (int forced : {1, 2, 3, 13, 0}) {
      int used = 0;
      const std::vector<double> got = run(launch_for(data, device, variant, forced), device, &used);
      if (forced == 1) one_pass = got;
      const double error = relative_l2(ref, got);
      const double row = worst_row_error(ref, got, c.head_dim);
      const double against_one_pass = relative_l2(one_pass, got);
      const bool pass = error < kTolerance && row < kRowTolerance && against_one_pass < kTolerance;
      ok = ok && pass;
      char part[96];
      std::snprintf(part, sizeof part, "%sS=%d%s %.1e/%.1e/%.1e%s", detail.empty() ? "" : "  ", used,
                    forced == 0 ? "(rule)" : "", error, row, against_one_pass, pass ? "" : " FAIL");
      detail += part;
    }
    report.check(ok, case_name(c, variant), detail);
  }
}

void test_split_cases(Report& report) {
  Rng rng(31);
  // (head_dim, group) rotated over the (context, chunk) grid so that every chunk meets every
  // pair and every context five of them. Heads: group 1 -> 2/2, 4 -> 8/2, 7 -> 14/2 (Qwen2.5-7B's
  // 28/4 grouping; two KV heads so that the KV head index is exercised).
  struct Pair {
    int head_dim, group;
  };
  const Pair pairs[] = {{128, 1}, {128, 4}, {64, 7}, {64, 1}, {128, 7}, {64, 4}};
  std::vector<int64_t> contexts = {1, 63, 64, 65, 4097, 20000};
  if (quick_mode()) contexts = {1, 63, 64, 65, 4097};
  const int chunks[] = {1, 7, 64, 230, 300};
  int index = 0;
  for (int64_t context : contexts)
    for (int tokens : chunks) {
      const Pair pair = pairs[index++ % 6];
      report.run("prefill split case", [&] {
        check_case(report, {tokens, context, 2 * pair.group, 2, pair.head_dim, ""}, rng);
      });
    }
  // Part boundaries on the diagonal (chunks of one 64-row tile, start a multiple of 64: the
  // diagonal tile is the last key tile):
  const Case edges[] = {
      {64, 64, 8, 2, 128, "(2 parts: the first ends exactly at the diagonal tile)"},
      {64, 192, 8, 2, 128, "(2 parts: the first ends one tile before the diagonal tile)"},
      {64, 384, 4, 4, 64, "(3 parts of 3 tiles: the second ends exactly at the diagonal tile)"},
      {64, 320, 4, 4, 64, "(3 parts of 2 tiles: the second ends one tile before the diagonal tile)"},
      {64, 1536, 14, 2, 128, "(13 parts of 2 tiles: the last holds only the diagonal tile)"},
      {64, 1600, 14, 2, 128, "(13 parts of 2 tiles: the last holds the diagonal tile and the one before)"},
      {64, 1537, 8, 2, 64, "(the diagonal spans the last two key tiles)"},
      {3, 830, 7, 1, 128, "(13 parts, some empty: 14 tiles)"},
  };
  for (const Case& c : edges) report.run("prefill split edge case", [&] { check_case(report, c, rng); });
  if (quick_mode()) return;
  // The keystroke shape at ~99K keys with few heads (the reference is the cost).
  const Case long_cases[] = {{230, 99000, 4, 1, 128, "(keystroke chunk at 99K)"},
                             {7, 99001, 7, 1, 64, "(GQA 7 at 99K)"}};
  for (const Case& c : long_cases) report.run("prefill split long case", [&] { check_case(report, c, rng); });
}

// The rule on the Llama-3.1-8B shape, forced counts, the scratch size, and the launcher's
// fallbacks without scratch.
void test_split_rule(Report& report) {
  cuda::PrefillAttentionLaunch p;
  p.heads = 32;
  p.kv_heads = 8;
  p.head_dim = 128;
  p.warps = 4;
  p.kernel = cuda::PrefillKernel::MmaSync;
  int major = 0, minor = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), "compute capability");
  check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0), "compute capability");
  if (major == 9 && minor == 0)
    report.check(cuda::hopper_prefill_available(),
                 "prefill: the Hopper kernel runs on this compute capability 9.0 device");
  if (std::getenv("TIDAL_PREFILL_SPLITS")) {
    report.check(true, "prefill split rule (skipped: $TIDAL_PREFILL_SPLITS is set)");
  } else {
    int sm_count = 0;
    check_cuda(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, 0), "SM count");
    p.tokens = 230;
    p.start = 99000;
    const int keystroke = cuda::prefill_attention_splits(p);
    const int blocks = 4 * 32 * keystroke;
    report.check(keystroke >= 2 && keystroke <= 64, "prefill split rule: 230 queries at 99K on Llama-3.1-8B split",
                 "S=" + std::to_string(keystroke) + ", " + std::to_string(blocks) + " blocks on " +
                     std::to_string(sm_count) + " SMs");
    p.warps = 8;
    const int wide = cuda::prefill_attention_splits(p);
    report.check(wide >= 2, "prefill split rule: the same with 8-warp blocks", "S=" + std::to_string(wide));
    p.warps = 4;
    p.tokens = 1024;
    report.check(cuda::prefill_attention_splits(p) == 1, "prefill split rule: 1024 queries run in one pass");
    p.tokens = 230;
    p.start = 0;
    report.check(cuda::prefill_attention_splits(p) == 1, "prefill split rule: a short cache runs in one pass");
    p.start = 1000;
    report.check(cuda::prefill_attention_splits(p) == 1, "prefill split rule: 1230 keys run in one pass");
    if (cuda::hopper_prefill_available()) {
      cuda::PrefillAttentionLaunch h = p;
      h.kernel = cuda::PrefillKernel::Wgmma;
      h.tokens = 230;
      h.start = 99000;
      const int hopper = cuda::prefill_attention_splits(h);
      report.check(hopper >= 2, "prefill split rule: 230 queries at 99K split on the Hopper kernel",
                   "S=" + std::to_string(hopper) + ", " + std::to_string(2 * 32 * hopper) + " blocks");
      h.tokens = 1024;
      report.check(cuda::prefill_attention_splits(h) == 1,
                   "prefill split rule: the Hopper kernel runs 1024 queries in one pass");
    }
  }
  p.tokens = 230;
  p.start = 99000;
  p.splits = 13;
  report.check(cuda::prefill_attention_splits(p) == 13, "prefill split rule: a forced count is kept");
  p.splits = 1000;
  report.check(cuda::prefill_attention_splits(p) == 64, "prefill split rule: a forced count is capped at 64");
  report.check(cuda::prefill_attention_scratch_bytes(p, 3) == size_t(3) * 230 * 32 * 130 * 4 &&
                   cuda::prefill_attention_scratch_bytes(p, 1) == 0,
               "prefill split scratch bytes");

  // Without scratch: the rule's split falls back to one pass (bitwise the forced one pass), a
  // forced split fails before launching anything.
  Rng rng(32);
  const CaseData data = make_case({7, 20000, 8, 2, 128, ""}, rng);
  DeviceCase device(data);
  int used = 0;
  const PrefillVariant mma = prefill_variants()[1];
  const std::vector<double> one_pass = run(launch_for(data, device, mma, 1), device, &used);
  cuda::PrefillAttentionLaunch bare = launch_for(data, device, mma, 0);
  const int rule = cuda::prefill_attention_splits(bare);
  device.out.poison();
  check_cuda(cuda::launch_prefill_attention(bare, nullptr), "prefill attention without scratch");
  check_cuda(cudaDeviceSynchronize(), "prefill attention without scratch");
  const std::vector<double> got = widen(device.out.download());
  report.check(got == one_pass, "prefill split without scratch runs in one pass",
               "the rule says S=" + std::to_string(rule));
  bare.splits = 2;
  const cudaError_t refused = cuda::launch_prefill_attention(bare, nullptr);
  report.check(refused == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess,
               "prefill split forced without scratch is refused", cudaGetErrorString(refused));
}

}  // namespace

void test_prefill_attention_split(Report& report) {
  report.run("prefill split rule", [&] { test_split_rule(report); });
  test_split_cases(report);
}

}  // namespace tidal::gpu_test
