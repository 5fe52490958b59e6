// Sequences: fork, trim, release, the context cap, token validation, KV memory accounting
// and the memory cap, and the model binding checks.
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/tensor_source.h"
#include "engine_test_models.h"
#include "harness.h"
#include "model/half.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

TIDAL_TEST(engine_fork_then_decode_equals_decode_on_a_fresh_sequence) {
  SyntheticModelSpec spec = tiny_model_spec("qwen2");
  auto engine = make_test_engine(spec);
  const auto tokens = random_tokens(45, spec.vocab_size, 1);
  const SequenceId source = engine->create_sequence();
  engine->prefill(source, tokens);
  for (int64_t length : {int64_t{45}, int64_t{32}, int64_t{21}}) {
    const SequenceId fork = engine->fork_sequence(source, length);
    CHECK_EQ(engine->sequence_length(fork), length);
    const SequenceId fresh = engine->create_sequence();
    engine->prefill(fresh, std::vector<int32_t>(tokens.begin(), tokens.begin() + length));
    for (int32_t next : {5, 17, 33}) CHECK(bitwise_equal(engine->decode(fork, next), engine->decode(fresh, next)));
    engine->release_sequence(fork);
    engine->release_sequence(fresh);
  }
  // The source is unaffected by its forks' decoding.
  const SequenceId check = engine->create_sequence();
  engine->prefill(check, tokens);
  CHECK(bitwise_equal(engine->decode(source, 9), engine->decode(check, 9)));
}

TIDAL_TEST(engine_fork_shares_kv_pages) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  const SequenceId source = engine->create_sequence();
  engine->prefill(source, random_tokens(64, spec.vocab_size, 2));
  const size_t before = engine->usage().kv_bytes;
  CHECK_EQ(before, 64 * engine->model_info().kv_bytes_per_token);
  const SequenceId fork = engine->fork_sequence(source);
  CHECK_EQ(engine->usage().kv_bytes, before);
  CHECK_EQ(engine->usage().sequences, 2);
  engine->decode(fork, 3);  // a new page for position 64
  CHECK_EQ(engine->usage().kv_bytes, before + 16 * engine->model_info().kv_bytes_per_token);
  engine->release_sequence(fork);
  engine->release_sequence(source);
  CHECK_EQ(engine->usage().kv_bytes, size_t(0));
  CHECK_EQ(engine->usage().sequences, 0);
}

TIDAL_TEST(engine_trim_then_reprefill_equals_original) {
  SyntheticModelSpec spec = tiny_model_spec("llama3");
  auto engine = make_test_engine(spec);
  const auto tokens = random_tokens(40, spec.vocab_size, 3);
  const SequenceId seq = engine->create_sequence();
  const std::vector<float> original = engine->prefill(seq, tokens);
  engine->trim_sequence(seq, 19);
  CHECK_EQ(engine->sequence_length(seq), 19);
  CHECK((engine->sequence_tokens(seq) == std::vector<int32_t>(tokens.begin(), tokens.begin() + 19)));
  CHECK(bitwise_equal(engine->prefill(seq, std::vector<int32_t>(tokens.begin() + 19, tokens.end())), original));
  // Trimming by nothing keeps the logits; trimming one token and prefilling nothing re-runs it.
  engine->trim_sequence(seq, 40);
  CHECK(bitwise_equal(engine->prefill(seq, {}), original));
  engine->trim_sequence(seq, 39);
  const SequenceId shorter = engine->create_sequence();
  CHECK(bitwise_equal(engine->prefill(seq, {}),
                      engine->prefill(shorter, std::vector<int32_t>(tokens.begin(), tokens.begin() + 39))));
  CHECK_THROWS_WITH(engine->trim_sequence(seq, 41), "cannot trim");
}

TIDAL_TEST(engine_context_cap_is_a_request_error) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  EngineOptions options = test_engine_options();
  options.max_context = 20;
  auto engine = make_test_engine(spec, options);
  CHECK_EQ(engine->model_info().max_context, 20);
  const SequenceId seq = engine->create_sequence();
  CHECK_THROWS_WITH(engine->prefill(seq, random_tokens(21, spec.vocab_size, 4)), "context limit of 20");
  CHECK_EQ(engine->sequence_length(seq), 0);
  engine->prefill(seq, random_tokens(20, spec.vocab_size, 4));
  CHECK_THROWS_WITH(engine->decode(seq, 1), "context limit");

  // generate stops cleanly when the context fills up.
  engine->trim_sequence(seq, 17);
  GenerateOptions generate;
  generate.max_tokens = 10;
  generate.stop_at_eos = false;
  const GenerateResult result = engine->generate(seq, {}, generate);
  CHECK(result.finish_reason == FinishReason::ContextFull);
  CHECK_EQ(result.tokens.size(), size_t(3));
  CHECK_EQ(engine->sequence_length(seq), 20);

  EngineOptions too_long = test_engine_options();
  too_long.max_context = 100000;
  CHECK_THROWS_WITH(make_test_engine(spec, too_long), "max_context");
}

TIDAL_TEST(engine_rejects_unknown_sequences_and_bad_tokens) {
  auto engine = make_test_engine(tiny_model_spec("llama"));
  CHECK_THROWS_WITH(engine->prefill(77, {1}), "unknown sequence 77");
  const SequenceId seq = engine->create_sequence();
  CHECK_THROWS_WITH(engine->prefill(seq, {1, 96}), "outside the vocabulary");
  CHECK_THROWS_WITH(engine->prefill(seq, {-1}), "outside the vocabulary");
  CHECK_THROWS_WITH(engine->prefill(seq, {}), "empty");
  CHECK_THROWS_WITH(engine->fork_sequence(seq, 3), "cannot fork");
  engine->release_sequence(seq);
  CHECK_THROWS_WITH(engine->release_sequence(seq), "unknown sequence");
  EngineOptions cuda = test_engine_options();
  cuda.backend = "metal";
  CHECK_THROWS_WITH(make_test_engine(tiny_model_spec("llama"), cuda), "backend 'metal'");
}

TIDAL_TEST(engine_kv_memory_cap_throws_out_of_memory_and_keeps_the_sequence) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  EngineOptions options = test_engine_options();
  auto probe = make_test_engine(spec);
  options.max_kv_bytes = 2 * 16 * probe->model_info().kv_bytes_per_token;  // two pages
  auto engine = make_test_engine(spec, options);
  const SequenceId seq = engine->create_sequence();
  const auto tokens = random_tokens(40, spec.vocab_size, 6);
  const std::vector<float> first = engine->prefill(seq, std::vector<int32_t>(tokens.begin(), tokens.begin() + 30));
  CHECK_THROWS_WITH(engine->prefill(seq, std::vector<int32_t>(tokens.begin() + 30, tokens.end())), "bytes");
  CHECK_EQ(engine->sequence_length(seq), 30);
  CHECK(bitwise_equal(engine->prefill(seq, {}), first));
  bool out_of_memory = false;
  try {
    engine->decode(seq, 1);
    engine->decode(seq, 2);
    engine->decode(seq, 3);
  } catch (const OutOfMemoryError&) {
    out_of_memory = true;
  }
  CHECK(out_of_memory);
  CHECK_EQ(engine->sequence_length(seq), 32);
}

TIDAL_TEST(engine_binding_rejects_wrong_shapes_missing_tensors_and_nan) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  {
    SyntheticModel model = make_synthetic_model(spec);
    model.tensors->add_f32("model.layers.1.self_attn.k_proj.weight", DType::F32, {25, 48},
                           std::vector<float>(25 * 48, 0.5f));
    CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, test_engine_options()),
                      "'model.layers.1.self_attn.k_proj.weight' has shape [25, 48], expected [24, 48]");
  }
  {
    SyntheticModel model = make_synthetic_model(spec);
    model.tensors->remove("model.layers.3.mlp.up_proj.weight");
    CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, test_engine_options()),
                      "missing tensor 'model.layers.3.mlp.up_proj.weight'");
  }
  {
    SyntheticModel model = make_synthetic_model(spec);
    float* data = static_cast<float*>(model.tensors->mutable_data("model.layers.2.mlp.down_proj.weight"));
    data[100] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, test_engine_options()),
                      "model.layers.2.mlp.down_proj.weight");
  }
  {
    SyntheticModelSpec bf16 = tiny_model_spec("llama-bf16");
    SyntheticModel model = make_synthetic_model(bf16);
    uint16_t* data = static_cast<uint16_t*>(model.tensors->mutable_data("model.norm.weight"));
    data[3] = 0x7F80;  // +Inf
    CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, test_engine_options()), "model.norm.weight");
  }
  {
    // Tied embeddings need no lm_head; untied ones do.
    SyntheticModel model = make_synthetic_model(tiny_model_spec("qwen2"));
    CHECK(model.tensors->find("lm_head.weight") == nullptr);
    CHECK(Engine::from_tensors(model.config, model.tensors, test_engine_options()) != nullptr);
    model.config.tie_word_embeddings = false;
    CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, test_engine_options()),
                      "missing tensor 'lm_head.weight'");
  }
  {
    SyntheticModel model = make_synthetic_model(spec);
    model.config.num_kv_heads = 3;
    CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, test_engine_options()), "multiple");
  }
  {
    // RoPE frequencies: head_dim / 2 finite positive values, resolved before the engine sees them.
    SyntheticModel model = make_synthetic_model(spec);
    ModelConfig unresolved = model.config;
    unresolved.rope_frequencies.clear();
    CHECK_THROWS_WITH(Engine::from_tensors(unresolved, model.tensors, test_engine_options()),
                      "model config has 0 RoPE frequencies, expected head_dim / 2 = 6 (a config filled in by hand "
                      "needs resolve_rope_frequencies)");
    for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      ModelConfig broken = model.config;
      broken.rope_frequencies[4] = bad;
      CHECK_THROWS_WITH(Engine::from_tensors(broken, model.tensors, test_engine_options()),
                        "RoPE frequency 4 of the model config is");
    }
  }
}

TIDAL_TEST(engine_caps_context_at_an_unapplied_sliding_window) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("mistral-f16"));
  model.config.sliding_window = 64;
  auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  CHECK_EQ(engine->model_info().max_context, 64);
  EngineOptions longer = test_engine_options();
  longer.max_context = 65;
  CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, longer), "sliding_window");
}
