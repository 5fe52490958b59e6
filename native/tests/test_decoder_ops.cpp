// The decoder ops used directly (DecoderOps::begin_pass / end_pass, activations written and
// read), as the op harness and the benchmarks use them, on the CPU backend: running the
// recipe by hand equals Backend::forward bit for bit, activations round-trip in their
// documented layout, a dropped pass leaves the cache as it was, and the bench helpers built
// on the ops (a cache of random K/V, one layer's attention) do what they say.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "bench/op_timing.h"
#include "engine/attention_plan.h"
#include "engine/decoder.h"
#include "engine/model_weights.h"
#include "engine/tensor_source.h"
#include "engine_test_models.h"
#include "harness.h"
#include "kv_snapshot.h"

using namespace tidal;
using namespace tidal_test;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

AttentionPlan tidal_plan(int64_t layers, int64_t budget) {
  AttentionOptions options;
  options.mode = AttentionMode::Tidal;
  options.token_budget = budget;
  return make_attention_plan(options, layers);
}

}  // namespace

TIDAL_TEST(decoder_ops_by_hand_equal_forward) {
  for (const char* kind : {"llama3", "qwen2", "qwen3"}) {
    CpuBackendFixture f(tiny_model_spec(kind, 23));
    const ModelConfig& config = f.model.config;
    const auto prompt = random_tokens(40, config.vocab_size, 3);
    const int64_t vocab = config.vocab_size;
    // forward(): a prefill of 40 tokens (all logits), then a tidal step.
    auto cache = f.backend->create_kv_cache();
    std::vector<float> expected(static_cast<size_t>(40 * vocab), std::numeric_limits<float>::quiet_NaN());
    f.backend->forward(*cache, prompt.data(), 40, nullptr, LogitsWanted::All, expected.data(), nullptr);
    const AttentionPlan plan = tidal_plan(config.num_layers, 8);
    const int32_t next = 5;
    std::vector<float> expected_step(static_cast<size_t>(vocab));
    f.backend->forward(*cache, &next, 1, &plan, LogitsWanted::Last, expected_step.data(), nullptr);

    // The same through the ops.
    DecoderOps& ops = f.backend->decoder_ops();
    auto by_hand = f.backend->create_kv_cache();
    DecoderPass pass;
    pass.count = 40;
    pass.logit_rows = 40;
    ops.begin_pass(*by_hand, prompt.data(), pass);
    run_decoder(config, ops, pass, route_pass(config, pass));
    std::vector<float> got(static_cast<size_t>(40 * vocab), std::numeric_limits<float>::quiet_NaN());
    ops.read_activation(Activation::Logits, 40, got.data());
    ops.end_pass(true);
    CHECK_EQ(by_hand->length(), 40);
    CHECK(same_bits(got, expected));
    DecoderPass step;
    step.start = 40;
    step.count = 1;
    step.plan = &plan;
    step.logit_rows = 1;
    ops.begin_pass(*by_hand, &next, step);
    run_decoder(config, ops, step, route_pass(config, step));
    std::vector<float> got_step(static_cast<size_t>(vocab));
    ops.read_activation(Activation::Logits, 1, got_step.data());
    ops.end_pass(true);
    CHECK(same_bits(got_step, expected_step));
    const KvSnapshot a = snapshot(*f.backend, *cache, config), b = snapshot(*f.backend, *by_hand, config);
    CHECK(same_bits(a.data, b.data));
  }
}

TIDAL_TEST(decoder_ops_activations_round_trip_and_dropped_pass_keeps_cache) {
  CpuBackendFixture f(tiny_model_spec("qwen2", 5));
  const ModelConfig& config = f.model.config;
  auto cache = f.prefilled(random_tokens(20, config.vocab_size, 9));
  const KvSnapshot before = snapshot(*f.backend, *cache, config);
  DecoderOps& ops = f.backend->decoder_ops();
  const auto tokens = random_tokens(6, config.vocab_size, 2);
  DecoderPass pass;
  pass.start = 20;
  pass.count = 6;
  pass.logit_rows = 6;
  ops.begin_pass(*cache, tokens.data(), pass);
  ops.embed(pass);
  uint64_t seed = 100;
  for (Activation a : {Activation::Residual, Activation::Normed, Activation::Qkv, Activation::Attention,
                       Activation::GateUp, Activation::Gated, Activation::Logits}) {
    const auto values = random_floats(static_cast<size_t>(6 * activation_width(config, a)), seed++);
    ops.write_activation(a, 6, values.data());
    std::vector<float> back(values.size(), std::numeric_limits<float>::quiet_NaN());
    ops.read_activation(a, 6, back.data());
    CHECK(same_bits(back, values));
  }
  // The Qkv layout is [tokens][q | k | v]: a written row's k part is the key appended.
  const auto qkv = random_floats(static_cast<size_t>(6 * activation_width(config, Activation::Qkv)), 7);
  ops.write_activation(Activation::Qkv, 6, qkv.data());
  ops.qkv_rope_append(0, pass);
  CHECK_EQ(cache->length(), 20);  // not yet kept
  ops.end_pass(false);
  CHECK_EQ(cache->length(), 20);
  CHECK(same_bits(snapshot(*f.backend, *cache, config).data, before.data));
  // A pass must start at the cache's length.
  DecoderPass wrong = pass;
  wrong.start = 19;
  CHECK_THROWS_WITH(ops.begin_pass(*cache, tokens.data(), wrong), "cache's length");
}

TIDAL_TEST(decoder_ops_qkv_rope_append_adds_biases_and_keeps_values) {
  // Values are appended as written plus the v bias (no rotation); a kept pass commits them.
  CpuBackendFixture f(tiny_model_spec("qwen2", 8));
  const ModelConfig& config = f.model.config;
  auto cache = f.backend->create_kv_cache();
  DecoderOps& ops = f.backend->decoder_ops();
  const auto tokens = random_tokens(3, config.vocab_size, 4);
  DecoderPass pass;
  pass.count = 3;
  ops.begin_pass(*cache, tokens.data(), pass);
  ops.embed(pass);
  const int64_t width = activation_width(config, Activation::Qkv);
  const auto qkv = random_floats(static_cast<size_t>(3 * width), 12);
  ops.write_activation(Activation::Qkv, 3, qkv.data());
  ops.qkv_rope_append(1, pass);
  ops.end_pass(true);
  CHECK_EQ(cache->length(), 3);
  const KvSnapshot s = snapshot(*f.backend, *cache, config);
  const std::vector<float>& v_bias = f.weights.layers[1].v_bias;
  CHECK(!v_bias.empty());
  const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  double worst = 0;
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t h = 0; h < config.num_kv_heads; ++h)
      for (int64_t j = 0; j < config.head_dim; ++j) {
        const int64_t i = h * config.head_dim + j;
        const double expected =
            double(qkv[static_cast<size_t>(t * width + q_size + kv_size + i)]) + double(v_bias[static_cast<size_t>(i)]);
        worst = std::max(worst, std::fabs(double(s.value(1, h, t)[j]) - expected));
      }
  CHECK(worst < 1e-6);
}

TIDAL_TEST(bench_fill_cache_random_and_layer_attention_on_the_ops) {
  CpuBackendFixture f(tiny_model_spec("llama3", 6));
  const ModelConfig& config = f.model.config;
  auto a = f.backend->create_kv_cache();
  auto b = f.backend->create_kv_cache();
  auto c = f.backend->create_kv_cache();
  bench::fill_cache_random(config, *f.backend, *a, 300, 1, 64);
  bench::fill_cache_random(config, *f.backend, *b, 300, 1, 128);  // other chunks, same values
  bench::fill_cache_random(config, *f.backend, *c, 300, 2, 64);
  CHECK_EQ(a->length(), 300);
  const KvSnapshot sa = snapshot(*f.backend, *a, config), sb = snapshot(*f.backend, *b, config),
                   sc = snapshot(*f.backend, *c, config);
  CHECK(same_bits(sa.data, sb.data));
  CHECK(!same_bits(sa.data, sc.data));
  // Values are the random rows as written, in [-1, 1), different per layer position.
  bool in_range = true;
  for (float v : sa.data) in_range = in_range && std::isfinite(v) && std::fabs(v) <= 2.0f;
  CHECK(in_range);
  CHECK(std::memcmp(sa.value(0, 0, 10), sa.value(0, 0, 11), static_cast<size_t>(config.head_dim) * 4) != 0);
  // A layer's attention in each role: a time, and the cache as it was.
  const AttentionPlan plan = tidal_plan(config.num_layers, 32);
  for (LayerAttention role : {LayerAttention::Dense, LayerAttention::DenseAndSelect, LayerAttention::Selected}) {
    const double us = bench::time_layer_attention(config, *f.backend, *a, role, plan, 5);
    CHECK(us > 0.0 && std::isfinite(us));
    CHECK_EQ(a->length(), 300);
  }
  CHECK(same_bits(snapshot(*f.backend, *a, config).data, sa.data));
}

TIDAL_TEST(quantised_synthetic_model_equals_its_dequantised_copy) {
  // A synthetic model with Q8_0 / Q4_K / Q6_K matrices runs on the CPU bit for bit as the same
  // matrices dequantised to f32 in advance.
  for (DType dtype : {DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    SyntheticModelSpec spec = tiny_model_spec("llama3", 4);
    spec.dtype = dtype;
    spec.hidden_size = 256, spec.intermediate_size = 512, spec.head_dim = 64;
    const SyntheticModel model = make_synthetic_model(spec);
    InMemoryTensors dequantised;
    for (const std::string& name : model.tensors->names()) {
      const TensorView& t = *model.tensors->find(name);
      std::vector<float> values(static_cast<size_t>(t.numel()));
      convert_to_f32(t, values.data());
      dequantised.add(name, DType::F32, t.shape, values.data(), values.size() * 4);
      if (t.shape.size() == 2) CHECK(t.dtype == dtype);
    }
    const ModelWeights a = bind_model_weights(model.config, *model.tensors);
    const ModelWeights b = bind_model_weights(model.config, dequantised);
    CHECK(a.bytes * 3 < b.bytes);  // Q8_0: 34 bytes per 32 values against 128
    auto cpu_a = create_cpu_backend(model.config, a, CpuBackendOptions{2, 0});
    auto cpu_b = create_cpu_backend(model.config, b, CpuBackendOptions{2, 0});
    const auto prompt = random_tokens(30, model.config.vocab_size, 8);
    std::vector<float> la(static_cast<size_t>(model.config.vocab_size)), lb = la;
    auto ca = cpu_a->create_kv_cache(), cb = cpu_b->create_kv_cache();
    cpu_a->forward(*ca, prompt.data(), 30, nullptr, LogitsWanted::Last, la.data(), nullptr);
    cpu_b->forward(*cb, prompt.data(), 30, nullptr, LogitsWanted::Last, lb.data(), nullptr);
    CHECK(same_bits(la, lb));
    bool finite = true;
    for (float v : la) finite = finite && std::isfinite(v);
    CHECK(finite);
  }
}
