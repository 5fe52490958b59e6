// The forward pass against a float64 reference, and the equalities between its execution
// orders: one prefill vs prefill + decode, chunked vs whole, all-logits vs last.
#include <cmath>

#include "engine_test_models.h"
#include "harness.h"
#include "reference_forward.h"

using namespace tidal;
using namespace tidal_test;

TIDAL_TEST(engine_prefill_logits_match_float64_reference_for_every_architecture) {
  for (const std::string& kind : tiny_model_kinds()) {
    SyntheticModel model = make_synthetic_model(tiny_model_spec(kind));
    auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
    const auto tokens = random_tokens(37, model.config.vocab_size, 11);
    const SequenceId seq = engine->create_sequence();
    PrefillOptions all;
    all.all_logits = true;
    const std::vector<float> logits = engine->prefill(seq, tokens, all);
    const auto expected = ReferenceModel(model.config, *model.tensors).logits(tokens);
    const int64_t vocab = model.config.vocab_size;
    CHECK_EQ(logits.size(), tokens.size() * static_cast<size_t>(vocab));
    double worst = 0.0, largest = 0.0;
    for (size_t t = 0; t < tokens.size(); ++t)
      for (int64_t i = 0; i < vocab; ++i) {
        worst = std::fmax(worst, std::fabs(logits[t * vocab + i] - expected[t][i]));
        largest = std::fmax(largest, std::fabs(expected[t][i]));
      }
    if (!(worst <= 2e-5 * std::fmax(1.0, largest)))
      record_failure(__FILE__, __LINE__, kind + ": max |logit - reference| = " + std::to_string(worst));
    CHECK(largest > 0.1);  // logits are not degenerate
  }
}

TIDAL_TEST(engine_prefill_then_decode_equals_one_long_prefill) {
  for (const std::string& kind : {std::string("llama"), std::string("qwen3"), std::string("llama-bf16")}) {
    SyntheticModel model = make_synthetic_model(tiny_model_spec(kind));
    auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
    const auto tokens = random_tokens(40, model.config.vocab_size, 5);
    const SequenceId whole = engine->create_sequence();
    const std::vector<float> expected = engine->prefill(whole, tokens);

    const SequenceId stepwise = engine->create_sequence();
    engine->prefill(stepwise, std::vector<int32_t>(tokens.begin(), tokens.begin() + 29));
    std::vector<float> logits;
    for (size_t i = 29; i < tokens.size(); ++i) logits = engine->decode(stepwise, tokens[i]);
    CHECK(max_relative_difference(logits, expected) <= 1e-5);
    CHECK(bitwise_equal(logits, expected));  // same summation order by construction
  }
}

TIDAL_TEST(engine_chunked_prefill_equals_whole_prefill) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("qwen2"));
  EngineOptions chunked = test_engine_options();
  chunked.prefill_chunk = 3;
  auto a = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  auto b = Engine::from_tensors(model.config, model.tensors, chunked);
  const auto tokens = random_tokens(23, model.config.vocab_size, 9);
  PrefillOptions all;
  all.all_logits = true;
  const auto expected = a->prefill(a->create_sequence(), tokens, all);
  const auto got = b->prefill(b->create_sequence(), tokens, all);
  CHECK(bitwise_equal(got, expected));
}

TIDAL_TEST(engine_all_logits_rows_equal_per_token_decode) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("llama3"));
  auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  const auto tokens = random_tokens(18, model.config.vocab_size, 3);
  PrefillOptions all;
  all.all_logits = true;
  const auto rows = engine->prefill(engine->create_sequence(), tokens, all);
  const SequenceId seq = engine->create_sequence();
  const int64_t vocab = model.config.vocab_size;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const auto logits = engine->decode(seq, tokens[t]);
    const std::vector<float> row(rows.begin() + static_cast<int64_t>(t) * vocab,
                                 rows.begin() + static_cast<int64_t>(t + 1) * vocab);
    CHECK(bitwise_equal(logits, row));
  }
}

TIDAL_TEST(engine_thread_count_does_not_change_logits) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("deep"));
  EngineOptions one = test_engine_options();
  one.threads = 1;
  EngineOptions three = test_engine_options();
  three.threads = 3;
  auto a = Engine::from_tensors(model.config, model.tensors, one);
  auto b = Engine::from_tensors(model.config, model.tensors, three);
  const auto tokens = random_tokens(33, model.config.vocab_size, 21);
  CHECK(bitwise_equal(a->prefill(a->create_sequence(), tokens), b->prefill(b->create_sequence(), tokens)));
}

TIDAL_TEST(engine_model_info_describes_the_model) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("qwen2"));
  auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  const ModelInfo& info = engine->model_info();
  CHECK_EQ(info.architecture, std::string("qwen2"));
  CHECK_EQ(info.num_layers, 4);
  CHECK_EQ(info.num_heads, 4);
  CHECK_EQ(info.num_kv_heads, 2);
  CHECK_EQ(info.head_dim, 12);
  CHECK_EQ(info.vocab_size, 96);
  CHECK_EQ(info.max_context, 512);
  CHECK_EQ(info.dtype, std::string("f32"));
  CHECK_EQ(info.backend, std::string("cpu"));
  CHECK_EQ(info.threads, 2);
  CHECK(info.weight_bytes > 0);
  CHECK_EQ(info.eos_token_ids.size(), size_t(1));
  // 4 layers x 2 kv heads x 12 dims x (K + V) x 4 bytes, plus the page bounds (1/16 of K+V).
  CHECK_EQ(info.kv_bytes_per_token, size_t(4 * 2 * 12 * 2 * 4 + 4 * 2 * 12 * 2 * 4 / 16));
}
