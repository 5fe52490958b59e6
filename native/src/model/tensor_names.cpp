#include "model/tensor_names.h"

#include <cstdint>

namespace tidal {

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_size = config.num_heads * config.head_dim;
  const int64_t kv_size = config.num_kv_heads * config.head_dim;
  const int64_t inner = config.intermediate_size;
  std::vector<ExpectedTensor> out;
  auto add = [&out](std::string name, std::vector<int64_t> shape, TensorRole role, int64_t layer) {
    out.push_back({std::move(name), std::move(shape), role, layer, false});
  };
  add("model.embed_tokens.weight", {config.vocab_size, hidden}, TensorRole::Embedding, -1);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {hidden}, TensorRole::InputNorm, i);
    add(p + "self_attn.q_proj.weight", {q_size, hidden}, TensorRole::QProj, i);
    add(p + "self_attn.k_proj.weight", {kv_size, hidden}, TensorRole::KProj, i);
    add(p + "self_attn.v_proj.weight", {kv_size, hidden}, TensorRole::VProj, i);
    if (config.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q_size}, TensorRole::QBias, i);
      add(p + "self_attn.k_proj.bias", {kv_size}, TensorRole::KBias, i);
      add(p + "self_attn.v_proj.bias", {kv_size}, TensorRole::VBias, i);
    }
    if (config.qk_norm) {
      add(p + "self_attn.q_norm.weight", {config.head_dim}, TensorRole::QNorm, i);
      add(p + "self_attn.k_norm.weight", {config.head_dim}, TensorRole::KNorm, i);
    }
    add(p + "self_attn.o_proj.weight", {hidden, q_size}, TensorRole::OProj, i);
    if (config.o_proj_bias) add(p + "self_attn.o_proj.bias", {hidden}, TensorRole::OBias, i);
    add(p + "post_attention_layernorm.weight", {hidden}, TensorRole::PostAttentionNorm, i);
    add(p + "mlp.gate_proj.weight", {inner, hidden}, TensorRole::GateProj, i);
    add(p + "mlp.up_proj.weight", {inner, hidden}, TensorRole::UpProj, i);
    add(p + "mlp.down_proj.weight", {hidden, inner}, TensorRole::DownProj, i);
  }
  add("model.norm.weight", {hidden}, TensorRole::FinalNorm, -1);
  add("lm_head.weight", {config.vocab_size, hidden}, TensorRole::LmHead, -1);
  // transformers replaces a tied model's stored lm_head with the embedding.
  out.back().optional = config.tie_word_embeddings;
  return out;
}

bool is_derived_tensor(const std::string& name) {
  const std::string suffix = ".rotary_emb.inv_freq";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_digits(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
}

int64_t layer_of(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  const size_t dot = name.find('.', prefix.size());
  const std::string digits =
      name.substr(prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
  if (!is_digits(digits)) return -1;
  return digits.size() > 18 ? INT64_MAX : std::stoll(digits);
}

std::string layer_pattern(const std::string& stored_name) {
  size_t begin = 0;
  while (begin < stored_name.size()) {
    const size_t dot = stored_name.find('.', begin);
    if (dot == std::string::npos) break;
    if (is_digits(stored_name.substr(begin, dot - begin))) return stored_name.substr(0, dot) + ".*";
    begin = dot + 1;
  }
  return stored_name;
}

}  // namespace tidal
