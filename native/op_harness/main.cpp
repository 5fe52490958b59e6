// The op harness: every decoder op (engine/decoder.h) run on its own, on the CPU and CUDA
// backends, over a table of model shapes and pass sizes.
//
//   tidal_op_harness check   each op on both backends from the same random inputs (outputs
//                            poisoned first); the CPU backend is the reference
//   tidal_op_harness perf    each CUDA op timed at Llama-3.1-8B's shape (prefill chunk,
//                            keystroke chunk, one-token step; attention at 10K / 32K / 100K)
//
// Exits 0 when every check passed, 1 otherwise. Where there is no usable CUDA device (or no
// CUDA in the build), check compares the CPU backend with a one-thread CPU backend, which
// checks the harness and the op interface but no kernel, and perf exits 77.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/device_bandwidth.h"
#include "bench/op_timing.h"
#include "bench/shapes.h"
#include "cpu/cpu_backend.h"
#ifdef TIDAL_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif
#include "engine/attention_plan.h"
#include "engine/decoder.h"
#include "engine/model_weights.h"
#include "engine/synthetic_model.h"
#include "model/half.h"
#include "tidal/error.h"

namespace tidal {
namespace {

// splitmix64: the same inputs on every run and machine.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(static_cast<double>(next() >> 11) * 0x1p-53 * 2.0 - 1.0); }
};

std::vector<float> random_values(size_t count, uint64_t seed) {
  Rng rng{seed};
  std::vector<float> v(count);
  for (float& x : v) x = rng.uniform();
  return v;
}

// ||a - b|| / ||b||; NaN when either holds a NaN (a poisoned output that was not written).
double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    diff += d * d;
    norm += double(b[i]) * double(b[i]);
  }
  if (std::isnan(diff) || std::isnan(norm)) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(diff / std::max(norm, 1e-30));
}

struct Tally {
  int passed = 0, failed = 0;
  void check(bool ok, const std::string& what, const std::string& detail) {
    (ok ? passed : failed)++;
    std::printf("%s  %s  (%s)\n", ok ? "ok  " : "FAIL", what.c_str(), detail.c_str());
  }
};

std::string format_error(double e) {
  char text[32];
  std::snprintf(text, sizeof text, "rel L2 %.2e", e);
  return text;
}

// ---- check mode -----------------------------------------------------------

struct Shape {
  const char* name;
  SyntheticModelSpec spec;
};

std::vector<Shape> check_shapes() {
  std::vector<Shape> shapes;
  auto base = [] {
    SyntheticModelSpec s;
    s.dtype = DType::BF16;  // the CUDA backend's weights are bf16: both backends then hold the same values
    s.vocab_size = 1000;
    s.num_layers = 2;
    s.max_position_embeddings = 8192;
    return s;
  };
  {
    SyntheticModelSpec s = base();
    s.hidden_size = 512, s.intermediate_size = 1408, s.num_heads = 4, s.num_kv_heads = 1, s.head_dim = 128;
    s.rope_theta = 500000.0, s.llama3_rope_scaling = true;
    shapes.push_back({"llama, head_dim 128, 4 heads per KV head, llama3 RoPE", s});
  }
  {
    SyntheticModelSpec s = base();
    s.architecture = Architecture::Mistral;
    s.hidden_size = 512, s.intermediate_size = 1024, s.num_heads = 8, s.num_kv_heads = 4, s.head_dim = 64;
    shapes.push_back({"mistral, head_dim 64, 2 heads per KV head", s});
  }
  {
    SyntheticModelSpec s = base();
    s.architecture = Architecture::Qwen2;
    s.hidden_size = 512, s.intermediate_size = 896, s.num_heads = 8, s.num_kv_heads = 1, s.head_dim = 64;
    s.attention_bias = true, s.tie_word_embeddings = true, s.rope_theta = 1000000.0;
    shapes.push_back({"qwen2, head_dim 64, 8 heads per KV head, q|k|v biases, tied embeddings", s});
  }
  {
    SyntheticModelSpec s = base();
    s.architecture = Architecture::Qwen3;
    s.hidden_size = 384, s.intermediate_size = 1024, s.num_heads = 4, s.num_kv_heads = 2, s.head_dim = 128;
    s.qk_norm = true, s.attention_bias = true, s.o_proj_bias = true;
    shapes.push_back({"qwen3, head_dim 128, q/k norms, q|k|v|o biases", s});
  }
  {
    SyntheticModelSpec s = base();
    s.dtype = DType::Q4_K;  // quantised matrices (rows of 256-value blocks), f32 vectors
    s.hidden_size = 512, s.intermediate_size = 1024, s.num_heads = 4, s.num_kv_heads = 2, s.head_dim = 128;
    shapes.push_back({"llama, Q4_K matrices, head_dim 128, 2 heads per KV head", s});
    s.dtype = DType::Q6_K;
    shapes.push_back({"llama, Q6_K matrices, head_dim 128, 2 heads per KV head", s});
    s.dtype = DType::Q8_0;
    s.architecture = Architecture::Qwen2, s.attention_bias = true, s.tie_word_embeddings = true;
    shapes.push_back({"qwen2, Q8_0 matrices, tied embeddings, q|k|v biases", s});
  }
  return shapes;
}

// One backend of the pair, with its cache.
struct Side {
  Backend* backend;
  std::unique_ptr<KvCache> cache;
  DecoderOps& ops() { return backend->decoder_ops(); }
};

class OpChecker {
 public:
  // `cuda`: the other side is the CUDA backend, else a one-thread CPU backend.
  OpChecker(const Shape& shape, Tally& tally, bool cuda)
      : shape_(shape), model_(make_synthetic_model(shape.spec)), config_(model_.config), tally_(tally) {
    weights_ = std::make_unique<ModelWeights>(bind_model_weights(config_, *model_.tensors));
    cpu_backend_ = create_cpu_backend(config_, *weights_, CpuBackendOptions{0, 0});
#ifdef TIDAL_HAVE_CUDA
    if (cuda) {
      gpu_backend_ = create_cuda_backend(config_, *weights_, CudaBackendOptions{});
      gpu_tools_ = dynamic_cast<CudaBackendTools*>(gpu_backend_.get());
    }
#endif
    if (!gpu_backend_) gpu_backend_ = create_cpu_backend(config_, *weights_, CpuBackendOptions{1, 0});
  }

  void run() {
    std::printf("\n%s\n", shape_.name);
    // Passes: a prefill chunk from an empty cache, a keystroke-sized chunk against a cached
    // prefix (the split-KV prefill path), and a one-token step at 3000 positions.
    pass_ops(0, 300);
    pass_ops(1000, 37);
#ifdef TIDAL_HAVE_CUDA
    if (gpu_tools_) {
      for (CudaBackendTools::GemvUse gemv : {CudaBackendTools::GemvUse::Always, CudaBackendTools::GemvUse::Never}) {
        gpu_tools_->set_gemv(gemv);
        gemv_label_ = gemv == CudaBackendTools::GemvUse::Always ? ", GEMV kernel" : ", cuBLAS";
        pass_ops(3000, 1);
      }
      gpu_tools_->set_gemv(CudaBackendTools::GemvUse::Auto);
      gemv_label_.clear();
    }
#endif
    if (!gpu_tools_) pass_ops(3000, 1);
    step_attention(3000, SelectionPolicy::PerQueryHead, 256);
    step_attention(3000, SelectionPolicy::PerKvHeadMax, 256);
    step_attention(3000, SelectionPolicy::PerKvHeadSum, 100);
    step_attention(70, SelectionPolicy::PerQueryHead, 256);  // the budget keeps every position
    kv_append(500, 300);
  }

 private:
  // Both sides with a cache of `length` positions of the same random K/V.
  std::vector<Side> sides_at(int64_t length) {
    std::vector<Side> sides;
    for (Backend* b : {cpu_backend_.get(), gpu_backend_.get()}) {
      Side side{b, b->create_kv_cache()};
      if (length > 0) bench::fill_cache_random(config_, *b, *side.cache, length, 4242);
      sides.push_back(std::move(side));
    }
    return sides;
  }

  std::vector<int32_t> tokens(int64_t count, uint64_t seed) {
    Rng rng{seed};
    std::vector<int32_t> t(static_cast<size_t>(count));
    for (int32_t& x : t) x = static_cast<int32_t>(rng.next() % static_cast<uint64_t>(config_.vocab_size));
    return t;
  }

  size_t size_of(Activation a, int64_t rows) const { return static_cast<size_t>(rows * activation_width(config_, a)); }

  // Poisons `output`, writes `inputs` (in that order: an output may share memory with an
  // input, as Gated does with GateUp on the CPU), runs `op`, reads `output`, compares.
  void compare(std::vector<Side>& sides, const std::string& what, int64_t rows,
               const std::vector<std::pair<Activation, std::vector<float>>>& inputs, Activation output,
               int64_t output_rows, const std::function<void(DecoderOps&)>& op, double tolerance) {
    std::vector<std::vector<float>> results;
    const std::vector<float> poison(size_of(output, output_rows), std::numeric_limits<float>::quiet_NaN());
    for (Side& side : sides) {
      DecoderOps& ops = side.ops();
      ops.write_activation(output, output_rows, poison.data());
      for (const auto& [activation, values] : inputs) ops.write_activation(activation, rows, values.data());
      op(ops);
      std::vector<float> out(size_of(output, output_rows));
      ops.read_activation(output, output_rows, out.data());
      results.push_back(std::move(out));
    }
    const double e = relative_l2(results[1], results[0]);
    tally_.check(e < tolerance, what, format_error(e));
  }

  void pass_ops(int64_t start, int64_t count) {
    std::vector<Side> sides = sides_at(start);
    const std::vector<int32_t> toks = tokens(count, 11 + start);
    DecoderPass pass;
    pass.start = start;
    pass.count = count;
    pass.logit_rows = count;
    char label[96];
    std::snprintf(label, sizeof label, "%lld tokens after %lld%s", static_cast<long long>(count),
                  static_cast<long long>(start), gemv_label_.c_str());
    const std::string at = label;
    for (Side& side : sides) {
      side.ops().begin_pass(*side.cache, toks.data(), pass);
      side.ops().embed(pass);
    }
    // embed: both read the same bf16 rows, exactly. A block-quantised table is dequantised to
    // f32 on the CPU and to bf16 on CUDA: within bf16's rounding (2^-9 relative) then.
    {
      std::vector<std::vector<float>> rows;
      for (Side& side : sides) {
        std::vector<float> out(size_of(Activation::Residual, count));
        side.ops().read_activation(Activation::Residual, count, out.data());
        rows.push_back(std::move(out));
      }
      const double e = relative_l2(rows[1], rows[0]);
      const bool quantised_table = shape_.spec.dtype != DType::BF16 && shape_.spec.dtype != DType::F32;
      tally_.check(quantised_table ? e <= 0x1p-9 : e == 0.0, "embed, " + at, format_error(e));
    }
    const uint64_t seed = 1000 + static_cast<uint64_t>(start + count);
    const auto residual = random_values(size_of(Activation::Residual, count), seed);
    const auto normed = random_values(size_of(Activation::Normed, count), seed + 1);
    const auto attention = random_values(size_of(Activation::Attention, count), seed + 2);
    const auto gate_up = random_values(size_of(Activation::GateUp, count), seed + 3);
    const auto gated = random_values(size_of(Activation::Gated, count), seed + 4);
    const auto qkv = random_values(size_of(Activation::Qkv, count), seed + 5);
    const int64_t layer = config_.num_layers - 1;
    compare(
        sides, "rms_norm (input norm), " + at, count, {{Activation::Residual, residual}}, Activation::Normed, count,
        [&](DecoderOps& o) { o.rms_norm(Activation::Residual, layer, NormWeight::Input, Activation::Normed, 0); },
        1e-2);
    compare(
        sides, "rms_norm (final, last row), " + at, count, {{Activation::Residual, residual}}, Activation::Normed, 1,
        [&](DecoderOps& o) { o.rms_norm(Activation::Residual, -1, NormWeight::Final, Activation::Normed, count - 1); },
        1e-2);
    compare(
        sides, "linear q|k|v, " + at, count, {{Activation::Normed, normed}}, Activation::Qkv, count,
        [&](DecoderOps& o) { o.linear(layer, LayerMatrix::Qkv, Activation::Normed, Activation::Qkv, false); }, 1e-2);
    compare(
        sides, "linear o (+= residual), " + at, count,
        {{Activation::Attention, attention}, {Activation::Residual, residual}}, Activation::Residual, count,
        [&](DecoderOps& o) { o.linear(layer, LayerMatrix::O, Activation::Attention, Activation::Residual, true); },
        1e-2);
    compare(
        sides, "linear gate|up, " + at, count, {{Activation::Normed, normed}}, Activation::GateUp, count,
        [&](DecoderOps& o) { o.linear(layer, LayerMatrix::GateUp, Activation::Normed, Activation::GateUp, false); },
        1e-2);
    compare(
        sides, "swiglu, " + at, count, {{Activation::GateUp, gate_up}}, Activation::Gated, count,
        [&](DecoderOps& o) { o.swiglu(); }, 1e-2);
    // The two as one op (fused on CUDA for one token: the product writes Gated itself).
    compare(
        sides, "gate|up product ending in swiglu, " + at, count, {{Activation::Normed, normed}}, Activation::Gated,
        count, [&](DecoderOps& o) { o.gate_up_swiglu(layer, Activation::Normed); }, 1e-2);
    compare(
        sides, "linear down (+= residual), " + at, count,
        {{Activation::Gated, gated}, {Activation::Residual, residual}}, Activation::Residual, count,
        [&](DecoderOps& o) { o.linear(layer, LayerMatrix::Down, Activation::Gated, Activation::Residual, true); },
        1e-2);
    compare(
        sides, "logits, " + at, count, {{Activation::Normed, normed}}, Activation::Logits, count,
        [&](DecoderOps& o) { o.logits(count); }, 1e-2);
    // q|k|v bias, norms, RoPE and the append, then causal attention over the cache.
    compare(
        sides, "qkv_rope_append + attend_dense, " + at, count, {{Activation::Qkv, qkv}}, Activation::Attention, count,
        [&](DecoderOps& o) {
          o.qkv_rope_append(layer, pass);
          o.attend_dense(layer, pass, false);
        },
        2e-2);
    for (Side& side : sides) side.ops().end_pass(false);
    for (Side& side : sides)
      tally_.check(side.cache->length() == start,
                   std::string("end_pass(false) keeps the length, ") + side.backend->name(),
                   std::to_string(side.cache->length()));
  }

  // The keys and values of positions [first, first + count) of every layer, as floats.
  std::vector<float> kv_rows(Side& side, int64_t first, int64_t count) {
    struct Sink : KvByteSink {
      std::vector<uint8_t> bytes;
      void write(const void* data, size_t n) override {
        const auto* p = static_cast<const uint8_t*>(data);
        bytes.insert(bytes.end(), p, p + n);
      }
    } sink;
    side.backend->save_kv(*side.cache, sink);
    const bool bf16 = std::string(side.backend->kv_dtype()) == "bf16";
    const int64_t length = side.cache->length(), d = config_.head_dim;
    auto element = [&](size_t index) {
      if (!bf16) {
        float f;
        std::memcpy(&f, sink.bytes.data() + index * 4, 4);
        return f;
      }
      uint16_t h;
      std::memcpy(&h, sink.bytes.data() + index * 2, 2);
      return bf16_to_f32(h);
    };
    std::vector<float> out;
    // File order: per layer, keys [kv_head][position][d], then values likewise.
    for (int64_t block = 0; block < 2 * config_.num_layers; ++block)
      for (int64_t h = 0; h < config_.num_kv_heads; ++h)
        for (int64_t p = first; p < first + count; ++p)
          for (int64_t j = 0; j < d; ++j)
            out.push_back(element(static_cast<size_t>(((block * config_.num_kv_heads + h) * length + p) * d + j)));
    return out;
  }

  // qkv_rope_append alone: the K/V it writes into every layer, kept by end_pass(true).
  void kv_append(int64_t start, int64_t count) {
    std::vector<Side> sides = sides_at(start);
    const std::vector<int32_t> toks = tokens(count, 5);
    const auto qkv = random_values(size_of(Activation::Qkv, count), 77);
    DecoderPass pass;
    pass.start = start;
    pass.count = count;
    std::vector<std::vector<float>> rows;
    for (Side& side : sides) {
      DecoderOps& ops = side.ops();
      ops.begin_pass(*side.cache, toks.data(), pass);
      ops.embed(pass);
      for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
        ops.write_activation(Activation::Qkv, count, qkv.data());
        ops.qkv_rope_append(layer, pass);
      }
      ops.end_pass(true);
      rows.push_back(kv_rows(side, start, count));
    }
    const double e = relative_l2(rows[1], rows[0]);
    tally_.check(e < 1e-2 && sides[1].cache->length() == start + count,
                 "qkv_rope_append: K/V written to every layer, " + std::to_string(count) + " tokens after " +
                     std::to_string(start),
                 format_error(e));
  }

  // Share of b's positions also in a, per head; the worst head and the mean.
  static std::pair<double, double> list_overlap(const std::vector<std::vector<int32_t>>& a,
                                                const std::vector<std::vector<int32_t>>& b) {
    double worst = 1.0, sum = 0.0;
    for (size_t h = 0; h < b.size(); ++h) {
      const std::set<int32_t> in_a(a[h].begin(), a[h].end());
      size_t shared = 0;
      for (int32_t p : b[h]) shared += in_a.count(p);
      const double share = b[h].empty() ? 0.0 : double(shared) / double(b[h].size());
      worst = std::min(worst, share);
      sum += share;
    }
    return {worst, b.empty() ? 0.0 : sum / double(b.size())};
  }

  // One-token step attention: dense with scores, top-k selection, attention over the lists,
  // and Quest's page choice. Near-ties may be ranked differently by the bf16 GPU cache, so
  // lists are compared by overlap and the attention over them with a wider tolerance.
  void step_attention(int64_t start, SelectionPolicy policy, int64_t budget) {
    std::vector<Side> sides = sides_at(start);
    const std::vector<int32_t> toks = tokens(1, 3);
    AttentionOptions options;
    options.mode = AttentionMode::Tidal;
    options.token_budget = budget;
    options.selection_policy = policy;
    const AttentionPlan plan = make_attention_plan(options, config_.num_layers);
    DecoderPass pass;
    pass.start = start;
    pass.count = 1;
    pass.plan = &plan;
    const DecoderRoute route = route_pass(config_, pass);
    const auto qkv = random_values(size_of(Activation::Qkv, 1), 31 + static_cast<uint64_t>(budget));
    const int64_t layer = 0;
    const char* policy_name = policy == SelectionPolicy::PerQueryHead   ? "per query head"
                              : policy == SelectionPolicy::PerKvHeadMax ? "per KV head (max)"
                                                                        : "per KV head (sum)";
    char label[128];
    std::snprintf(label, sizeof label, "step at %lld, budget %lld, %s", static_cast<long long>(start + 1),
                  static_cast<long long>(budget), policy_name);
    const std::string at = label;
    std::vector<std::vector<float>> dense, listed, quest;
    std::vector<std::vector<std::vector<int32_t>>> selections, quest_lists;
    const std::vector<float> poison(size_of(Activation::Attention, 1), std::numeric_limits<float>::quiet_NaN());
    for (Side& side : sides) {
      DecoderOps& ops = side.ops();
      ops.begin_pass(*side.cache, toks.data(), pass);
      ops.embed(pass);
      ops.write_activation(Activation::Qkv, 1, qkv.data());
      ops.qkv_rope_append(layer, pass);
      std::vector<float> out(size_of(Activation::Attention, 1));
      ops.write_activation(Activation::Attention, 1, poison.data());
      ops.attend_dense(layer, pass, true);
      ops.read_activation(Activation::Attention, 1, out.data());
      dense.push_back(out);
      ops.select_top_k(route.selection);
      selections.push_back(ops.read_position_lists(PositionLists::Selection));
      ops.write_activation(Activation::Attention, 1, poison.data());
      ops.attend_lists(layer, PositionLists::Selection, pass);
      ops.read_activation(Activation::Attention, 1, out.data());
      listed.push_back(out);
      ops.quest_pages(layer, route.quest);
      quest_lists.push_back(ops.read_position_lists(PositionLists::Quest));
      ops.write_activation(Activation::Attention, 1, poison.data());
      ops.attend_lists(layer, PositionLists::Quest, pass);
      ops.read_activation(Activation::Attention, 1, out.data());
      quest.push_back(out);
      ops.end_pass(false);
    }
    const double e_dense = relative_l2(dense[1], dense[0]);
    tally_.check(e_dense < 2e-2, "attend_dense (keeping scores), " + at, format_error(e_dense));
    auto lists_ok = [&](const std::vector<std::vector<int32_t>>& cpu, const std::vector<std::vector<int32_t>>& gpu,
                        int64_t expected, const std::string& what) {
      bool sizes = cpu.size() == static_cast<size_t>(config_.num_heads) && gpu.size() == cpu.size();
      bool last = true;
      for (size_t h = 0; sizes && h < cpu.size(); ++h) {
        sizes = sizes && static_cast<int64_t>(cpu[h].size()) == expected && gpu[h].size() == cpu[h].size();
        if (!gpu[h].empty()) last = last && std::count(gpu[h].begin(), gpu[h].end(), static_cast<int32_t>(start)) == 1;
      }
      const auto [worst, mean] = sizes ? list_overlap(cpu, gpu) : std::pair<double, double>{0.0, 0.0};
      char detail[128];
      std::snprintf(detail, sizeof detail, "%lld positions per head; overlap with cpu: worst head %.3f, mean %.3f",
                    static_cast<long long>(expected), worst, mean);
      tally_.check(sizes && last && worst >= 0.9 && mean >= 0.97, what + ", " + at, detail);
    };
    lists_ok(selections[0], selections[1], route.selection.count(), "select_top_k");
    check_listed(listed, selections, "attend_lists (selection), " + at);
    if (policy == SelectionPolicy::PerQueryHead) {
      lists_ok(quest_lists[0], quest_lists[1], route.quest.count, "quest_pages");
      check_listed(quest, quest_lists, "attend_lists (quest), " + at);
    }
  }

  // Attention over position lists, compared on the heads whose lists are the same set on both
  // sides. Where a near-tie put another position into one side's list, the outputs differ by
  // about sqrt(changed / listed) (an average of random values over another set), which says
  // nothing about the kernel; those heads are counted, not compared. At least one head must be.
  void check_listed(const std::vector<std::vector<float>>& out,
                    const std::vector<std::vector<std::vector<int32_t>>>& lists, const std::string& what) {
    const int64_t d = config_.head_dim;
    std::vector<float> a, b;
    int64_t same = 0;
    const size_t heads = std::min(lists[0].size(), lists[1].size());
    for (size_t h = 0; h < heads; ++h) {
      std::vector<int32_t> x = lists[0][h], y = lists[1][h];
      std::sort(x.begin(), x.end());
      std::sort(y.begin(), y.end());
      if (x != y) continue;
      ++same;
      a.insert(a.end(), out[0].begin() + static_cast<int64_t>(h) * d, out[0].begin() + static_cast<int64_t>(h + 1) * d);
      b.insert(b.end(), out[1].begin() + static_cast<int64_t>(h) * d, out[1].begin() + static_cast<int64_t>(h + 1) * d);
    }
    const double e = same > 0 ? relative_l2(b, a) : 1.0;
    char detail[160];
    std::snprintf(detail, sizeof detail, "rel L2 %.2e over the %lld of %zu heads with the same list",
                  same > 0 ? e : 0.0, static_cast<long long>(same), heads);
    tally_.check(same > 0 && e < 2e-2, what, detail);
  }

  const Shape& shape_;
  SyntheticModel model_;
  const ModelConfig& config_;
  Tally& tally_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Backend> cpu_backend_, gpu_backend_;  // the reference, and the backend checked
#ifdef TIDAL_HAVE_CUDA
  CudaBackendTools* gpu_tools_ = nullptr;
#else
  void* gpu_tools_ = nullptr;
#endif
  std::string gemv_label_;
};

int run_check(bool cuda) {
  Tally tally;
  std::printf("checked: %s; reference: the cpu backend\n", cuda ? "the cuda backend" : "a one-thread cpu backend");
  for (const Shape& shape : check_shapes()) OpChecker(shape, tally, cuda).run();
  std::printf("\n%d passed, %d failed\n", tally.passed, tally.failed);
  return tally.failed == 0 ? 0 : 1;
}

// ---- perf mode ------------------------------------------------------------

#ifdef TIDAL_HAVE_CUDA
int run_perf(const std::string& shape_name) {
  const ModelConfig config = bench::bench_shape(shape_name);
  const double bandwidth = bench::measure_copy_bandwidth();
  auto backend = create_random_cuda_backend(config, 1234, CudaBackendOptions{});
  DecoderOps& ops = backend->decoder_ops();
  auto time_op = [&](const std::function<void()>& op) { return bench::time_back_to_back(ops, op, 20); };
  std::printf("%s on the CUDA backend; copy bandwidth (read + write) %.0f GB/s\n", shape_name.c_str(), bandwidth / 1e9);
  std::printf("floor = bytes the op must move / copy bandwidth (weights for products, K/V for attention)\n\n");
  std::printf("| op | tokens | context | time (us) | floor (us) | time/floor |\n|---|---:|---:|---:|---:|---:|\n");
  auto row = [&](const std::string& op, int64_t tokens, int64_t context, double us, double bytes) {
    if (bytes > 0) {
      const double floor_us = bytes / bandwidth * 1e6;
      std::printf("| %s | %lld | %lld | %.1f | %.1f | %.2f |\n", op.c_str(), static_cast<long long>(tokens),
                  static_cast<long long>(context), us, floor_us, us / floor_us);
    } else {
      std::printf("| %s | %lld | %lld | %.1f | | |\n", op.c_str(), static_cast<long long>(tokens),
                  static_cast<long long>(context), us);
    }
    std::fflush(stdout);
  };
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  const int64_t qkv_rows = activation_width(config, Activation::Qkv),
                q_width = activation_width(config, Activation::Attention);
  // Products and element-wise ops at a prefill chunk, a keystroke chunk and one token.
  for (int64_t count : {4096, 256, 1}) {
    auto cache = backend->create_kv_cache();
    std::vector<int32_t> toks(static_cast<size_t>(count), 1);
    DecoderPass pass;
    pass.count = count;
    pass.logit_rows = count == 1 ? 1 : 0;
    ops.begin_pass(*cache, toks.data(), pass);
    for (Activation a : {Activation::Residual, Activation::Qkv, Activation::GateUp}) {
      const auto values = random_values(static_cast<size_t>(count * activation_width(config, a)), 5);
      ops.write_activation(a, count, values.data());
    }
    row("embed", count, 0, time_op([&] { ops.embed(pass); }), 0);
    row("rms_norm", count, 0,
        time_op([&] { ops.rms_norm(Activation::Residual, 0, NormWeight::Input, Activation::Normed, 0); }), 0);
    const double b = 2.0;  // bf16 weights
    row("linear q|k|v", count, 0,
        time_op([&] { ops.linear(0, LayerMatrix::Qkv, Activation::Normed, Activation::Qkv, false); }),
        b * double(qkv_rows * hidden));
    row("qkv_rope_append", count, 0, time_op([&] { ops.qkv_rope_append(0, pass); }), 0);
    row("linear o (+= residual)", count, 0,
        time_op([&] { ops.linear(0, LayerMatrix::O, Activation::Attention, Activation::Residual, true); }),
        b * double(hidden * q_width));
    row("linear gate|up", count, 0,
        time_op([&] { ops.linear(0, LayerMatrix::GateUp, Activation::Normed, Activation::GateUp, false); }),
        b * double(2 * inner * hidden));
    row("swiglu", count, 0, time_op([&] { ops.swiglu(); }), 0);
    row("linear down (+= residual)", count, 0,
        time_op([&] { ops.linear(0, LayerMatrix::Down, Activation::Gated, Activation::Residual, true); }),
        b * double(hidden * inner));
    if (count == 1) row("logits", count, 0, time_op([&] { ops.logits(1); }), b * double(config.vocab_size * hidden));
    ops.end_pass(false);
  }
  // Attention at the product's context lengths.
  AttentionOptions options;
  options.mode = AttentionMode::Tidal;
  options.token_budget = 2048;
  const AttentionPlan tidal_plan = make_attention_plan(options, config.num_layers);
  options.mode = AttentionMode::Quest;
  const AttentionPlan quest_plan = make_attention_plan(options, config.num_layers);
  const double kv_layer_bytes_per_position = 2.0 * double(config.num_kv_heads * config.head_dim) * 2.0;
  for (int64_t context : {10000, 32000, 100000}) {
    auto cache = backend->create_kv_cache();
    bench::fill_cache_random(config, *backend, *cache, context, 99);
    const double dense_bytes = kv_layer_bytes_per_position * double(context);
    const double sparse_bytes = double(config.num_heads) * double(options.token_budget) * double(config.head_dim) * 4.0;
    row("attend_dense (one token)", 1, context,
        bench::time_layer_attention(config, *backend, *cache, LayerAttention::Dense, tidal_plan, 30), dense_bytes);
    row("attend_dense + select_top_k", 1, context,
        bench::time_layer_attention(config, *backend, *cache, LayerAttention::DenseAndSelect, tidal_plan, 30),
        dense_bytes + 2.0 * double(config.num_heads * context) * 4.0);
    row("attend_lists (selection)", 1, context,
        bench::time_layer_attention(config, *backend, *cache, LayerAttention::Selected, tidal_plan, 30), sparse_bytes);
    row("quest_pages + attend_lists", 1, context,
        bench::time_layer_attention(config, *backend, *cache, LayerAttention::QuestPages, quest_plan, 30),
        sparse_bytes + double(config.num_kv_heads) * double((context + 15) / 16) * double(config.head_dim) * 4.0);
    // A keystroke's chunk against the cache (the split-KV prefill path).
    const int64_t count = 256;
    std::vector<int32_t> toks(static_cast<size_t>(count), 1);
    DecoderPass pass;
    pass.start = context;
    pass.count = count;
    ops.begin_pass(*cache, toks.data(), pass);
    ops.embed(pass);
    const auto qkv = random_values(static_cast<size_t>(count * qkv_rows), 9);
    ops.write_activation(Activation::Qkv, count, qkv.data());
    ops.qkv_rope_append(0, pass);
    int64_t layer = 0;
    row("attend_dense (chunk)", count, context, time_op([&] {
          ops.attend_dense(layer, pass, false);
          layer = (layer + 1) % config.num_layers;
        }),
        dense_bytes);
    ops.end_pass(false);
  }
  return 0;
}
#endif

// Why the CUDA backend cannot be checked here, or empty.
std::string no_cuda_reason() {
#ifdef TIDAL_HAVE_CUDA
  return cuda_backend_unavailable_reason();
#else
  return "this build has no CUDA backend";
#endif
}

}  // namespace
}  // namespace tidal

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "check";
  if (mode != "check" && mode != "perf") {
    std::fprintf(stderr, "usage: tidal_op_harness [check | perf [shape]]\n");
    return 2;
  }
  const std::string reason = tidal::no_cuda_reason();
  try {
    if (mode == "check") {
      if (!reason.empty()) std::printf("no CUDA check: %s\n", reason.c_str());
      return tidal::run_check(reason.empty());
    }
#ifdef TIDAL_HAVE_CUDA
    if (reason.empty()) return tidal::run_perf(argc > 2 ? argv[2] : "llama-3.1-8b");
#endif
    std::printf("skipped: %s\n", reason.c_str());
    return 77;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
