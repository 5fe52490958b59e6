// Helpers for the engine and CPU kernel tests: random inputs with fixed seeds, tiny random
// models of every supported architecture built in memory, and engines over them.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/synthetic_model.h"
#include "tidal/engine.h"

namespace tidal_test {

// Uniform values in [lo, hi), never exactly zero.
inline std::vector<float> random_floats(size_t count, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  tidal::SamplingRandom random(seed);
  std::vector<float> out(count);
  for (float& v : out) {
    do {
      v = lo + (hi - lo) * static_cast<float>(random.uniform());
    } while (v == 0.0f);
  }
  return out;
}

inline std::vector<int32_t> random_tokens(size_t count, int64_t vocab, uint64_t seed) {
  tidal::SamplingRandom random(seed);
  std::vector<int32_t> out(count);
  for (int32_t& t : out) t = static_cast<int32_t>(random.next() % static_cast<uint64_t>(vocab));
  return out;
}

// A tiny model of one architecture, exercising that architecture's features.
inline tidal::SyntheticModelSpec tiny_model_spec(const std::string& kind, uint64_t seed = 7) {
  tidal::SyntheticModelSpec spec;
  spec.seed = seed;
  spec.vocab_size = 96;
  spec.hidden_size = 48;
  spec.intermediate_size = 88;
  spec.num_layers = 4;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.head_dim = 12;
  spec.max_position_embeddings = 512;
  if (kind == "llama-mha") {
    spec.num_kv_heads = 4;
  } else if (kind == "llama3") {
    spec.llama3_rope_scaling = true;
    spec.rope_theta = 500000.0;
  } else if (kind == "mistral-f16") {
    spec.architecture = tidal::Architecture::Mistral;
    spec.dtype = tidal::DType::F16;
    spec.num_heads = 8;
    spec.head_dim = 6;
  } else if (kind == "qwen2") {
    spec.architecture = tidal::Architecture::Qwen2;
    spec.attention_bias = true;
    spec.tie_word_embeddings = true;
  } else if (kind == "qwen3") {
    spec.architecture = tidal::Architecture::Qwen3;
    spec.qk_norm = true;
    spec.head_dim = 20;
  } else if (kind == "llama-bf16") {
    // Llama with attention_bias: biases on q, k, v and o.
    spec.dtype = tidal::DType::BF16;
    spec.attention_bias = true;
    spec.o_proj_bias = true;
  } else if (kind == "deep") {
    // Deep enough for distinct dense, selection and sparse layers, and a re-selection layer.
    spec.num_layers = 8;
    spec.num_heads = 8;
    spec.num_kv_heads = 2;
    spec.head_dim = 8;
    spec.hidden_size = 32;
    spec.intermediate_size = 64;
  }
  return spec;
}

inline const std::vector<std::string>& tiny_model_kinds() {
  static const std::vector<std::string> kinds = {"llama", "llama-mha", "llama3",    "mistral-f16",
                                                 "qwen2", "qwen3",     "llama-bf16"};
  return kinds;
}

inline tidal::EngineOptions test_engine_options() {
  tidal::EngineOptions options;
  options.threads = 2;
  return options;
}

inline std::unique_ptr<tidal::Engine> make_test_engine(const tidal::SyntheticModelSpec& spec,
                                                       tidal::EngineOptions options = test_engine_options()) {
  tidal::SyntheticModel model = tidal::make_synthetic_model(spec);
  return tidal::Engine::from_tensors(model.config, model.tensors, options);
}

inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

// max_i |a_i - b_i| / max(max_i |b_i|, tiny).
inline double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0.0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::fmax(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::fmax(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

}  // namespace tidal_test
