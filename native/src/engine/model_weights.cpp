#include "engine/model_weights.h"

#include <cctype>
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

  cpu::MatrixView matrix(const ExpectedTensor& expected) {
    const TensorView& view = require(expected.name, expected.shape);
    dtypes_.insert(view.dtype);
    return cpu::MatrixView{view.dtype, view.data, expected.shape[0], expected.shape[1]};
  }

  std::vector<float> vector(const ExpectedTensor& expected) {
    const TensorView& view = require(expected.name, expected.shape);
    std::vector<float> out(static_cast<size_t>(expected.shape[0]));
    convert_to_f32(view, out.data());
    return out;
  }

  // A tensor the forward pass does not read but the checkpoint may store (ExpectedTensor::optional).
  void allow(const std::string& name) { used_names_.insert(name); }

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
      if (used_names_.count(name) || is_derived_tensor(name)) continue;
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
                       count_of(static_cast<size_t>(config.num_layers), "layer") + " (" + tensors_.layer_count_name() +
                       " = " + std::to_string(config.num_layers) + ")" + mismatch);
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
      case DType::F32:
        return "f32";
      case DType::F16:
        return "f16";
      case DType::BF16:
        return "bf16";
      default: {
        std::string name = dtype_name(*dtypes_.begin());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return name;
      }
    }
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
  weights.layers.resize(static_cast<size_t>(config.num_layers));
  for (const ExpectedTensor& t : expected_tensors(config)) {
    if (t.optional) {
      binder.allow(t.name);
      continue;
    }
    LayerWeights* layer = t.layer >= 0 ? &weights.layers[static_cast<size_t>(t.layer)] : nullptr;
    switch (t.role) {
      case TensorRole::Embedding:
        weights.embed_tokens = binder.matrix(t);
        break;
      case TensorRole::InputNorm:
        layer->input_norm = binder.vector(t);
        break;
      case TensorRole::QProj:
        layer->q_proj = binder.matrix(t);
        break;
      case TensorRole::KProj:
        layer->k_proj = binder.matrix(t);
        break;
      case TensorRole::VProj:
        layer->v_proj = binder.matrix(t);
        break;
      case TensorRole::QBias:
        layer->q_bias = binder.vector(t);
        break;
      case TensorRole::KBias:
        layer->k_bias = binder.vector(t);
        break;
      case TensorRole::VBias:
        layer->v_bias = binder.vector(t);
        break;
      case TensorRole::QNorm:
        layer->q_norm = binder.vector(t);
        break;
      case TensorRole::KNorm:
        layer->k_norm = binder.vector(t);
        break;
      case TensorRole::OProj:
        layer->o_proj = binder.matrix(t);
        break;
      case TensorRole::OBias:
        layer->o_bias = binder.vector(t);
        break;
      case TensorRole::PostAttentionNorm:
        layer->post_attention_norm = binder.vector(t);
        break;
      case TensorRole::GateProj:
        layer->gate_proj = binder.matrix(t);
        break;
      case TensorRole::UpProj:
        layer->up_proj = binder.matrix(t);
        break;
      case TensorRole::DownProj:
        layer->down_proj = binder.matrix(t);
        break;
      case TensorRole::FinalNorm:
        weights.final_norm = binder.vector(t);
        break;
      case TensorRole::LmHead:
        weights.lm_head = binder.matrix(t);
        break;
    }
  }
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  binder.reject_unused(config);
  weights.bytes = binder.bytes();
  weights.dtype = binder.dtype();
  return weights;
}

}  // namespace tidal
