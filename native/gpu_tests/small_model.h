// The small bf16 model the backend tests compare the CUDA backend with the CPU on: 6 layers of
// 256 wide, 8 query and 2 KV heads of 64, a 1000-token vocabulary; tests change what they need.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/synthetic_model.h"
#include "test_support.h"

namespace tidal::gpu_test {

inline SyntheticModelSpec small_model_spec(uint64_t seed) {
  SyntheticModelSpec spec;
  spec.seed = seed;
  spec.dtype = DType::BF16;
  spec.vocab_size = 1000;
  spec.hidden_size = 256;
  spec.intermediate_size = 688;
  spec.num_layers = 6;
  spec.num_heads = 8;
  spec.num_kv_heads = 2;
  spec.head_dim = 64;
  spec.max_position_embeddings = 4096;
  return spec;
}

// Prompt tokens [0, 333) through both backends into their caches in two chunks (190, then 143
// that attend the cache the first filled), every row's logits: the worst relative L2 of the
// GPU's against the CPU's.
inline double prefill_in_two_chunks(Backend& cpu, Backend& gpu, KvCache& cpu_cache, KvCache& gpu_cache,
                                    const std::vector<int32_t>& prompt, int64_t vocab) {
  double worst = 0;
  for (auto [offset, count] : {std::pair<int64_t, int64_t>{0, 190}, {190, 143}}) {
    std::vector<float> a(size_t(count * vocab)), b(size_t(count * vocab), NAN);
    cpu.forward(cpu_cache, prompt.data() + offset, count, nullptr, LogitsWanted::All, a.data(), nullptr);
    gpu.forward(gpu_cache, prompt.data() + offset, count, nullptr, LogitsWanted::All, b.data(), nullptr);
    worst = std::max(worst, relative_l2f(a, b));
  }
  return worst;
}

}  // namespace tidal::gpu_test
