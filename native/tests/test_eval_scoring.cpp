// Scoring of `tidal eval` on tiny random models: passkey answers against an independent
// greedy generation, perplexity against the float64 reference forward pass, and sparse
// configurations equal to full attention when their budget covers the whole context.
#include <cmath>

#include "../cli/eval_scoring.h"
#include "engine_test_models.h"
#include "harness.h"
#include "reference_forward.h"

using namespace tidal;
using namespace tidal::cli;
using namespace tidal_test;

namespace {

std::vector<EvalConfig> all_budget_configs(int64_t budget) {
  // Budget >= every position: tidal and quest must read the whole cache.
  return make_eval_configs({budget}, {{2}, {2, 5}}, true);
}

}  // namespace

TIDAL_TEST(eval_configs_cover_modes_budgets_and_selections) {
  const auto configs = make_eval_configs({64, 256}, {{2}, {2, 4}}, true);
  CHECK_EQ(configs.size(), size_t(1 + 4 + 2));
  CHECK(configs[0].label() == "full");
  CHECK(configs[1].label() == "tidal 2 b64");
  CHECK(configs[4].label() == "tidal 2,4 b256");
  CHECK(configs[6].label() == "quest b256");
  CHECK(configs[6].selection() == "-");
  CHECK_EQ(make_eval_configs({64}, {{2}}, false).size(), size_t(2));
}

TIDAL_TEST(eval_negative_log_likelihood_matches_a_direct_softmax) {
  const std::vector<float> logits = random_floats(300, 9, -20.0f, 20.0f);
  for (int32_t token : {0, 17, 299}) {
    long double total = 0;
    for (float v : logits) total += std::exp(static_cast<long double>(v));
    const double expected = -static_cast<double>(std::log(std::exp(static_cast<long double>(logits[token])) / total));
    CHECK_NEAR(negative_log_likelihood(logits.data(), 300, token), expected, 1e-9);
  }
  CHECK_EQ(argmax_token({0.5f, 3.0f, -1.0f, 3.0f}), 1);  // lowest id on ties
}

TIDAL_TEST(eval_passkey_scores_against_independent_greedy_generation) {
  auto engine = make_test_engine(tiny_model_spec("deep"));
  const auto prompt = random_tokens(150, 96, 21);
  // Reference answer: greedy generation over the whole prompt with plain generate().
  GenerateOptions options;
  options.max_tokens = 6;
  options.stop_at_eos = false;
  const SequenceId reference = engine->create_sequence();
  const std::vector<int32_t> answer = engine->generate(reference, prompt, options).tokens;
  engine->release_sequence(reference);
  CHECK_EQ(answer.size(), size_t(6));

  const auto configs = all_budget_configs(4096);
  const std::vector<bool> right = score_passkey(*engine, prompt, answer, configs);
  CHECK_EQ(right.size(), configs.size());
  for (size_t c = 0; c < configs.size(); ++c)
    if (!right[c]) record_failure(__FILE__, __LINE__, configs[c].label() + " missed the greedy answer at full budget");

  // Poisoned answers: a wrong first or last token is never accepted.
  for (size_t poisoned : {size_t(0), answer.size() - 1}) {
    std::vector<int32_t> wrong = answer;
    wrong[poisoned] = (wrong[poisoned] + 1) % 96;
    for (bool r : score_passkey(*engine, prompt, wrong, configs)) CHECK(!r);
  }
  // Forks are released: no sequence is left behind.
  CHECK_EQ(engine->usage().sequences, int64_t(0));
}

TIDAL_TEST(eval_perplexity_matches_the_float64_reference) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("deep"));
  auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  const auto window = random_tokens(120, 96, 4);
  const int64_t prefix = 90;
  const auto configs = make_eval_configs({4, 4096}, {{2, 5}}, true);  // full, tidal b4, tidal b4096, quest b4, b4096
  const std::vector<NllSum> sums = score_perplexity(*engine, window, prefix, configs);
  CHECK_EQ(sums.size(), configs.size() + 1);

  const auto logits = ReferenceModel(model.config, *model.tensors).logits(window);
  double expected = 0;
  for (int64_t t = prefix - 1; t + 1 < 120; ++t) {
    double max = logits[t][0], total = 0;
    for (double v : logits[t]) max = std::fmax(max, v);
    for (double v : logits[t]) total += std::exp(v - max);
    expected += std::log(total) + max - logits[t][window[t + 1]];
  }
  CHECK_EQ(sums[0].tokens, int64_t(120 - prefix));
  CHECK_NEAR(sums[0].nll, expected, 1e-3 * std::fabs(expected));  // one prefill, all logits
  CHECK_NEAR(sums[1].nll, expected, 1e-3 * std::fabs(expected));  // full attention decode
  CHECK_NEAR(sums[3].nll, expected, 1e-3 * std::fabs(expected));  // tidal, budget covers the context
  CHECK_NEAR(sums[5].nll, expected, 1e-3 * std::fabs(expected));  // quest, budget covers the context
  // A 4-token budget really is sparse: its likelihood differs.
  CHECK(std::fabs(sums[2].nll - expected) > 1e-3 * std::fabs(expected));
  CHECK(std::fabs(sums[4].nll - expected) > 1e-3 * std::fabs(expected));
  CHECK_THROWS_WITH(score_perplexity(*engine, window, 120, configs), "prefix");
}
