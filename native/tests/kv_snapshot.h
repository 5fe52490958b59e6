// The K/V of a CPU backend's cache as floats, read through Backend::save_kv (file order:
// [layer][keys, values][kv_head][position][head_dim]), and a CPU backend over a synthetic
// model, for the tests that look inside the cache (compaction, saving and loading).
#pragma once
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "cpu/cpu_backend.h"
#include "engine/backend.h"
#include "engine/model_weights.h"
#include "engine/synthetic_model.h"

namespace tidal_test {

class MemorySink final : public tidal::KvByteSink {
 public:
  void write(const void* data, size_t bytes) override {
    const char* p = static_cast<const char*>(data);
    bytes_.insert(bytes_.end(), p, p + bytes);
  }
  std::vector<char>& bytes() { return bytes_; }

 private:
  std::vector<char> bytes_;
};

class MemorySource final : public tidal::KvByteSource {
 public:
  explicit MemorySource(const std::vector<char>& bytes) : bytes_(bytes) {}
  void read(void* data, size_t bytes) override {
    if (bytes > bytes_.size() - at_) throw std::runtime_error("MemorySource: read past the end");
    std::memcpy(data, bytes_.data() + at_, bytes);
    at_ += bytes;
  }

 private:
  const std::vector<char>& bytes_;
  size_t at_ = 0;
};

struct KvSnapshot {
  int64_t layers = 0, kv_heads = 0, head_dim = 0, positions = 0;
  std::vector<float> data;

  const float* key(int64_t layer, int64_t head, int64_t position) const { return row(layer, 0, head, position); }
  const float* value(int64_t layer, int64_t head, int64_t position) const { return row(layer, 1, head, position); }
  const float* row(int64_t layer, int64_t values, int64_t head, int64_t position) const {
    return data.data() + (((layer * 2 + values) * kv_heads + head) * positions + position) * head_dim;
  }
};

inline KvSnapshot snapshot(tidal::Backend& backend, const tidal::KvCache& cache, const tidal::ModelConfig& config) {
  MemorySink sink;
  backend.save_kv(cache, sink);
  KvSnapshot s{config.num_layers, config.num_kv_heads, config.head_dim, cache.length(), {}};
  s.data.resize(sink.bytes().size() / sizeof(float));
  std::memcpy(s.data.data(), sink.bytes().data(), s.data.size() * sizeof(float));
  return s;
}

// A CPU backend over a synthetic model (the weights live as long as this does).
struct CpuBackendFixture {
  explicit CpuBackendFixture(const tidal::SyntheticModelSpec& spec)
      : model(tidal::make_synthetic_model(spec)),
        weights(tidal::bind_model_weights(model.config, *model.tensors)),
        backend(tidal::create_cpu_backend(model.config, weights, tidal::CpuBackendOptions{2, 0})) {}

  // A cache holding `tokens` after a dense prefill.
  std::unique_ptr<tidal::KvCache> prefilled(const std::vector<int32_t>& tokens) {
    auto cache = backend->create_kv_cache();
    backend->forward(*cache, tokens.data(), static_cast<int64_t>(tokens.size()), nullptr, tidal::LogitsWanted::None,
                     nullptr, nullptr);
    return cache;
  }

  tidal::SyntheticModel model;
  tidal::ModelWeights weights;
  std::unique_ptr<tidal::Backend> backend;
};

}  // namespace tidal_test
