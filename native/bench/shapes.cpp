#include "bench/shapes.h"

#include "model/rope_frequencies.h"
#include "tidal/error.h"

namespace tidal::bench {

ModelConfig bench_shape(const std::string& name) {
  ModelConfig c;
  c.architecture = Architecture::Llama;
  c.model_type = "llama";
  c.head_dim = 128;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  if (name == "llama-3.1-8b") {
    c.vocab_size = 128256, c.hidden_size = 4096, c.intermediate_size = 14336, c.num_layers = 32;
    c.num_heads = 32, c.num_kv_heads = 8, c.rope_theta = 500000.0;
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
  } else if (name == "llama-2-7b") {
    c.vocab_size = 32000, c.hidden_size = 4096, c.intermediate_size = 11008, c.num_layers = 32;
    c.num_heads = 32, c.num_kv_heads = 32;
  } else if (name == "qwen2.5-coder-7b") {
    c.architecture = Architecture::Qwen2, c.model_type = "qwen2";
    c.vocab_size = 152064, c.hidden_size = 3584, c.intermediate_size = 18944, c.num_layers = 28;
    c.num_heads = 28, c.num_kv_heads = 4, c.rope_theta = 1000000.0, c.attention_bias = true;
  } else if (name == "qwen2.5-coder-1.5b") {
    c.architecture = Architecture::Qwen2, c.model_type = "qwen2";
    c.vocab_size = 151936, c.hidden_size = 1536, c.intermediate_size = 8960, c.num_layers = 28;
    c.num_heads = 12, c.num_kv_heads = 2, c.rope_theta = 1000000.0, c.attention_bias = true;
    c.tie_word_embeddings = true;
  } else if (name == "qwen2.5-coder-0.5b") {
    c.architecture = Architecture::Qwen2, c.model_type = "qwen2";
    c.vocab_size = 151936, c.hidden_size = 896, c.intermediate_size = 4864, c.num_layers = 24;
    c.num_heads = 14, c.num_kv_heads = 2, c.head_dim = 64, c.rope_theta = 1000000.0, c.attention_bias = true;
    c.tie_word_embeddings = true;
  } else if (name == "qwen3-8b") {
    c.architecture = Architecture::Qwen3, c.model_type = "qwen3";
    c.vocab_size = 151936, c.hidden_size = 4096, c.intermediate_size = 12288, c.num_layers = 36;
    c.num_heads = 32, c.num_kv_heads = 8, c.rope_theta = 1000000.0, c.qk_norm = true, c.rms_norm_eps = 1e-6;
  } else {
    throw RequestError("unknown shape '" + name +
                       "'; use llama-3.1-8b, llama-2-7b, qwen2.5-coder-7b, qwen2.5-coder-1.5b, "
                       "qwen2.5-coder-0.5b or qwen3-8b");
  }
  resolve_rope_frequencies(c);
  return c;
}
}  // namespace tidal::bench
