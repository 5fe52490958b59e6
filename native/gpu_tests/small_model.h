// The small bf16 model the backend tests compare the CUDA backend with the CPU on: 6 layers of
// 256 wide, 8 query and 2 KV heads of 64, a 1000-token vocabulary; tests change what they need.
#pragma once
#include <cstdint>

#include "engine/synthetic_model.h"

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

}  // namespace tidal::gpu_test
