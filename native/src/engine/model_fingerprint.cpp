#include "engine/model_fingerprint.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "model/weight_store.h"

namespace tidal {

namespace {

constexpr size_t kSampleBytes = 64 * 1024;

// FNV-1a, 64 bits.
void hash_bytes(uint64_t& hash, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
}

void hash_sample(uint64_t& hash, const cpu::MatrixView& m) {
  const size_t bytes = dtype_bytes(m.dtype, m.rows * m.cols);
  hash_bytes(hash, m.data, std::min(bytes, kSampleBytes));
}

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string exact(double value) {
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

}  // namespace

ModelFingerprint model_fingerprint(const ModelConfig& config, const ModelWeights& weights) {
  uint64_t sample = 14695981039346656037ull;
  hash_sample(sample, weights.embed_tokens);
  for (const LayerWeights& layer : weights.layers) {
    hash_sample(sample, layer.k_proj);
    hash_sample(sample, layer.v_proj);
  }
  // The exact bits of every RoPE frequency: two scalings, or a GGUF file's divisors and the
  // formula they came from, give the same keys only when they give the same frequencies.
  uint64_t frequencies = 14695981039346656037ull;
  hash_bytes(frequencies, config.rope_frequencies.data(), config.rope_frequencies.size() * sizeof(float));
  ModelFingerprint f;
  f.fields = {
      {"architecture", architecture_name(config.architecture)},
      {"hidden_size", std::to_string(config.hidden_size)},
      {"intermediate_size", std::to_string(config.intermediate_size)},
      {"vocab_size", std::to_string(config.vocab_size)},
      {"num_layers", std::to_string(config.num_layers)},
      {"num_heads", std::to_string(config.num_heads)},
      {"num_kv_heads", std::to_string(config.num_kv_heads)},
      {"head_dim", std::to_string(config.head_dim)},
      {"rope_theta", exact(config.rope_theta)},
      {"rope_frequencies", std::to_string(config.rope_frequencies.size()) + " pairs, hash " + hex(frequencies)},
      {"rms_norm_eps", exact(config.rms_norm_eps)},
      {"weight_dtype", weights.dtype},
      {"weight_bytes", std::to_string(weights.bytes)},
      {"weight_sample_hash", hex(sample)},
  };
  return f;
}

std::string fingerprint_difference(const ModelFingerprint& file, const ModelFingerprint& model) {
  for (const auto& field : model.fields) {
    // Named references, not a structured binding: C++17 does not let a lambda capture one (GCC
    // accepts it, clang does not).
    const std::string& name = field.first;
    const std::string& value = field.second;
    auto it = std::find_if(file.fields.begin(), file.fields.end(), [&](const auto& f) { return f.first == name; });
    const std::string found = it == file.fields.end() ? "nothing" : it->second;
    if (found != value) return name + ": the file has " + found + ", this model has " + value;
  }
  return "";
}

}  // namespace tidal
