#include "engine/model_weights.h"

#include <set>

#include "engine/tensor_source.h"
#include "tidal/error.h"

namespace tidal {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

class Binder {
 public:
  Binder(const TensorSource& tensors) : tensors_(tensors) {}

  const TensorView& require(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView* view = tensors_.find(name);
    if (!view)
      throw ModelError("missing tensor '" + name + "' (expected shape " + shape_text(shape) + ") in " +
                       tensors_.description() + "; the checkpoint does not match its config.json");
    if (view->shape != shape)
      throw ModelError("tensor '" + name + "' has shape " + shape_text(view->shape) + ", expected " +
                       shape_text(shape) + " from config.json (" + tensors_.description() + ")");
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
  weights.bytes = binder.bytes();
  weights.dtype = binder.dtype();
  return weights;
}

}  // namespace tidal
