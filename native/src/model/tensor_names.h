// Checkpoint tensor names, as the weight binding and the header-only inspection read them:
// the one list of the tensors a config needs, and how names are taken apart.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace tidal {

// Where the forward pass uses a tensor.
enum class TensorRole {
  Embedding,          // model.embed_tokens.weight       [vocab, hidden]
  InputNorm,          // layers.N.input_layernorm.weight [hidden]
  QProj,              // layers.N.self_attn.q_proj.weight [heads * head_dim, hidden]
  KProj,              // ... k_proj.weight [kv_heads * head_dim, hidden]
  VProj,              // ... v_proj.weight [kv_heads * head_dim, hidden]
  QBias,              // ... q_proj.bias (attention_bias)
  KBias,              // ... k_proj.bias (attention_bias)
  VBias,              // ... v_proj.bias (attention_bias)
  QNorm,              // ... q_norm.weight [head_dim] (qk_norm)
  KNorm,              // ... k_norm.weight [head_dim] (qk_norm)
  OProj,              // ... o_proj.weight [hidden, heads * head_dim]
  OBias,              // ... o_proj.bias [hidden] (o_proj_bias)
  PostAttentionNorm,  // layers.N.post_attention_layernorm.weight [hidden]
  GateProj,           // layers.N.mlp.gate_proj.weight [intermediate, hidden]
  UpProj,             // layers.N.mlp.up_proj.weight [intermediate, hidden]
  DownProj,           // layers.N.mlp.down_proj.weight [hidden, intermediate]
  FinalNorm,          // model.norm.weight [hidden]
  LmHead,             // lm_head.weight [vocab, hidden]
};

struct ExpectedTensor {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // row-major
  TensorRole role;
  int64_t layer;  // -1 outside the layers
  // A tensor a checkpoint may store or not, which the forward pass does not read: a tied
  // model's lm_head.weight (the embedding is the output matrix). Neither looked for nor
  // shape-checked; listed so that, when stored, it does not count as a tensor of another model.
  bool optional;
};

// Every tensor the forward pass binds for `config`, in binding order, with its shape, then
// the optional ones. The single list behind bind_model_weights (engine/model_weights.cpp)
// and the header-only checks of inspect_model.
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// Tensors checkpoints may carry under any prefix that follow from the config and are
// ignored: saved RoPE inverse frequencies ("*.rotary_emb.inv_freq").
bool is_derived_tensor(const std::string& name);

bool is_digits(const std::string& text);

// The layer number of "model.layers.<n>.<rest>" (saturating for absurd numbers), or -1.
int64_t layer_of(const std::string& name);

// "model.layers.5.*" from "model.layers.5.mlp.up_proj.weight", "blk.5.*" from
// "blk.5.ffn_up.weight": the name up to its first all-digit part.
std::string layer_pattern(const std::string& stored_name);

}  // namespace tidal
