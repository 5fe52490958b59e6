// Tidal and Quest decoding through the engine: with a budget covering the whole context they
// reproduce full attention bitwise; with small budgets they read fewer positions; KV-cache
// correction restores the dense cache.
#include <atomic>
#include <vector>

#include "engine_test_models.h"
#include "harness.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

AttentionOptions tidal_attention(int64_t budget, SelectionPolicy policy = SelectionPolicy::PerQueryHead) {
  AttentionOptions a;
  a.mode = AttentionMode::Tidal;
  a.token_budget = budget;
  a.selection_policy = policy;
  a.selection_layers = {2, 5};  // a re-selection layer in the 8-layer test model
  return a;
}

AttentionOptions quest_attention(int64_t budget) {
  AttentionOptions a;
  a.mode = AttentionMode::Quest;
  a.token_budget = budget;
  return a;
}

// Decodes `steps` tokens after `prompt` with `attention`, returning every step's logits.
std::vector<std::vector<float>> decode_run(Engine& engine, const std::vector<int32_t>& prompt,
                                           const std::vector<int32_t>& next, const AttentionOptions& attention) {
  const SequenceId seq = engine.create_sequence();
  engine.prefill(seq, prompt);
  std::vector<std::vector<float>> out;
  for (int32_t token : next) out.push_back(engine.decode(seq, token, attention));
  engine.release_sequence(seq);
  return out;
}

}  // namespace

TIDAL_TEST(engine_tidal_and_quest_with_budget_covering_context_equal_full_bitwise) {
  for (const std::string& kind : {std::string("deep"), std::string("qwen3"), std::string("llama-mha")}) {
    SyntheticModelSpec spec = tiny_model_spec(kind);
    auto engine = make_test_engine(spec);
    const auto prompt = random_tokens(37, spec.vocab_size, 1);
    const auto next = random_tokens(6, spec.vocab_size, 2);
    const auto full = decode_run(*engine, prompt, next, AttentionOptions{});
    const SelectionPolicy policies[] = {SelectionPolicy::PerQueryHead, SelectionPolicy::PerKvHeadMax,
                                        SelectionPolicy::PerKvHeadSum};
    for (SelectionPolicy policy : policies) {
      AttentionOptions tidal_options = tidal_attention(43, policy);  // == context at the last step
      if (spec.num_layers < 6) tidal_options.selection_layers = {2};
      const auto tidal = decode_run(*engine, prompt, next, tidal_options);
      for (size_t i = 0; i < full.size(); ++i) CHECK(bitwise_equal(tidal[i], full[i]));
    }
    for (int64_t budget : {int64_t{48}, int64_t{4096}}) {  // 3 pages cover 43 tokens
      const auto quest = decode_run(*engine, prompt, next, quest_attention(budget));
      for (size_t i = 0; i < full.size(); ++i) CHECK(bitwise_equal(quest[i], full[i]));
    }
  }
}

TIDAL_TEST(engine_small_budgets_read_fewer_positions_and_change_logits) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(90, spec.vocab_size, 3);
  const auto next = random_tokens(2, spec.vocab_size, 4);
  const auto full = decode_run(*engine, prompt, next, AttentionOptions{});

  const auto tidal = decode_run(*engine, prompt, next, tidal_attention(8));
  CHECK(!bitwise_equal(tidal.back(), full.back()));
  UsageStats usage = engine->usage();
  CHECK(usage.last_selection.mode == AttentionMode::Tidal);
  CHECK_EQ(usage.last_selection.context_length, 92);
  CHECK_EQ(usage.last_selection.selection_layers_run, 2);
  // Layers 0-2 and 5 dense (4 of 8), the other four read 8 of 92 positions per head.
  CHECK_NEAR(usage.last_selection.attended_fraction, (4.0 * 92 + 4.0 * 8) / (8.0 * 92), 1e-12);

  const auto quest = decode_run(*engine, prompt, next, quest_attention(32));
  CHECK(!bitwise_equal(quest.back(), full.back()));
  usage = engine->usage();
  CHECK(usage.last_selection.mode == AttentionMode::Quest);
  CHECK_EQ(usage.last_selection.selection_layers_run, 6);
  CHECK(usage.last_selection.attended_fraction < 0.6);
  for (const auto& step : quest)
    for (float v : step) CHECK(std::isfinite(v));
}

TIDAL_TEST(engine_tidal_kv_correction_restores_the_dense_cache) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(70, spec.vocab_size, 5);
  GenerateOptions options;
  options.max_tokens = 5;  // 4 decode steps; a correction after the 4th
  options.stop_at_eos = false;
  options.attention = tidal_attention(6);
  options.attention.correction_interval = 4;

  const SequenceId corrected = engine->create_sequence();
  const GenerateResult result = engine->generate(corrected, prompt, options);
  CHECK_EQ(result.tokens.size(), size_t(5));
  CHECK_EQ(engine->usage().last_selection.corrections, 1);
  // The last token is pending; processing it now reads a cache that must equal a dense one.
  const std::vector<float> after_correction = engine->prefill(corrected, {});

  std::vector<int32_t> everything = prompt;
  everything.insert(everything.end(), result.tokens.begin(), result.tokens.end());
  const std::vector<float> dense = engine->prefill(engine->create_sequence(), everything);
  CHECK(bitwise_equal(after_correction, dense));

  // Without correction the sparse K/V stay in the cache and the logits differ.
  options.attention.correction_interval = 0;
  const SequenceId polluted = engine->create_sequence();
  const GenerateResult sparse = engine->generate(polluted, prompt, options);
  std::vector<int32_t> sparse_everything = prompt;
  sparse_everything.insert(sparse_everything.end(), sparse.tokens.begin(), sparse.tokens.end());
  const std::vector<float> sparse_dense = engine->prefill(engine->create_sequence(), sparse_everything);
  CHECK(!bitwise_equal(engine->prefill(polluted, {}), sparse_dense));
}

TIDAL_TEST(engine_rejects_invalid_attention_options) {
  auto engine = make_test_engine(tiny_model_spec("llama"));
  const SequenceId seq = engine->create_sequence();
  engine->prefill(seq, {1, 2, 3});
  AttentionOptions bad = tidal_attention(0);
  CHECK_THROWS_WITH(engine->decode(seq, 4, bad), "token_budget");
  bad = tidal_attention(16);
  bad.selection_layers = {9};
  CHECK_THROWS_WITH(engine->decode(seq, 4, bad), "selection layer 9");
  CHECK_EQ(engine->sequence_length(seq), 3);  // nothing appended
}

// sparse_first_step: the prompt's last token runs as a decode step with the plan. The cache
// and the first token then equal prefill(all but the last) + decode(last, plan), bitwise, and
// differ from the dense prefill's with a small budget.
TIDAL_TEST(engine_sparse_first_step_equals_prefill_then_a_sparse_decode_step) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  for (uint64_t seed = 11; seed < 14; ++seed) {
    const auto prompt = random_tokens(80 + seed, spec.vocab_size, seed);
    GenerateOptions options;
    options.max_tokens = 1;
    options.stop_at_eos = false;
    options.attention = tidal_attention(8);
    options.attention.sparse_first_step = true;

    const SequenceId sparse = engine->create_sequence();
    const GenerateResult result = engine->generate(sparse, prompt, options);
    CHECK_EQ(result.tokens.size(), size_t(1));
    CHECK_EQ(engine->usage().last_selection.context_length, int64_t(prompt.size()));
    const std::vector<float> after_sparse = engine->prefill(sparse, {});  // the generated token, densely

    const SequenceId reference = engine->create_sequence();
    engine->prefill(reference, std::vector<int32_t>(prompt.begin(), prompt.end() - 1));
    const std::vector<float> first = engine->decode(reference, prompt.back(), options.attention);
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(first.size()); ++i)
      if (first[i] > first[best]) best = i;
    CHECK_EQ(result.tokens[0], best);
    CHECK(bitwise_equal(after_sparse, engine->prefill(reference, {result.tokens[0]})));

    // The dense prefill of the same prompt leaves another cache behind.
    options.attention.sparse_first_step = false;
    const SequenceId dense = engine->create_sequence();
    const GenerateResult dense_result = engine->generate(dense, prompt, options);
    const SequenceId dense_reference = engine->create_sequence();
    engine->prefill(dense_reference, prompt);
    const std::vector<float> dense_after = engine->prefill(dense_reference, {dense_result.tokens[0]});
    CHECK(bitwise_equal(engine->prefill(dense, {}), dense_after));
    if (dense_result.tokens[0] == result.tokens[0]) CHECK(!bitwise_equal(after_sparse, dense_after));
    for (SequenceId id : {sparse, reference, dense, dense_reference}) engine->release_sequence(id);
  }
}

// A cancel before the last token leaves the sequence as it was; full attention ignores the flag.
TIDAL_TEST(engine_sparse_first_step_cancelled_or_with_full_attention) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(40, spec.vocab_size, 21);
  GenerateOptions options;
  options.max_tokens = 3;
  options.stop_at_eos = false;
  options.attention = tidal_attention(8);
  options.attention.sparse_first_step = true;
  const SequenceId seq = engine->create_sequence();
  engine->prefill(seq, {prompt[0], prompt[1]});
  std::atomic<bool> cancel{true};
  const GenerateResult cancelled = engine->generate(seq, prompt, options, nullptr, &cancel);
  CHECK(cancelled.finish_reason == FinishReason::Cancelled);
  CHECK_EQ(engine->sequence_length(seq), 2);

  AttentionOptions full;
  full.sparse_first_step = true;
  options.attention = full;
  const SequenceId a = engine->create_sequence();
  const SequenceId b = engine->create_sequence();
  const GenerateResult with_flag = engine->generate(a, prompt, options);
  options.attention.sparse_first_step = false;
  const GenerateResult without = engine->generate(b, prompt, options);
  CHECK(with_flag.tokens == without.tokens);
}
