#include "engine/synthetic_model.h"

#include <cmath>
#include <vector>

#include "engine/sampler.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"

namespace tidal {

namespace {

class TensorFiller {
 public:
  TensorFiller(const SyntheticModelSpec& spec) : spec_(spec), random_(spec.seed) {}

  // Uniform in [center - half_width, center + half_width], never exactly zero. Matrices are
  // stored in the spec's dtype; vectors of a quantised model in f32 (as GGUF files keep them).
  void add(InMemoryTensors& tensors, const std::string& name, std::vector<int64_t> shape, double center,
           double half_width) {
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    std::vector<float> values(count);
    for (float& v : values) {
      float x;
      do {
        x = static_cast<float>(center + half_width * (2.0 * random_.uniform() - 1.0));
      } while (x == 0.0f);
      v = x;
    }
    const DType dtype = is_quantized(spec_.dtype) && shape.size() != 2 ? DType::F32 : spec_.dtype;
    tensors.add_f32(name, dtype, std::move(shape), values);
  }

  // A linear layer with fan-in `cols`: variance 1/cols.
  void linear(InMemoryTensors& tensors, const std::string& name, int64_t rows, int64_t cols) {
    add(tensors, name, {rows, cols}, 0.0, std::sqrt(3.0 / static_cast<double>(cols)));
  }

 private:
  const SyntheticModelSpec& spec_;
  SamplingRandom random_;
};

}  // namespace

SyntheticModel make_synthetic_model(const SyntheticModelSpec& spec) {
  SyntheticModel model;
  ModelConfig& c = model.config;
  c.architecture = spec.architecture;
  c.model_type = architecture_name(spec.architecture);
  c.vocab_size = spec.vocab_size;
  c.hidden_size = spec.hidden_size;
  c.intermediate_size = spec.intermediate_size;
  c.num_layers = spec.num_layers;
  c.num_heads = spec.num_heads;
  c.num_kv_heads = spec.num_kv_heads;
  c.head_dim = spec.head_dim;
  c.max_position_embeddings = spec.max_position_embeddings;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = spec.rope_theta;
  if (spec.llama3_rope_scaling) {
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 64;
  }
  resolve_rope_frequencies(c);
  c.tie_word_embeddings = spec.tie_word_embeddings;
  c.attention_bias = spec.attention_bias;
  c.o_proj_bias = spec.o_proj_bias;
  c.qk_norm = spec.qk_norm;
  c.torch_dtype = spec.dtype == DType::F32    ? "float32"
                  : spec.dtype == DType::F16  ? "float16"
                  : spec.dtype == DType::BF16 ? "bfloat16"
                                              : "";  // quantised: no torch dtype
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};

  model.tensors = std::make_shared<InMemoryTensors>();
  InMemoryTensors& t = *model.tensors;
  TensorFiller fill(spec);
  const int64_t hidden = spec.hidden_size, q_size = spec.num_heads * spec.head_dim;
  const int64_t kv_size = spec.num_kv_heads * spec.head_dim, inner = spec.intermediate_size;
  fill.add(t, "model.embed_tokens.weight", {spec.vocab_size, hidden}, 0.0, 1.0);
  for (int64_t i = 0; i < spec.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    fill.add(t, p + "input_layernorm.weight", {hidden}, 1.0, 0.2);
    fill.linear(t, p + "self_attn.q_proj.weight", q_size, hidden);
    fill.linear(t, p + "self_attn.k_proj.weight", kv_size, hidden);
    fill.linear(t, p + "self_attn.v_proj.weight", kv_size, hidden);
    if (spec.attention_bias) {
      fill.add(t, p + "self_attn.q_proj.bias", {q_size}, 0.0, 0.2);
      fill.add(t, p + "self_attn.k_proj.bias", {kv_size}, 0.0, 0.2);
      fill.add(t, p + "self_attn.v_proj.bias", {kv_size}, 0.0, 0.2);
    }
    if (spec.qk_norm) {
      fill.add(t, p + "self_attn.q_norm.weight", {spec.head_dim}, 1.0, 0.2);
      fill.add(t, p + "self_attn.k_norm.weight", {spec.head_dim}, 1.0, 0.2);
    }
    fill.linear(t, p + "self_attn.o_proj.weight", hidden, q_size);
    if (spec.o_proj_bias) fill.add(t, p + "self_attn.o_proj.bias", {hidden}, 0.0, 0.2);
    fill.add(t, p + "post_attention_layernorm.weight", {hidden}, 1.0, 0.2);
    fill.linear(t, p + "mlp.gate_proj.weight", inner, hidden);
    fill.linear(t, p + "mlp.up_proj.weight", inner, hidden);
    fill.linear(t, p + "mlp.down_proj.weight", hidden, inner);
  }
  fill.add(t, "model.norm.weight", {hidden}, 1.0, 0.2);
  if (!spec.tie_word_embeddings) fill.linear(t, "lm_head.weight", spec.vocab_size, hidden);
  return model;
}

SyntheticModelSpec synthetic_model_preset(const std::string& name) {
  SyntheticModelSpec spec;
  if (name == "tiny") return spec;
  spec.dtype = DType::BF16;
  spec.max_position_embeddings = 32768;
  if (name == "qwen2.5-0.5b" || name == "qwen2.5-1.5b") {
    const bool small = name == "qwen2.5-0.5b";
    spec.architecture = Architecture::Qwen2;
    spec.vocab_size = 151936;
    spec.hidden_size = small ? 896 : 1536;
    spec.intermediate_size = small ? 4864 : 8960;
    spec.num_layers = small ? 24 : 28;
    spec.num_heads = small ? 14 : 12;
    spec.num_kv_heads = 2;
    spec.head_dim = small ? 64 : 128;
    spec.rope_theta = 1000000.0;
    spec.attention_bias = true;
    spec.tie_word_embeddings = true;
    return spec;
  }
  if (name == "llama-3.2-1b") {
    spec.architecture = Architecture::Llama;
    spec.vocab_size = 128256;
    spec.hidden_size = 2048;
    spec.intermediate_size = 8192;
    spec.num_layers = 16;
    spec.num_heads = 32;
    spec.num_kv_heads = 8;
    spec.head_dim = 64;
    spec.rope_theta = 500000.0;
    spec.llama3_rope_scaling = true;
    spec.tie_word_embeddings = true;
    return spec;
  }
  throw RequestError("unknown synthetic model '" + name + "'; known: tiny, qwen2.5-0.5b, qwen2.5-1.5b, llama-3.2-1b");
}

}  // namespace tidal
