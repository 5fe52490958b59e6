// A model's tensors bound to the places the forward pass uses them. Matrices stay views
// into the source in their stored dtype (no copy: a bf16 model costs 2 bytes per
// parameter); the small vectors (norm weights, biases) are converted once to f32.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "cpu/linear.h"
#include "model/model_config.h"

namespace tidal {

class TensorSource;

struct LayerWeights {
  std::vector<float> input_norm;              // [hidden]
  cpu::MatrixView q_proj, k_proj, v_proj;     // [heads*head_dim | kv_heads*head_dim][hidden]
  std::vector<float> q_bias, k_bias, v_bias;  // empty unless attention_bias
  std::vector<float> q_norm, k_norm;          // [head_dim], empty unless qk_norm
  cpu::MatrixView o_proj;                     // [hidden][heads*head_dim]
  std::vector<float> o_bias;                  // [hidden], empty unless o_proj_bias
  std::vector<float> post_attention_norm;     // [hidden]
  cpu::MatrixView gate_proj, up_proj;         // [intermediate][hidden]
  cpu::MatrixView down_proj;                  // [hidden][intermediate]
};

struct ModelWeights {
  cpu::MatrixView embed_tokens;  // [vocab][hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  cpu::MatrixView lm_head;        // [vocab][hidden]; the embedding matrix when tied
  size_t bytes = 0;               // bytes of distinct tensors used
  std::string dtype;              // "f32", "f16", "bf16", a quantised type ("q4_k"), or "mixed"
};

// Finds, shape-checks and finiteness-checks every tensor the architecture needs (the list is
// model/tensor_names.h's expected_tensors, which inspection checks against too). Throws
// ModelError naming the tensor with the expected and found shape, a missing tensor, the
// first NaN/Inf, or tensors the config leaves unused (layers past num_hidden_layers, biases
// the config does not have): such weights belong to another model than the config. Tied
// embeddings (tie_word_embeddings) use model.embed_tokens.weight as the output matrix; a
// stored lm_head.weight is then ignored, as are saved RoPE inverse frequencies.
ModelWeights bind_model_weights(const ModelConfig& config, const TensorSource& tensors);

}  // namespace tidal
