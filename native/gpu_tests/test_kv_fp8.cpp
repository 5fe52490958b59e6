// The FP8 KV cache (CudaBackendOptions::kv_fp8, kernels/kv_fp8.cuh):
// - decode attention over FP8 rows against a float64 reference over the same codes and
//   scales: dense (with the selection scores), per-KV-head and per-query-head lists, every
//   group bucket and both head sizes, long enough for many splits;
// - the CUDA backend with an FP8 cache against the CPU backend rounding its rows the same way
//   (kv_fp8_simulation): prefill in two chunks, decode in full / tidal / quest, the stored
//   codes themselves, save and load, compaction, and the memory it takes.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/fp8_e4m3.h"
#include "cuda/attention_kernels.h"
#include "cuda/cuda_backend.h"
#include "decode_modes.h"
#include "engine/attention_plan.h"
#include "engine/model_weights.h"
#include "engine/synthetic_model.h"
#include "kernels/kv_append.h"
#include "model/half.h"
#include "small_model.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

// A random code that is not NaN (0x7F, 0xFF), magnitudes up to 448.
uint8_t random_code(Rng& rng) {
  for (;;) {
    const uint8_t code = uint8_t(rng.below(256));
    if ((code & 0x7F) != 0x7F) return code;
  }
}

void test_attention_kernel(Report& report, int head_dim, int group, int64_t seq_len) {
  const int kv_heads = 2, heads = kv_heads * group;
  Rng rng(uint64_t(head_dim * 100 + group));
  // Rows of codes, scales near 1/448 (values within +-1), a row of zeros (scale 0) included.
  const int64_t capacity = seq_len + 16;
  std::vector<uint8_t> keys(size_t(kv_heads * capacity * head_dim)), values(keys.size());
  for (uint8_t& c : keys) c = random_code(rng);
  for (uint8_t& c : values) c = random_code(rng);
  std::vector<uint32_t> scales(size_t(kv_heads * capacity));
  for (uint32_t& s : scales)
    s = uint32_t(f32_to_f16(float(rng.uniform(0.5, 2.0) / 448.0))) |
        (uint32_t(f32_to_f16(float(rng.uniform(0.5, 2.0) / 448.0))) << 16);
  scales[size_t(seq_len / 2)] = 0;
  std::fill_n(keys.begin() + (seq_len / 2) * head_dim, head_dim, uint8_t(0));
  std::fill_n(values.begin() + (seq_len / 2) * head_dim, head_dim, uint8_t(0));
  std::vector<float> query(size_t(heads * head_dim));
  for (float& q : query) q = float(rng.uniform(-2.0, 2.0));

  auto key_at = [&](int j, int64_t p, int i) {
    return double(cpu::fp8_e4m3_to_float(keys[size_t((j * capacity + p) * head_dim + i)])) *
           f16_to_f32(uint16_t(scales[size_t(j * capacity + p)] & 0xFFFF));
  };
  auto value_at = [&](int j, int64_t p, int i) {
    return double(cpu::fp8_e4m3_to_float(values[size_t((j * capacity + p) * head_dim + i)])) *
           f16_to_f32(uint16_t(scales[size_t(j * capacity + p)] >> 16));
  };
  // float64 attention of head h over `positions`; scores out when asked.
  auto reference = [&](int h, const std::vector<int32_t>& positions, std::vector<double>* scores) {
    const int j = h / group;
    std::vector<double> s(positions.size());
    double m = -INFINITY;
    for (size_t n = 0; n < positions.size(); ++n) {
      double dot = 0;
      for (int i = 0; i < head_dim; ++i) dot += double(query[size_t(h * head_dim + i)]) * key_at(j, positions[n], i);
      s[n] = dot / std::sqrt(double(head_dim));
      m = std::max(m, s[n]);
    }
    if (scores) *scores = s;
    std::vector<double> out(size_t(head_dim), 0.0);
    double total = 0;
    for (size_t n = 0; n < positions.size(); ++n) {
      const double w = std::exp(s[n] - m);
      total += w;
      for (int i = 0; i < head_dim; ++i) out[size_t(i)] += w * value_at(j, positions[n], i);
    }
    for (double& o : out) o /= total;
    return out;
  };

  DeviceArray<uint8_t> d_keys(keys), d_values(values);
  DeviceArray<uint32_t> d_scales(scales);
  DeviceArray<float> d_query(query), d_out(size_t(heads * head_dim)), d_scores(size_t(heads * seq_len));
  DeviceArray<uint8_t> workspace(cuda::decode_attention_workspace_bytes(heads, head_dim));
  cuda::prepare_decode_attention_workspace(workspace.data(), heads, head_dim, nullptr);
  cuda::DecodeAttentionArgs a;
  a.query = d_query.data();
  a.num_heads = heads;
  a.kv.keys = d_keys.data();
  a.kv.values = d_values.data();
  a.kv.key_head_stride = a.kv.value_head_stride = capacity * head_dim;
  a.kv.key_row_stride = a.kv.value_row_stride = head_dim;
  a.kv.num_kv_heads = kv_heads;
  a.kv.head_dim = head_dim;
  a.kv.scales = d_scales.data();
  a.kv.scale_head_stride = capacity;
  a.out = d_out.data();
  a.workspace = workspace.data();
  a.workspace_bytes = workspace.size();
  const std::string name = "fp8 decode attention, head_dim " + std::to_string(head_dim) + ", group " +
                           std::to_string(group) + ", " + std::to_string(seq_len) + " positions";

  {  // Dense, with the scores a selection layer ranks.
    d_out.poison();
    d_scores.poison();
    a.seq_len = seq_len;
    a.scores = d_scores.data();
    a.score_stride = seq_len;
    cuda::decode_attention(a, nullptr);
    check_cuda(cudaDeviceSynchronize(), "dense fp8 attention");
    const std::vector<float> out = d_out.download(), scores = d_scores.download();
    std::vector<int32_t> all(static_cast<size_t>(seq_len));
    for (int64_t p = 0; p < seq_len; ++p) all[size_t(p)] = int32_t(p);
    double out_error = 0, score_error = 0;
    for (int h = 0; h < heads; ++h) {
      std::vector<double> want_scores;
      const std::vector<double> want = reference(h, all, &want_scores);
      std::vector<double> got(out.begin() + h * head_dim, out.begin() + (h + 1) * head_dim);
      out_error = std::max(out_error, relative_l2(want, got));
      std::vector<double> got_scores(scores.begin() + h * seq_len, scores.begin() + (h + 1) * seq_len);
      score_error = std::max(score_error, relative_l2(want_scores, got_scores));
    }
    report.check(out_error < 1e-5 && score_error < 1e-5, name + ": dense output and scores vs float64",
                 format("out rel L2 %.2e", out_error) + format(", scores %.2e", score_error));
    a.scores = nullptr;
  }
  // Sparse: lists of random distinct positions (not sorted), per KV head and per query head.
  for (const cuda::PositionSharing sharing : {cuda::PositionSharing::PerKvHead, cuda::PositionSharing::PerQueryHead}) {
    const int lists = sharing == cuda::PositionSharing::PerKvHead ? kv_heads : heads;
    const int64_t count = std::min<int64_t>(seq_len, 777), stride = count + 5;
    std::vector<int32_t> positions(size_t(lists * stride), -1);
    for (int r = 0; r < lists; ++r) {
      std::vector<int32_t> all(static_cast<size_t>(seq_len));
      for (int64_t p = 0; p < seq_len; ++p) all[size_t(p)] = int32_t(p);
      for (int64_t n = 0; n < count; ++n) {
        const int64_t pick = n + int64_t(rng.below(uint64_t(seq_len - n)));
        std::swap(all[size_t(n)], all[size_t(pick)]);
        positions[size_t(r * stride + n)] = all[size_t(n)];
      }
    }
    DeviceArray<int32_t> d_positions(positions);
    cuda::PositionLists l;
    l.positions = d_positions.data();
    l.stride = stride;
    l.count = count;
    l.sharing = sharing;
    a.sparse = &l;
    d_out.poison();
    cuda::decode_attention(a, nullptr);
    check_cuda(cudaDeviceSynchronize(), "sparse fp8 attention");
    a.sparse = nullptr;
    const std::vector<float> out = d_out.download();
    double error = 0;
    for (int h = 0; h < heads; ++h) {
      const int r = sharing == cuda::PositionSharing::PerKvHead ? h / group : h;
      const std::vector<int32_t> list(positions.begin() + r * stride, positions.begin() + r * stride + count);
      const std::vector<double> want = reference(h, list, nullptr);
      std::vector<double> got(out.begin() + h * head_dim, out.begin() + (h + 1) * head_dim);
      error = std::max(error, relative_l2(want, got));
    }
    report.check(error < 1e-5,
                 name + (sharing == cuda::PositionSharing::PerKvHead ? ": per-KV-head" : ": per-query-head") +
                     " lists vs float64",
                 format("rel L2 %.2e", error));
  }
}

// kv_append_fp8 against the CPU codec, bit for bit (same floats in: same codes and scales), and
// the widening for prefill against code * scale rounded to bf16.
void test_append_and_widen(Report& report, int head_dim) {
  const int heads = 4, kv_heads = 2, tokens = 37;
  const int64_t stride = int64_t(heads + 2 * kv_heads) * head_dim, capacity = 64, start = 5;
  Rng rng(static_cast<uint64_t>(head_dim));
  std::vector<float> qkv(size_t(tokens * stride));
  for (size_t i = 0; i < qkv.size(); ++i)
    qkv[i] = float(rng.uniform(-3.0, 3.0) * std::ldexp(1.0, int(i / 997 % 9) - 4));
  // A row of zeros and a row with one large value.
  std::fill_n(qkv.begin() + 3 * stride + heads * head_dim, head_dim, 0.0f);
  qkv[size_t(4 * stride + (heads + kv_heads) * head_dim + 7)] = 1e4f;
  DeviceArray<float> d_qkv(qkv);
  DeviceArray<uint8_t> keys(size_t(kv_heads * capacity * head_dim)), values(keys.size());
  DeviceArray<uint32_t> scales(size_t(kv_heads * capacity));
  keys.poison(0x7F);
  values.poison(0x7F);
  scales.poison();
  check_cuda(cuda::launch_kv_append_fp8(d_qkv.data(), stride, tokens, heads, kv_heads, head_dim, keys.data(),
                                        values.data(), capacity * head_dim, scales.data(), capacity, start, nullptr),
             "kv_append_fp8");
  check_cuda(cudaDeviceSynchronize(), "kv_append_fp8");
  const std::vector<uint8_t> k = keys.download(), v = values.download();
  const std::vector<uint32_t> sc = scales.download();
  int64_t wrong = 0, rows = 0;
  for (int t = 0; t < tokens; ++t)
    for (int j = 0; j < kv_heads; ++j)
      for (int kv = 0; kv < 2; ++kv) {
        const float* x = qkv.data() + t * stride + (heads + kv * kv_heads + j) * head_dim;
        float max_abs = 0;
        for (int i = 0; i < head_dim; ++i) max_abs = std::max(max_abs, std::fabs(x[i]));
        const float scale = cpu::fp8_e4m3_row_scale(max_abs);
        const uint32_t pair = sc[size_t(j * capacity + start + t)];
        const uint16_t bits = uint16_t(kv == 0 ? pair & 0xFFFF : pair >> 16);
        bool ok = f16_to_f32(bits) == scale;
        const std::vector<uint8_t>& codes = kv == 0 ? k : v;
        for (int i = 0; i < head_dim; ++i) {
          const uint8_t want = scale == 0.0f ? 0 : cpu::float_to_fp8_e4m3(x[i] / scale);
          ok = ok && codes[size_t((j * capacity + start + t) * head_dim + i)] == want;
        }
        wrong += !ok;
        ++rows;
      }
  // Positions outside [start, start + tokens) keep their poison.
  const bool untouched = k[size_t(start - 1) * head_dim] == 0x7F && sc[size_t(start - 1)] == 0xFFFFFFFFu;
  report.check(wrong == 0 && untouched,
               "fp8 kv_append, head_dim " + std::to_string(head_dim) + ": codes and scales equal the cpu codec",
               std::to_string(rows - wrong) + " of " + std::to_string(rows) + " rows exact");

  // Widen KV heads [1, 2) of positions [0, start + tokens) and compare with the codes decoded.
  const int64_t count = start + tokens;
  DeviceArray<uint16_t> out_keys(size_t(count * head_dim)), out_values(size_t(count * head_dim));
  out_keys.poison();
  out_values.poison();
  check_cuda(cuda::launch_kv_widen_fp8(keys.data(), values.data(), capacity * head_dim, scales.data(), capacity, 1, 1,
                                       count, head_dim, out_keys.data(), out_values.data(), nullptr),
             "kv_widen_fp8");
  check_cuda(cudaDeviceSynchronize(), "kv_widen_fp8");
  const std::vector<uint16_t> wk = out_keys.download(), wv = out_values.download();
  int64_t mismatches = 0;
  for (int64_t p = start; p < count; ++p)
    for (int i = 0; i < head_dim; ++i) {
      const uint32_t pair = sc[size_t(capacity + p)];
      const size_t at = size_t((capacity + p) * head_dim + i);
      const float want_k = cpu::fp8_e4m3_to_float(k[at]) * f16_to_f32(uint16_t(pair & 0xFFFF));
      const float want_v = cpu::fp8_e4m3_to_float(v[at]) * f16_to_f32(uint16_t(pair >> 16));
      mismatches += wk[size_t(p * head_dim + i)] != to_bf16(want_k);
      mismatches += wv[size_t(p * head_dim + i)] != to_bf16(want_v);
    }
  report.check(mismatches == 0,
               "fp8 widen for prefill, head_dim " + std::to_string(head_dim) + ": code * scale in bf16",
               std::to_string(mismatches) + " mismatches");
}

SyntheticModelSpec fp8_model_spec(const std::string& kind) {
  SyntheticModelSpec spec = small_model_spec(23);
  spec.head_dim = 128;  // Llama-3.1-8B's head size and GQA group (4)
  spec.rope_theta = 500000.0;
  if (kind == "qwen2-d64") {
    spec.architecture = Architecture::Qwen2;
    spec.attention_bias = true;
    spec.head_dim = 64;
    spec.num_kv_heads = 1;  // group 8
  }
  return spec;
}

// The saved K/V as bytes (file order).
struct ByteSink final : KvByteSink {
  std::vector<char> bytes;
  void write(const void* data, size_t n) override {
    bytes.insert(bytes.end(), static_cast<const char*>(data), static_cast<const char*>(data) + n);
  }
};
struct ByteSource final : KvByteSource {
  const std::vector<char>& bytes;
  size_t at = 0;
  explicit ByteSource(const std::vector<char>& b) : bytes(b) {}
  void read(void* data, size_t n) override {
    if (at + n > bytes.size()) throw std::runtime_error("read past the end");
    std::memcpy(data, bytes.data() + at, n);
    at += n;
  }
};

void test_backend(Report& report, const std::string& kind) {
  const SyntheticModelSpec spec = fp8_model_spec(kind);
  SyntheticModel model = make_synthetic_model(spec);
  const ModelWeights weights = bind_model_weights(model.config, *model.tensors);
  CpuBackendOptions cpu_options;
  cpu_options.kv_fp8_simulation = true;
  auto cpu = create_cpu_backend(model.config, weights, cpu_options);
  CudaBackendOptions gpu_options;
  gpu_options.kv_fp8 = true;
  auto gpu = create_cuda_backend(model.config, weights, gpu_options);
  const int64_t vocab = model.config.vocab_size, layers = model.config.num_layers;
  const int64_t kv_heads = model.config.num_kv_heads, d = model.config.head_dim;
  const double bound = 2e-2;
  Rng rng(37);
  std::vector<int32_t> prompt(333);
  for (int32_t& t : prompt) t = int32_t(rng.below(uint64_t(vocab)));

  report.check(std::string(gpu->kv_dtype()) == "fp8_e4m3" &&
                   gpu->kv_bytes_per_token() == size_t(layers * kv_heads * (2 * d + 4)),
               kind + ": FP8 cache dtype and bytes per token (codes + scale pairs)",
               std::string(gpu->kv_dtype()) + ", " + std::to_string(gpu->kv_bytes_per_token()) + " bytes");

  auto cpu_cache = cpu->create_kv_cache();
  auto gpu_cache = gpu->create_kv_cache();
  const double prefill_error = prefill_in_two_chunks(*cpu, *gpu, *cpu_cache, *gpu_cache, prompt, vocab);
  // The GPU rounds its bf16 K/V to E4M3 where the CPU rounds f32 ones: a value within a bf16 step
  // of a rounding midpoint (a few percent of them) lands on the other code, one E4M3 step (2^-3 of
  // it) away, 16x a bf16 step. Measured on an H100: 2.1e-2 and 2.3e-2 where the bf16 cache's
  // logits differ from the CPU's by ~6e-3; a wrong scale or layout gives ~1.
  const double prefill_bound = 4e-2;
  report.check(prefill_error < prefill_bound, kind + ": FP8 prefill logits vs cpu simulation (2 chunks)",
               format("rel L2 %.2e", prefill_error));
  {
    // Prefill attention one KV head at a time (a widening scratch too small for two): the
    // same logits as all heads at once, up to the order of the split-KV sums.
    auto* tools = dynamic_cast<CudaBackendTools*>(gpu.get());
    std::vector<float> whole(size_t(143 * vocab), NAN), by_head(size_t(143 * vocab), NAN);
    auto a = gpu_cache->fork(190);
    gpu->forward(*a, prompt.data() + 190, 143, nullptr, LogitsWanted::All, whole.data(), nullptr);
    tools->set_fp8_prefill_scratch(1);
    auto b = gpu_cache->fork(190);
    gpu->forward(*b, prompt.data() + 190, 143, nullptr, LogitsWanted::All, by_head.data(), nullptr);
    tools->set_fp8_prefill_scratch(0);
    const double error = relative_l2f(whole, by_head);
    report.check(error < 1e-3 && !std::isnan(by_head.back()),
                 kind + ": FP8 prefill one KV head at a time vs all at once", format("rel L2 %.2e", error));
  }
  const size_t kv_only = gpu->kv_bytes_in_use();

  {  // The codes and scales as stored, decoded, against the CPU simulation's rounded rows
     // (the two forwards differ by bf16 rounding, so codes near a rounding boundary may differ
     // by a step: a relative L2 of a few percent; a wrong layout would be ~1.4).
    ByteSink gpu_bytes, cpu_bytes;
    gpu->save_kv(*gpu_cache, gpu_bytes);
    cpu->save_kv(*cpu_cache, cpu_bytes);
    const int64_t n = 333;
    const size_t want = size_t(layers * kv_heads * n * (2 * d + 4));
    double worst = INFINITY;
    if (gpu_bytes.bytes.size() == want && cpu_bytes.bytes.size() == size_t(layers * 2 * kv_heads * n * d) * 4) {
      worst = 0;
      const char* g = gpu_bytes.bytes.data();
      const float* c = reinterpret_cast<const float*>(cpu_bytes.bytes.data());
      for (int64_t layer = 0; layer < layers; ++layer) {
        const char* codes = g + layer * kv_heads * n * (2 * d + 4);
        const uint32_t* pairs = reinterpret_cast<const uint32_t*>(codes + 2 * kv_heads * n * d);
        for (int kv = 0; kv < 2; ++kv) {
          std::vector<double> got, ref;
          for (int64_t j = 0; j < kv_heads; ++j)
            for (int64_t p = 0; p < n; ++p) {
              const uint32_t pair = pairs[j * n + p];
              const float scale = f16_to_f32(uint16_t(kv == 0 ? pair & 0xFFFF : pair >> 16));
              for (int64_t i = 0; i < d; ++i) {
                got.push_back(cpu::fp8_e4m3_to_float(uint8_t(codes[((kv * kv_heads + j) * n + p) * d + i])) * scale);
                ref.push_back(c[(((layer * 2 + kv) * kv_heads + j) * n + p) * d + i]);
              }
            }
          worst = std::max(worst, relative_l2(ref, got));
        }
      }
    }
    report.check(
        worst < 0.1, kind + ": stored codes and scales decode to the cpu simulation's rows",
        format("worst layer rel L2 %.2e", worst) + ", " + std::to_string(gpu_bytes.bytes.size()) + " bytes saved");

    // Loaded into a fresh cache, the K/V continue exactly like the original.
    auto loaded = gpu->create_kv_cache();
    ByteSource source(gpu_bytes.bytes);
    gpu->load_kv(*loaded, 333, source);
    auto original = gpu_cache->fork(333);
    const AttentionPlan full = make_plan(model.config, AttentionMode::Full, 64, SelectionPolicy::PerQueryHead);
    std::vector<float> a(static_cast<size_t>(vocab), NAN), b(static_cast<size_t>(vocab), NAN);
    const int32_t token = 17;
    gpu->forward(*original, &token, 1, &full, LogitsWanted::Last, a.data(), nullptr);
    gpu->forward(*loaded, &token, 1, &full, LogitsWanted::Last, b.data(), nullptr);
    report.check(source.at == gpu_bytes.bytes.size() && a == b && !std::isnan(a[0]),
                 kind + ": saved and loaded FP8 cache continues bit for bit");
  }

  for (const DecodeMode& mode : kDecodeModes) {
    const AttentionPlan plan = make_plan(model.config, mode.mode, 96, mode.policy);
    auto c = cpu_cache->fork(333);
    auto g = gpu_cache->fork(333);
    double worst = 0, overlap = 1;
    for (int step = 0; step < 5; ++step) {
      const int32_t token = int32_t(rng.below(uint64_t(vocab)));
      std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
      cpu->forward(*c, &token, 1, &plan, LogitsWanted::Last, a.data(), nullptr);
      gpu->forward(*g, &token, 1, &plan, LogitsWanted::Last, b.data(), nullptr);
      worst = std::max(worst, relative_l2f(a, b));
      if (mode.mode == AttentionMode::Tidal)
        overlap = std::min(overlap, selection_overlap(cpu->last_selection_trace(), gpu->last_selection_trace()));
    }
    // The selection's overlap with the CPU simulation's is printed beside the logits error: a
    // near-tied position swapped under FP8 rounding moves a per-KV-head list's whole group.
    const double mode_bound = mode.bound_factor * bound;
    report.check(worst < mode_bound, kind + ": FP8 decode logits vs cpu simulation, " + mode.name,
                 format("rel L2 %.2e", worst) +
                     (mode.mode == AttentionMode::Tidal ? format(", worst selection overlap %.3f", overlap) : ""));
  }
  {  // Quest's page bounds exist only once a Quest step asked for them (a fork of a cache
     // without them has none either): the quest forks above built and freed theirs.
    auto g = gpu_cache->fork(333);
    const size_t before = gpu->kv_bytes_in_use();
    const AttentionPlan quest = make_plan(model.config, AttentionMode::Quest, 4096, SelectionPolicy::PerQueryHead);
    auto c = cpu_cache->fork(333);
    std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
    const int32_t token = 5;
    cpu->forward(*c, &token, 1, &quest, LogitsWanted::Last, a.data(), nullptr);
    gpu->forward(*g, &token, 1, &quest, LogitsWanted::Last, b.data(), nullptr);
    const size_t after = gpu->kv_bytes_in_use();
    const double error = relative_l2f(a, b);
    report.check(before == 2 * kv_only && after > before && error < bound,
                 kind + ": Quest bounds built on the first Quest step; full-budget step vs cpu",
                 std::to_string(kv_only) + " bytes a cache, " + std::to_string(after - before) + " more with bounds" +
                     format(", rel L2 %.2e", error));
  }
  {  // Compaction: drop positions [40, 140), keep the rest (keys rotated and rounded again).
    auto c = cpu_cache->fork(333);
    auto g = gpu_cache->fork(333);
    const KvRanges ranges = {{0, 40}, {140, 193}};
    cpu->compact(*c, ranges);
    gpu->compact(*g, ranges);
    const AttentionPlan full = make_plan(model.config, AttentionMode::Full, 64, SelectionPolicy::PerQueryHead);
    std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
    const int32_t token = 9;
    cpu->forward(*c, &token, 1, &full, LogitsWanted::Last, a.data(), nullptr);
    gpu->forward(*g, &token, 1, &full, LogitsWanted::Last, b.data(), nullptr);
    const double error = relative_l2f(a, b);
    report.check(g->length() == 234 && error < bound, kind + ": FP8 cache compacted, then a step vs cpu",
                 format("rel L2 %.2e", error));
  }
}

}  // namespace

void test_kv_fp8(Report& report) {
  for (int head_dim : {64, 128}) report.run("fp8 append and widen", [&] { test_append_and_widen(report, head_dim); });
  for (int head_dim : {64, 128})
    for (int group : {1, 2, 4, 8})
      report.run("fp8 attention kernel",
                 [&] { test_attention_kernel(report, head_dim, group, quick_mode() ? 900 : 9000); });
  const std::string reason = cuda_backend_unavailable_reason();
  if (!reason.empty()) {
    report.check(false, "cuda backend", reason);
    return;
  }
  for (const char* kind : {"llama-d128", "qwen2-d64"})
    report.run(std::string("fp8 cache ") + kind, [&] { test_backend(report, kind); });
}

}  // namespace tidal::gpu_test
