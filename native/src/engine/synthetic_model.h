// Random-weight models built in memory, for tests and for CPU benchmarks without a model
// folder. Weights are uniform with variance ~1/fan_in (so activations stay O(1) through the
// layers), norm weights near 1, biases small; no value is exactly zero. The same spec and
// seed always give the same tensors.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "engine/tensor_source.h"
#include "model/model_config.h"

namespace tidal {

struct SyntheticModelSpec {
  Architecture architecture = Architecture::Llama;
  int64_t vocab_size = 256;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 160;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 16;
  int64_t max_position_embeddings = 4096;
  double rope_theta = 10000.0;
  bool llama3_rope_scaling = false;  // factor 8, low 1, high 4, original max 64
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Qwen2-style q/k/v biases
  bool o_proj_bias = false;     // a bias on o_proj too (Llama/Qwen3 attention_bias)
  bool qk_norm = false;         // Qwen3-style q/k RMSNorm
  // Storage dtype of every tensor; with Q8_0 / Q4_K / Q6_K, of the matrices (quantised from the
  // random values; rows must be whole blocks) and the vectors stay f32, as in GGUF files.
  DType dtype = DType::F32;
  uint64_t seed = 1;
};

struct SyntheticModel {
  ModelConfig config;
  std::shared_ptr<InMemoryTensors> tensors;
};

SyntheticModel make_synthetic_model(const SyntheticModelSpec& spec);

// Specs shaped like public checkpoints (sizes only; weights are random): "qwen2.5-0.5b",
// "qwen2.5-1.5b", "llama-3.2-1b", and "tiny" (the default spec). Throws RequestError for an
// unknown name.
SyntheticModelSpec synthetic_model_preset(const std::string& name);

}  // namespace tidal
