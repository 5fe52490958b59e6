#include <string>

#include "harness.h"
#include "model/model_config.h"
#include "safetensors_writer.h"
#include "tidal/error.h"

using tidal::Architecture;
using tidal::load_model_config;
using tidal::ModelConfig;
using tidal::parse_model_config;

namespace {

// A minimal valid body; tests append or override fields.
std::string config_with(const std::string& model_type_and_extra,
                        const std::string& sizes =
                            R"("vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
                               "num_hidden_layers": 32, "num_attention_heads": 32)") {
  return "{" + model_type_and_extra + ", " + sizes + "}";
}

std::string llama_with(const std::string& extra) {
  return config_with(R"("model_type": "llama", "architectures": ["LlamaForCausalLM"], )" + extra);
}

}  // namespace

TIDAL_TEST(config_llama2_old_style) {
  // Llama-2-7b-hf as published (transformers 4.x spelling).
  ModelConfig c = parse_model_config(R"({
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false,
    "torch_dtype": "float16", "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})");
  CHECK(c.architecture == Architecture::Llama);
  CHECK_EQ(std::string(tidal::architecture_name(c.architecture)), std::string("llama"));
  CHECK_EQ(c.model_type, std::string("llama"));
  CHECK_EQ(c.vocab_size, 32000);
  CHECK_EQ(c.hidden_size, 4096);
  CHECK_EQ(c.intermediate_size, 11008);
  CHECK_EQ(c.num_layers, 32);
  CHECK_EQ(c.num_heads, 32);
  CHECK_EQ(c.num_kv_heads, 32);
  CHECK_EQ(c.head_dim, 128);
  CHECK_EQ(c.max_position_embeddings, 4096);
  CHECK_EQ(c.rms_norm_eps, 1e-5);
  CHECK_EQ(c.rope_theta, 10000.0);
  CHECK_EQ(c.rope_scaling.type, std::string("none"));
  CHECK_EQ(c.tie_word_embeddings, false);
  CHECK_EQ(c.attention_bias, false);
  CHECK_EQ(c.o_proj_bias, false);
  CHECK_EQ(c.qk_norm, false);
  CHECK_EQ(c.sliding_window, 0);
  CHECK_EQ(c.torch_dtype, std::string("float16"));
  CHECK_EQ(c.bos_token_ids.size(), size_t(1));
  CHECK_EQ(c.bos_token_ids[0], 1);
  CHECK_EQ(c.eos_token_ids.size(), size_t(1));
  CHECK_EQ(c.eos_token_ids[0], 2);
}

TIDAL_TEST(config_llama31_rope_scaling_old_form) {
  // Llama-3.1-8B-Instruct's config.json fields (transformers 4.43 spelling).
  ModelConfig c = parse_model_config(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256})");
  CHECK_EQ(c.num_kv_heads, 8);
  CHECK_EQ(c.head_dim, 128);
  CHECK_EQ(c.rope_theta, 500000.0);
  CHECK_EQ(c.rope_scaling.type, std::string("llama3"));
  CHECK_EQ(c.rope_scaling.factor, 8.0);
  CHECK_EQ(c.rope_scaling.low_freq_factor, 1.0);
  CHECK_EQ(c.rope_scaling.high_freq_factor, 4.0);
  CHECK_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  CHECK_EQ(c.max_position_embeddings, 131072);
  CHECK_EQ(c.eos_token_ids.size(), size_t(3));
  CHECK_EQ(c.eos_token_ids[2], 128009);
  CHECK_EQ(c.bos_token_ids[0], 128000);
  CHECK_EQ(c.torch_dtype, std::string("bfloat16"));

  // Llama 3.2 wrote the same object with the older "type" key; factor 32.
  ModelConfig old_key = parse_model_config(llama_with(
      R"("rope_theta": 500000, "rope_scaling": {"type": "llama3", "factor": 32, "low_freq_factor": 1,
         "high_freq_factor": 4, "original_max_position_embeddings": 8192})"));
  CHECK_EQ(old_key.rope_scaling.type, std::string("llama3"));
  CHECK_EQ(old_key.rope_scaling.factor, 32.0);
  CHECK_EQ(old_key.rope_theta, 500000.0);

  // rope_type "default" in the old form means no scaling.
  ModelConfig plain = parse_model_config(llama_with(R"("rope_scaling": {"rope_type": "default"})"));
  CHECK_EQ(plain.rope_scaling.type, std::string("none"));
}

TIDAL_TEST(config_rope_parameters_new_form) {
  ModelConfig c = parse_model_config(llama_with(
      R"("dtype": "bfloat16", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
         "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"));
  CHECK_EQ(c.rope_theta, 500000.0);
  CHECK_EQ(c.rope_scaling.type, std::string("llama3"));
  CHECK_EQ(c.rope_scaling.factor, 8.0);
  CHECK_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  CHECK_EQ(c.torch_dtype, std::string("bfloat16"));

  ModelConfig d =
      parse_model_config(llama_with(R"("rope_parameters": {"rope_type": "default", "rope_theta": 1000000})"));
  CHECK_EQ(d.rope_theta, 1000000.0);
  CHECK_EQ(d.rope_scaling.type, std::string("none"));

  // rope_parameters takes precedence over a stale top-level rope_theta.
  ModelConfig both = parse_model_config(
      llama_with(R"("rope_theta": 10000, "rope_parameters": {"rope_type": "default", "rope_theta": 250000})"));
  CHECK_EQ(both.rope_theta, 250000.0);
  // A type-less rope_parameters is the default rotation.
  ModelConfig untyped = parse_model_config(llama_with(R"("rope_parameters": {"rope_theta": 75000})"));
  CHECK_EQ(untyped.rope_theta, 75000.0);
  CHECK_EQ(untyped.rope_scaling.type, std::string("none"));
}

TIDAL_TEST(config_mistral_qwen2_qwen3) {
  // Mistral-7B-v0.1: sliding window recorded, no biases even if a config claims them.
  ModelConfig m = parse_model_config(R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
    "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "vocab_size": 32000, "max_position_embeddings": 32768, "attention_bias": true})");
  CHECK(m.architecture == Architecture::Mistral);
  CHECK_EQ(m.sliding_window, 4096);
  CHECK_EQ(m.head_dim, 128);
  CHECK_EQ(m.attention_bias, false);
  CHECK_EQ(m.o_proj_bias, false);
  // v0.2+: sliding_window null means none; absent means transformers' default 4096.
  CHECK_EQ(parse_model_config(config_with(R"("model_type": "mistral", "sliding_window": null)")).sliding_window, 0);
  CHECK_EQ(parse_model_config(config_with(R"("model_type": "mistral")")).sliding_window, 4096);
  CHECK_EQ(parse_model_config(config_with(R"("model_type": "mistral")")).max_position_embeddings, 131072);

  // Qwen2.5-0.5B-Instruct: q/k/v biases always, tied embeddings, window off.
  ModelConfig q2 = parse_model_config(R"({"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2",
    "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
  CHECK(q2.architecture == Architecture::Qwen2);
  CHECK_EQ(q2.head_dim, 64);
  CHECK_EQ(q2.num_kv_heads, 2);
  CHECK_EQ(q2.attention_bias, true);
  CHECK_EQ(q2.o_proj_bias, false);
  CHECK_EQ(q2.qk_norm, false);
  CHECK_EQ(q2.tie_word_embeddings, true);
  CHECK_EQ(q2.sliding_window, 0);
  CHECK_EQ(q2.rope_theta, 1000000.0);
  CHECK_EQ(q2.rms_norm_eps, 1e-6);
  CHECK_EQ(q2.eos_token_ids[0], 151645);
  // attention_bias false in a qwen2 config does not turn the biases off.
  CHECK_EQ(parse_model_config(config_with(R"("model_type": "qwen2", "attention_bias": false)")).attention_bias, true);
  CHECK_EQ(parse_model_config(config_with(R"("model_type": "qwen2", "use_sliding_window": true,
                                              "sliding_window": 4096)"))
               .sliding_window,
           4096);

  // Qwen3-0.6B: head_dim 128 although hidden/heads = 64; q/k norm.
  ModelConfig q3 = parse_model_config(R"({"architectures": ["Qwen3ForCausalLM"], "attention_bias": false,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
    "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
  CHECK(q3.architecture == Architecture::Qwen3);
  CHECK_EQ(q3.head_dim, 128);
  CHECK_EQ(q3.hidden_size, 1024);
  CHECK_EQ(q3.qk_norm, true);
  CHECK_EQ(q3.attention_bias, false);
  CHECK_EQ(q3.o_proj_bias, false);
  CHECK_EQ(q3.tie_word_embeddings, true);
  CHECK_EQ(q3.max_position_embeddings, 40960);
  // attention_bias from the config; head_dim defaults to Qwen3's 128, not hidden/heads.
  ModelConfig q3b = parse_model_config(config_with(R"("model_type": "qwen3", "attention_bias": true)",
                                                   R"("vocab_size": 1000, "hidden_size": 256, "intermediate_size": 512,
                                                      "num_hidden_layers": 2, "num_attention_heads": 4)"));
  CHECK_EQ(q3b.attention_bias, true);
  CHECK_EQ(q3b.o_proj_bias, true);
  CHECK_EQ(q3b.head_dim, 128);

  // Llama with attention_bias biases o_proj as well.
  ModelConfig biased = parse_model_config(llama_with(R"("attention_bias": true)"));
  CHECK_EQ(biased.attention_bias, true);
  CHECK_EQ(biased.o_proj_bias, true);
}

TIDAL_TEST(config_defaults_and_lenient_forms) {
  // Only model_type: architecture found; num_key_value_heads defaults to the head count.
  ModelConfig c = parse_model_config(config_with(R"("model_type": "llama")"));
  CHECK_EQ(c.num_kv_heads, 32);
  CHECK_EQ(c.max_position_embeddings, 2048);
  CHECK_EQ(c.rms_norm_eps, 1e-6);
  CHECK_EQ(c.rope_theta, 10000.0);
  CHECK(c.bos_token_ids.empty());
  CHECK(c.eos_token_ids.empty());
  CHECK_EQ(c.torch_dtype, std::string(""));
  // Only architectures.
  CHECK(parse_model_config(config_with(R"("architectures": ["Qwen2ForCausalLM"])")).architecture ==
        Architecture::Qwen2);
  // Integral doubles are accepted for integer fields; null ids mean none.
  ModelConfig d = parse_model_config(config_with(R"("model_type": "llama", "num_key_value_heads": 8.0,
                                                    "bos_token_id": null, "eos_token_id": [2, 3])"));
  CHECK_EQ(d.num_kv_heads, 8);
  CHECK(d.bos_token_ids.empty());
  CHECK_EQ(d.eos_token_ids.size(), size_t(2));
  CHECK_EQ(d.eos_token_ids[1], 3);
  // Explicit head_dim with hidden_size not divisible by the head count is fine.
  ModelConfig e = parse_model_config(config_with(R"("model_type": "llama", "head_dim": 64)",
                                                 R"("vocab_size": 100, "hidden_size": 100, "intermediate_size": 64,
                                                    "num_hidden_layers": 1, "num_attention_heads": 3)"));
  CHECK_EQ(e.head_dim, 64);
}

TIDAL_TEST(config_rejects_unsupported_architectures) {
  CHECK_THROWS_WITH(
      parse_model_config(config_with(R"("model_type": "gpt2")")),
      "unsupported model architecture 'gpt2' (model_type 'gpt2'); supported: llama, mistral, qwen2, qwen3");
  CHECK_THROWS_WITH(parse_model_config(config_with(R"("model_type": "gpt2", "architectures": ["GPT2LMHeadModel"])")),
                    "unsupported model architecture 'GPT2LMHeadModel' (model_type 'gpt2'); supported: llama, mistral");
  CHECK_THROWS_WITH(parse_model_config(config_with(R"("architectures": ["MixtralForCausalLM"])")),
                    "unsupported model architecture 'MixtralForCausalLM' (no model_type)");
  // A classification head has no lm_head.
  CHECK_THROWS_WITH(
      parse_model_config(config_with(R"("model_type": "llama", "architectures": ["LlamaForSequenceClassification"])")),
      "unsupported model architecture 'LlamaForSequenceClassification' (model_type 'llama')");
  CHECK_THROWS_WITH(parse_model_config(config_with(R"("model_type": "llama", "architectures": ["Qwen2ForCausalLM"])")),
                    "architectures[0] 'Qwen2ForCausalLM' does not match model_type 'llama'");
  CHECK_THROWS_WITH(parse_model_config(config_with(R"("hidden_act": "silu")")),
                    "neither 'model_type' nor 'architectures' is given");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("quantization_config": {"quant_method": "gptq", "bits": 4})")),
                    "quantized checkpoints are not supported (quantization_config method 'gptq')");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("hidden_act": "gelu")")), "hidden_act 'gelu' is not supported");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("mlp_bias": true)")), "mlp_bias = true");
}

TIDAL_TEST(config_rejects_absurd_values) {
  const std::string type = R"("model_type": "llama")";
  auto sizes = [](const std::string& vocab, const std::string& hidden, const std::string& layers,
                  const std::string& heads) {
    return R"("vocab_size": )" + vocab + R"(, "hidden_size": )" + hidden + R"(, "intermediate_size": 64, )" +
           R"("num_hidden_layers": )" + layers + R"(, "num_attention_heads": )" + heads;
  };
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "0", "2", "4"))),
                    "config.json: hidden_size = 0 is out of range (expected 1 to 131072)");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "-64", "2", "4"))),
                    "hidden_size = -64 is out of range");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "131073", "2", "1"))), "hidden_size = 131073");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("16777217", "64", "2", "4"))),
                    "vocab_size = 16777217 is out of range (expected 1 to 16777216)");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "64", "4097", "4"))),
                    "num_hidden_layers = 4097 is out of range (expected 1 to 4096)");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "64", "0", "4"))), "num_hidden_layers = 0");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "64", "2", "0"))), "num_attention_heads = 0");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "64", "2", "99999999999999999999"))),
                    "field 'num_attention_heads' must be an integer, found number 1e+20");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "\"64\"", "2", "4"))),
                    "field 'hidden_size' must be an integer, found string \"64\"");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "64.5", "2", "4"))),
                    "field 'hidden_size' must be an integer, found number 64.5");
  CHECK_THROWS_WITH(parse_model_config(config_with(type, sizes("100", "100", "2", "3"))),
                    "hidden_size = 100 is not divisible by num_attention_heads = 3 and no head_dim is given");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "num_key_value_heads": 5)")),
                    "num_attention_heads = 32 is not a multiple of num_key_value_heads = 5");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "num_key_value_heads": 64)")),
                    "num_key_value_heads = 64 is out of range (expected 1 to 32)");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "num_key_value_heads": 0)")), "num_key_value_heads = 0");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "head_dim": 2048)")),
                    "head_dim = 2048 is out of range (expected 1 to 1024)");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "head_dim": 127)")), "head_dim = 127 is odd");
  CHECK_THROWS_WITH(
      parse_model_config(config_with(type + R"(, "intermediate_size": 2000000)", sizes("1", "64", "1", "1"))),
      "duplicate key \"intermediate_size\"");
  CHECK_THROWS_WITH(parse_model_config(R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64,
                                          "intermediate_size": 2000000, "num_hidden_layers": 1, "num_attention_heads": 1})"),
                    "intermediate_size = 2000000 is out of range");
  CHECK_THROWS_WITH(parse_model_config(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 64,
                                          "num_hidden_layers": 1, "num_attention_heads": 1})"),
                    "config.json: required field 'vocab_size' is missing");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "rms_norm_eps": 0)")),
                    "rms_norm_eps = 0 is out of range");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "rope_theta": -1)")), "rope_theta = -1 is out of range");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "max_position_embeddings": 0)")),
                    "max_position_embeddings = 0 is out of range");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "eos_token_id": -1)")),
                    "eos_token_id = -1 is not a token id of the vocabulary (0 to 31999)");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "bos_token_id": [1, 32000])")), "bos_token_id = 32000");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "eos_token_id": "2")")),
                    "field 'eos_token_id' must be an integer, found string \"2\"");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "tie_word_embeddings": "yes")")),
                    "field 'tie_word_embeddings' must be true or false");
  CHECK_THROWS_WITH(parse_model_config(config_with(type + R"(, "sliding_window": -5)")), "sliding_window = -5");
  CHECK_THROWS_WITH(parse_model_config(R"(["model_type", "llama"])"),
                    "the top level must be an object, found an array");
  CHECK_THROWS_WITH(parse_model_config(R"({"model_type": "llama",})"), "config.json is not valid JSON");
}

TIDAL_TEST(config_rejects_unknown_rope_scaling) {
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})")),
                    "unsupported rope_scaling type 'yarn'; supported: default, llama3");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("rope_scaling": {"type": "linear", "factor": 2.0})")),
                    "unsupported rope_scaling type 'linear'");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4})")),
                    "unsupported rope_parameters type 'dynamic'");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("rope_scaling": {"factor": 2.0})")),
                    "'rope_scaling' has no 'rope_type' (or 'type')");
  CHECK_THROWS_WITH(parse_model_config(llama_with(R"("rope_scaling": "llama3")")),
                    "field 'rope_scaling' must be an object or null, found string \"llama3\"");
  CHECK_THROWS_WITH(parse_model_config(llama_with(
                        R"("rope_scaling": {"rope_type": "llama3", "low_freq_factor": 1, "high_freq_factor": 4,
                           "original_max_position_embeddings": 8192})")),
                    "required field 'rope_scaling.factor' is missing");
  CHECK_THROWS_WITH(parse_model_config(llama_with(
                        R"("rope_parameters": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                           "high_freq_factor": 4})")),
                    "required field 'rope_parameters.original_max_position_embeddings' is missing");
  CHECK_THROWS_WITH(parse_model_config(llama_with(
                        R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4,
                           "high_freq_factor": 1, "original_max_position_embeddings": 8192})")),
                    "rope_scaling.high_freq_factor = 1 must be greater than low_freq_factor = 4");
  CHECK_THROWS_WITH(parse_model_config(llama_with(
                        R"("rope_scaling": {"rope_type": "llama3", "factor": 0.5, "low_freq_factor": 1,
                           "high_freq_factor": 4, "original_max_position_embeddings": 8192})")),
                    "rope_scaling.factor = 0.5 is out of range");
  CHECK_THROWS_WITH(parse_model_config(llama_with(
                        R"("rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e4}})")),
                    "holds per-layer-type entries ('full_attention')");
  CHECK_THROWS_WITH(
      parse_model_config(llama_with(
          R"("rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5})")),
      "rope_parameters.partial_rotary_factor other than 1 (partial rotary embeddings) is not supported");
}

TIDAL_TEST(config_loads_every_reference_fixture) {
  const std::string models = tidal_test::fixtures_dir() + "/models";
  ModelConfig l3 = load_model_config(models + "/llama3-gqa-f32");
  CHECK(l3.architecture == Architecture::Llama);
  CHECK_EQ(l3.num_heads, 4);
  CHECK_EQ(l3.num_kv_heads, 2);
  CHECK_EQ(l3.head_dim, 16);
  CHECK_EQ(l3.rope_theta, 500000.0);
  CHECK_EQ(l3.rope_scaling.type, std::string("llama3"));
  CHECK_EQ(l3.rope_scaling.factor, 8.0);
  CHECK_EQ(l3.rope_scaling.original_max_position_embeddings, 64);
  CHECK_EQ(l3.torch_dtype, std::string("float32"));

  ModelConfig l2 = load_model_config(models + "/llama2-mha-bf16");
  CHECK_EQ(l2.num_kv_heads, 4);
  CHECK_EQ(l2.rope_scaling.type, std::string("none"));
  CHECK_EQ(l2.torch_dtype, std::string("bfloat16"));
  CHECK_EQ(l2.vocab_size, 512);
  CHECK_EQ(l2.num_layers, 6);
  CHECK_EQ(l2.intermediate_size, 176);

  ModelConfig mi = load_model_config(models + "/mistral-gqa-f16");
  CHECK(mi.architecture == Architecture::Mistral);
  CHECK_EQ(mi.num_heads, 8);
  CHECK_EQ(mi.head_dim, 8);
  CHECK_EQ(mi.rope_theta, 1000000.0);
  CHECK_EQ(mi.sliding_window, 0);

  ModelConfig q2 = load_model_config(models + "/qwen2-tied-sharded-f32");
  CHECK(q2.architecture == Architecture::Qwen2);
  CHECK_EQ(q2.tie_word_embeddings, true);
  CHECK_EQ(q2.attention_bias, true);
  CHECK_EQ(q2.head_dim, 16);

  ModelConfig q3 = load_model_config(models + "/qwen3-qknorm-f32");
  CHECK(q3.architecture == Architecture::Qwen3);
  CHECK_EQ(q3.head_dim, 32);
  CHECK_EQ(q3.qk_norm, true);
  CHECK_EQ(q3.rms_norm_eps, 1e-5);
  CHECK_EQ(q3.eos_token_ids[0], 2);
}

TIDAL_TEST(config_load_errors_name_the_file) {
  tidal_test::TempDir dir;
  CHECK_THROWS_WITH(load_model_config(dir.path()), "cannot read the model's config.json");
  tidal_test::write_text(dir.file("config.json"), R"({"model_type": "llama", "vocab_size": 10})");
  CHECK_THROWS_WITH(load_model_config(dir.path()),
                    "required field 'hidden_size' is missing (in '" + dir.file("config.json") + "')");
  tidal_test::write_text(dir.file("config.json"), "");
  CHECK_THROWS_WITH(load_model_config(dir.path()), "config.json is not valid JSON");
}
