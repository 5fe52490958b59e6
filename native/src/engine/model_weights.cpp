#include "engine/model_weights.h"

#include <map>
#include <set>

#include "engine/tensor_source.h"
#include "model/tensor_names.h"
#include "tidal/error.h"

namespace tidal {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors a checkpoint may carry that the forward pass has no use for: RoPE inverse
// frequencies that older checkpoints save (they follow from the config), and a tied model's
// stored lm_head.weight (transformers replaces it with the embedding when it ties the two).
bool unused_is_harmless(const std::string& name, const ModelConfig& config) {
  return ends_with(name, ".rotary_emb.inv_freq") || (config.tie_word_embeddings && name == "lm_head.weight");
}

std::string count_of(size_t count, const char* what) {
  return std::to_string(count) + " " + what + (count == 1 ? "" : "s");
}

// "'a', 'b', 'c' and 2 more"
std::string quoted_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 3;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i)
    out += std::string(i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + "'" + names[i] + "'";
  if (names.size() > kShown) out += " and " + std::to_string(names.size() - kShown) + " more";
  return out;
}

class Binder {
 public:
  Binder(const TensorSource& tensors) : tensors_(tensors) {}

  const TensorView& require(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView* view = tensors_.find(name);
    if (!view)
      throw ModelError("missing tensor '" + tensors_.stored_name(name) + "' (expected shape " + shape_text(shape) +
                       ") in " + tensors_.description() + "; the checkpoint does not match its " +
                       tensors_.config_name());
    if (view->shape != shape)
      throw ModelError("tensor '" + tensors_.stored_name(name) + "' has shape " + shape_text(view->shape) +
                       ", expected " + shape_text(shape) + " from " + tensors_.config_name() + " (" +
                       tensors_.description() + ")");
    used_names_.insert(name);
    if (used_.insert(view).second) {
      check_finite(*view);
      bytes_ += view->bytes;
    }
    return *view;
  }

  cpu::MatrixView matrix(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView& view = require(name, {rows, cols});
    dtypes_.insert(view.dtype);
    return cpu::MatrixView{view.dtype, view.data, rows, cols};
  }

  std::vector<float> vector(const std::string& name, int64_t size) {
    const TensorView& view = require(name, {size});
    std::vector<float> out(static_cast<size_t>(size));
    convert_to_f32(view, out.data());
    return out;
  }

  bool has(const std::string& name) const { return tensors_.find(name) != nullptr; }

  // Throws when the source holds tensors the config does not use: the config describes
  // another model than the weights (fewer layers, no biases where the weights have them),
  // and running it would silently compute something else.
  void reject_unused(const ModelConfig& config) const {
    struct ExtraLayer {
      std::string first;  // one of its tensors, as stored
      size_t tensors = 0;
    };
    std::map<int64_t, ExtraLayer> extra_layers;  // layers at or past config.num_layers
    std::vector<std::string> others;
    for (const std::string& name : tensors_.names()) {
      if (used_names_.count(name) || unused_is_harmless(name, config)) continue;
      const int64_t layer = layer_of(name);
      if (layer >= config.num_layers) {
        ExtraLayer& extra = extra_layers[layer];
        if (extra.tensors++ == 0) extra.first = tensors_.stored_name(name);
      } else {
        others.push_back(tensors_.stored_name(name));
      }
    }
    const std::string mismatch = "; the config does not match the weights in '" + tensors_.description() + "'";
    if (!extra_layers.empty()) {
      constexpr size_t kShown = 3;
      std::string layers;
      size_t tensors = 0, shown = 0;
      for (const auto& [layer, extra] : extra_layers) {
        tensors += extra.tensors;
        if (shown < kShown) layers += std::string(shown++ ? ", " : "") + layer_pattern(extra.first);
      }
      if (extra_layers.size() > kShown) layers += " and " + count_of(extra_layers.size() - kShown, "more layer");
      throw ModelError(layers + " (" + count_of(tensors, "tensor") + ") " + (tensors == 1 ? "is" : "are") +
                       " in the weights but not used by " + tensors_.config_name() + "'s " +
                       count_of(static_cast<size_t>(config.num_layers), "layer") + " (" +
                       tensors_.layer_count_name() + " = " + std::to_string(config.num_layers) + ")" + mismatch);
    }
    if (!others.empty())
      throw ModelError(std::string(others.size() == 1 ? "tensor " : count_of(others.size(), "tensor") + " (") +
                       quoted_list(others) + (others.size() == 1 ? " is" : ") are") +
                       " in the weights but not used by the model " + tensors_.config_name() + " describes" + mismatch);
  }
  size_t bytes() const { return bytes_; }
  std::string dtype() const {
    if (dtypes_.size() != 1) return "mixed";
    switch (*dtypes_.begin()) {
      case DType::F32: return "f32";
      case DType::F16: return "f16";
      case DType::BF16: return "bf16";
    }
    return "mixed";
  }

 private:
  const TensorSource& tensors_;
  std::set<const TensorView*> used_;
  std::set<std::string> used_names_;
  std::set<DType> dtypes_;
  size_t bytes_ = 0;
};

}  // namespace

ModelWeights bind_model_weights(const ModelConfig& config, const TensorSource& tensors) {
  Binder binder(tensors);
  ModelWeights weights;
  const int64_t hidden = config.hidden_size;
  const int64_t q_size = config.num_heads * config.head_dim;
  const int64_t kv_size = config.num_kv_heads * config.head_dim;
  const int64_t inner = config.intermediate_size;

  weights.embed_tokens = binder.matrix("model.embed_tokens.weight", config.vocab_size, hidden);
  weights.layers.resize(static_cast<size_t>(config.num_layers));
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    LayerWeights& layer = weights.layers[static_cast<size_t>(i)];
    layer.input_norm = binder.vector(prefix + "input_layernorm.weight", hidden);
    layer.q_proj = binder.matrix(prefix + "self_attn.q_proj.weight", q_size, hidden);
    layer.k_proj = binder.matrix(prefix + "self_attn.k_proj.weight", kv_size, hidden);
    layer.v_proj = binder.matrix(prefix + "self_attn.v_proj.weight", kv_size, hidden);
    if (config.attention_bias) {
      layer.q_bias = binder.vector(prefix + "self_attn.q_proj.bias", q_size);
      layer.k_bias = binder.vector(prefix + "self_attn.k_proj.bias", kv_size);
      layer.v_bias = binder.vector(prefix + "self_attn.v_proj.bias", kv_size);
    }
    if (config.qk_norm) {
      layer.q_norm = binder.vector(prefix + "self_attn.q_norm.weight", config.head_dim);
      layer.k_norm = binder.vector(prefix + "self_attn.k_norm.weight", config.head_dim);
    }
    layer.o_proj = binder.matrix(prefix + "self_attn.o_proj.weight", hidden, q_size);
    if (config.o_proj_bias) layer.o_bias = binder.vector(prefix + "self_attn.o_proj.bias", hidden);
    layer.post_attention_norm = binder.vector(prefix + "post_attention_layernorm.weight", hidden);
    layer.gate_proj = binder.matrix(prefix + "mlp.gate_proj.weight", inner, hidden);
    layer.up_proj = binder.matrix(prefix + "mlp.up_proj.weight", inner, hidden);
    layer.down_proj = binder.matrix(prefix + "mlp.down_proj.weight", hidden, inner);
  }
  weights.final_norm = binder.vector("model.norm.weight", hidden);
  if (config.tie_word_embeddings)
    weights.lm_head = weights.embed_tokens;
  else
    weights.lm_head = binder.matrix("lm_head.weight", config.vocab_size, hidden);
  binder.reject_unused(config);
  weights.bytes = binder.bytes();
  weights.dtype = binder.dtype();
  return weights;
}

}  // namespace tidal
