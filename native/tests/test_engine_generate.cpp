// generate(): greedy decoding, streaming, stop tokens, max tokens, continuation across
// calls, the token callback and cancellation.
#include <atomic>
#include <vector>

#include "engine_test_models.h"
#include "harness.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

int32_t argmax(const std::vector<float>& logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

GenerateOptions greedy(int64_t max_tokens) {
  GenerateOptions options;
  options.max_tokens = max_tokens;
  options.stop_at_eos = false;
  return options;
}

}  // namespace

TIDAL_TEST(engine_greedy_generate_follows_the_argmax_chain_and_streams_it) {
  SyntheticModelSpec spec = tiny_model_spec("qwen3");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(12, spec.vocab_size, 1);

  std::vector<int32_t> streamed;
  const SequenceId seq = engine->create_sequence();
  const GenerateResult result = engine->generate(seq, prompt, greedy(8), [&](int32_t token) {
    streamed.push_back(token);
    return true;
  });
  CHECK(result.finish_reason == FinishReason::Length);
  CHECK_EQ(result.prompt_tokens, 12);
  CHECK(streamed == result.tokens);
  CHECK_EQ(result.tokens.size(), size_t(8));
  CHECK_EQ(engine->sequence_length(seq), 20);

  const SequenceId manual = engine->create_sequence();
  std::vector<float> logits = engine->prefill(manual, prompt);
  for (int32_t token : result.tokens) {
    CHECK_EQ(argmax(logits), token);
    logits = engine->decode(manual, token);
  }
  CHECK_EQ(engine->usage().tokens_decoded, 7 + 8);
}

TIDAL_TEST(engine_generate_continues_across_calls) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(10, spec.vocab_size, 2);
  const SequenceId once = engine->create_sequence();
  const GenerateResult all = engine->generate(once, prompt, greedy(6));
  const SequenceId twice = engine->create_sequence();
  GenerateResult first = engine->generate(twice, prompt, greedy(3));
  GenerateResult second = engine->generate(twice, {}, greedy(3));
  first.tokens.insert(first.tokens.end(), second.tokens.begin(), second.tokens.end());
  CHECK(first.tokens == all.tokens);
  CHECK_EQ(second.prompt_tokens, 1);  // the pending last token of the first call
}

TIDAL_TEST(engine_generate_stops_at_stop_tokens_and_eos) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(10, spec.vocab_size, 3);
  const GenerateResult free_run = engine->generate(engine->create_sequence(), prompt, greedy(6));
  GenerateOptions options = greedy(6);
  options.stop_tokens = {free_run.tokens[2]};
  const GenerateResult stopped = engine->generate(engine->create_sequence(), prompt, options);
  CHECK(stopped.finish_reason == FinishReason::Stop);
  size_t first_stop = 0;
  while (free_run.tokens[first_stop] != free_run.tokens[2]) ++first_stop;
  CHECK_EQ(stopped.tokens.size(), first_stop + 1);
  CHECK_EQ(stopped.tokens.back(), free_run.tokens[2]);
  CHECK_EQ(std::string(finish_reason_name(stopped.finish_reason)), std::string("stop"));

  GenerateOptions zero = greedy(0);
  CHECK_EQ(engine->generate(engine->create_sequence(), prompt, zero).tokens.size(), size_t(0));
}

TIDAL_TEST(engine_generate_cancellation_stops_within_one_step) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  std::atomic<bool> cancel{false};
  int seen = 0;
  const SequenceId seq = engine->create_sequence();
  const GenerateResult result = engine->generate(
      seq, random_tokens(8, spec.vocab_size, 4), greedy(50),
      [&](int32_t) {
        if (++seen == 3) cancel = true;
        return true;
      },
      &cancel);
  CHECK(result.finish_reason == FinishReason::Cancelled);
  CHECK(result.tokens.size() == 3 || result.tokens.size() == 4);
  CHECK_EQ(engine->sequence_length(seq), 8 + static_cast<int64_t>(result.tokens.size()));

  // A callback returning false stops too.
  const GenerateResult by_callback =
      engine->generate(engine->create_sequence(), {1, 2, 3}, greedy(50), [](int32_t) { return false; });
  CHECK(by_callback.finish_reason == FinishReason::Callback);
  CHECK_EQ(by_callback.tokens.size(), size_t(1));
}

TIDAL_TEST(engine_prefill_cancellation_leaves_the_sequence_as_it_was) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  EngineOptions options = test_engine_options();
  options.prefill_chunk = 4;
  auto engine = make_test_engine(spec, options);
  const SequenceId seq = engine->create_sequence();
  const std::vector<float> before = engine->prefill(seq, {5, 6, 7});
  std::atomic<bool> cancel{true};
  CHECK_THROWS_WITH(engine->prefill(seq, random_tokens(20, spec.vocab_size, 5), {}, &cancel), "cancelled");
  CHECK_EQ(engine->sequence_length(seq), 3);
  CHECK_EQ(engine->usage().kv_bytes, 16 * engine->model_info().kv_bytes_per_token);
  CHECK(bitwise_equal(engine->prefill(seq, {}), before));
  const GenerateResult result = engine->generate(seq, {8, 9}, greedy(5), {}, &cancel);
  CHECK(result.finish_reason == FinishReason::Cancelled);
  CHECK(result.tokens.empty());
  CHECK_EQ(engine->sequence_length(seq), 3);
}

TIDAL_TEST(engine_sampled_generate_is_deterministic_given_the_seed) {
  SyntheticModelSpec spec = tiny_model_spec("mistral-f16");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(9, spec.vocab_size, 6);
  GenerateOptions options = greedy(12);
  options.sampling.temperature = 1.5f;
  options.sampling.top_k = 20;
  options.sampling.top_p = 0.95f;
  options.sampling.seed = 1234;
  const auto a = engine->generate(engine->create_sequence(), prompt, options).tokens;
  const auto b = engine->generate(engine->create_sequence(), prompt, options).tokens;
  CHECK(a == b);
  options.sampling.seed = 99;
  const auto c = engine->generate(engine->create_sequence(), prompt, options).tokens;
  CHECK(a != c);
  options.sampling.top_p = 1.5f;
  CHECK_THROWS_WITH(engine->generate(engine->create_sequence(), prompt, options), "top_p");
}

TIDAL_TEST(engine_prefill_chunk_per_call_changes_no_result_and_is_validated) {
  SyntheticModelSpec spec = tiny_model_spec("llama3");
  auto engine = make_test_engine(spec);
  const auto prompt = random_tokens(45, spec.vocab_size, 9);
  PrefillOptions all;
  all.all_logits = true;
  const SequenceId whole = engine->create_sequence();
  const std::vector<float> reference = engine->prefill(whole, prompt, all);
  for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{45}, int64_t{1000}}) {
    PrefillOptions options = all;
    options.chunk = chunk;
    const SequenceId seq = engine->create_sequence();
    CHECK(bitwise_equal(engine->prefill(seq, prompt, options), reference));
    engine->release_sequence(seq);
  }
  PrefillOptions negative;
  negative.chunk = -1;
  const SequenceId seq = engine->create_sequence();
  CHECK_THROWS_WITH(engine->prefill(seq, prompt, negative), "prefill chunk must be >= 0");
  CHECK_EQ(engine->sequence_length(seq), 0);

  GenerateOptions options = greedy(5);
  const std::vector<int32_t> expected = engine->generate(seq, prompt, options).tokens;
  options.prefill_chunk = 4;
  const SequenceId chunked = engine->create_sequence();
  CHECK(engine->generate(chunked, prompt, options).tokens == expected);
  options.prefill_chunk = -2;
  CHECK_THROWS_WITH(engine->generate(chunked, {}, options), "prefill chunk must be >= 0");
}
