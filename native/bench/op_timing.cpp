#include "bench/op_timing.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "engine/decoder.h"

namespace tidal::bench {

namespace {

// A small, fast generator: the values only need to look random to the kernels.
struct Uniform {
  uint64_t state;
  float next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<float>(state >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
};

void fill_uniform(std::vector<float>& values, Uniform& random) {
  for (float& v : values) v = random.next();
}

}  // namespace

void fill_cache_random(const ModelConfig& config, Backend& backend, KvCache& cache, int64_t length, uint64_t seed,
                       int64_t chunk) {
  DecoderOps& ops = backend.decoder_ops();
  Uniform random{seed * 0x9E3779B97F4A7C15ull + 1};
  const int64_t width = activation_width(config, Activation::Qkv);
  std::vector<float> qkv;
  std::vector<int32_t> tokens;
  while (cache.length() < length) {
    DecoderPass pass;
    pass.start = cache.length();
    pass.count = std::min(chunk, length - pass.start);
    tokens.assign(static_cast<size_t>(pass.count), 0);
    qkv.resize(static_cast<size_t>(pass.count * width));
    fill_uniform(qkv, random);
    ops.begin_pass(cache, tokens.data(), pass);
    try {
      ops.embed(pass);
      // Written once: each layer's append sees the rows as the previous one left them
      // (rotated, biased again), which keeps them random and saves a copy per layer.
      ops.write_activation(Activation::Qkv, pass.count, qkv.data());
      for (int64_t layer = 0; layer < config.num_layers; ++layer) ops.qkv_rope_append(layer, pass);
    } catch (...) {
      ops.end_pass(false);
      throw;
    }
    ops.end_pass(true);
  }
}

double time_back_to_back(DecoderOps& ops, const std::function<void()>& op, int repetitions, int warm_up) {
  for (int i = 0; i < warm_up; ++i) op();
  ops.synchronize();
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < repetitions; ++i) op();
  ops.synchronize();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count() / repetitions;
}

double time_layer_attention(const ModelConfig& config, Backend& backend, KvCache& cache, LayerAttention role,
                            const AttentionPlan& plan, int repetitions) {
  DecoderOps& ops = backend.decoder_ops();
  DecoderPass pass;
  pass.start = cache.length();
  pass.count = 1;
  pass.plan = &plan;
  DecoderRoute route = route_pass(config, pass);
  const int32_t token = 0;
  std::vector<float> qkv(static_cast<size_t>(activation_width(config, Activation::Qkv)));
  Uniform random{7};
  fill_uniform(qkv, random);
  ops.begin_pass(cache, &token, pass);
  double microseconds = 0;
  try {
    ops.embed(pass);
    // The step's own K/V in every layer, so that no layer reads an unwritten position.
    ops.write_activation(Activation::Qkv, 1, qkv.data());
    for (int64_t layer = 0; layer < config.num_layers; ++layer) ops.qkv_rope_append(layer, pass);
    ops.attend_dense(0, pass, true);
    ops.select_top_k(route.selection);
    route.layers.assign(route.layers.size(), role);
    int64_t layer = 0;
    microseconds = time_back_to_back(
        ops,
        [&] {
          attend_layer(ops, route, layer, pass);
          layer = (layer + 1) % config.num_layers;
        },
        repetitions);
  } catch (...) {
    ops.end_pass(false);
    throw;
  }
  ops.end_pass(false);
  return microseconds;
}

}  // namespace tidal::bench
