// TidalDecode token selection: top-k positions against a brute-force ranking on the same
// scores, for the three group policies, ties and edge budgets included.
#include <algorithm>
#include <cmath>
#include <vector>

#include "brute_force_top.h"
#include "cpu/attention.h"
#include "cpu/cpu_backend.h"
#include "cpu/token_selection.h"
#include "engine/attention_plan.h"
#include "engine/model_weights.h"
#include "engine/synthetic_model.h"
#include "harness.h"
#include "kv_cache_fixture.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

// Scores on a coarse grid (multiples of 1/8), so ties are common and group sums are exact.
std::vector<float> grid_scores(size_t count, uint64_t seed) {
  auto raw = random_floats(count, seed, -4.0f, 4.0f);
  for (float& v : raw) v = std::round(v * 8.0f) / 8.0f;
  return raw;
}

}  // namespace

TIDAL_TEST(attention_top_positions_equal_brute_force_top_k) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const int64_t count = 5 + static_cast<int64_t>(seed * 7 % 90);
    const auto scores = grid_scores(static_cast<size_t>(count), seed);
    const std::vector<double> exact(scores.begin(), scores.end());
    for (int64_t keep : {int64_t{0}, int64_t{1}, int64_t{4}, count / 2, count - 1, count, count + 3}) {
      std::vector<int32_t> out(static_cast<size_t>(std::max<int64_t>(keep, 1))), scratch(static_cast<size_t>(count));
      const int64_t kept = cpu::select_top_positions(scores.data(), count, keep, out.data(), scratch.data());
      out.resize(static_cast<size_t>(kept));
      CHECK(out == brute_force_top(exact, keep));
    }
  }
}

TIDAL_TEST(attention_group_policies_equal_brute_force_top_k) {
  const int64_t heads = 8, group = 4, count = 53, keep = 11;
  const auto scores = grid_scores(static_cast<size_t>(heads * count), 99);
  const cpu::GroupSelection policies[] = {cpu::GroupSelection::PerQueryHead, cpu::GroupSelection::KvHeadMax,
                                          cpu::GroupSelection::KvHeadSum};
  for (cpu::GroupSelection policy : policies) {
    std::vector<int32_t> out(static_cast<size_t>(heads * keep));
    const int64_t kept =
        cpu::select_positions_for_heads(scores.data(), count, heads, group, count, keep, policy, out.data());
    CHECK_EQ(kept, keep);
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> ranked(static_cast<size_t>(count));
      const int64_t first = h / group * group;
      for (int64_t i = 0; i < count; ++i) {
        if (policy == cpu::GroupSelection::PerQueryHead) {
          ranked[i] = scores[h * count + i];
        } else {
          double combined = policy == cpu::GroupSelection::KvHeadSum ? 0.0 : -INFINITY;
          for (int64_t g = first; g < first + group; ++g)
            combined = policy == cpu::GroupSelection::KvHeadSum ? combined + scores[g * count + i]
                                                                : std::fmax(combined, scores[g * count + i]);
          ranked[i] = combined;
        }
      }
      const std::vector<int32_t> got(out.begin() + h * keep, out.begin() + (h + 1) * keep);
      CHECK(got == brute_force_top(ranked, keep));
    }
  }
}

TIDAL_TEST(attention_selection_on_attention_scores_equals_brute_force) {
  // Scores produced by the attention kernel itself, as in a selection layer.
  FilledKvCache f = make_filled_kv_cache(1, 2, 16, 75, 31);
  const int64_t heads = 4, group = 2, positions = 75, keep = 9;
  std::vector<float> scores(static_cast<size_t>(heads * positions));
  std::vector<std::vector<float>> queries;
  for (int64_t h = 0; h < heads; ++h) {
    queries.push_back(random_floats(16, 40 + h, -2.0f, 2.0f));
    cpu::attention_scores(queries.back().data(), f.cache->head_view(0, h / group), nullptr, positions, 0.25f,
                          scores.data() + h * positions);
  }
  std::vector<int32_t> out(static_cast<size_t>(heads * keep));
  cpu::select_positions_for_heads(scores.data(), positions, heads, group, positions - 1, keep,
                                  cpu::GroupSelection::PerQueryHead, out.data());
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<double> ranked(scores.begin() + h * positions, scores.begin() + h * positions + positions - 1);
    const std::vector<int32_t> got(out.begin() + h * keep, out.begin() + (h + 1) * keep);
    CHECK(got == brute_force_top(ranked, keep));
    CHECK(std::find(got.begin(), got.end(), positions - 1) == got.end());  // current token excluded
  }
}

TIDAL_TEST(attention_nan_scores_rank_last) {
  const std::vector<float> scores = {1.0f, NAN, 3.0f, -INFINITY, 2.0f};
  std::vector<int32_t> out(4), scratch(5);
  CHECK_EQ(cpu::select_top_positions(scores.data(), 5, 4, out.data(), scratch.data()), 4);
  CHECK((out == std::vector<int32_t>{0, 2, 3, 4}));
}

TIDAL_TEST(attention_tidal_plan_scales_selection_layers_with_depth) {
  CHECK((default_selection_layers(32, 2) == std::vector<int64_t>{2, 13}));
  CHECK((default_selection_layers(28, 2) == std::vector<int64_t>{2, 11}));
  CHECK((default_selection_layers(6, 2) == std::vector<int64_t>{2, 5}));
  CHECK((default_selection_layers(7, 2) == std::vector<int64_t>{2, 6}));
  CHECK((default_selection_layers(12, 2) == std::vector<int64_t>{2, 4}));
  CHECK((default_selection_layers(4, 2) == std::vector<int64_t>{2, 3}));
  CHECK((default_selection_layers(3, 2) == std::vector<int64_t>{2}));
  CHECK((default_selection_layers(2, 2).empty()));

  AttentionOptions tidal_options;
  tidal_options.mode = AttentionMode::Tidal;
  const AttentionPlan plan = make_attention_plan(tidal_options, 32);
  CHECK(plan.layers[0] == LayerAttention::Dense);
  CHECK(plan.layers[1] == LayerAttention::Dense);
  CHECK(plan.layers[2] == LayerAttention::DenseAndSelect);
  for (int l = 3; l < 13; ++l) CHECK(plan.layers[l] == LayerAttention::Selected);
  CHECK(plan.layers[13] == LayerAttention::DenseAndSelect);
  for (int l = 14; l < 32; ++l) CHECK(plan.layers[l] == LayerAttention::Selected);

  AttentionOptions quest;
  quest.mode = AttentionMode::Quest;
  const AttentionPlan quest_plan = make_attention_plan(quest, 6);
  CHECK(quest_plan.layers[1] == LayerAttention::Dense);
  CHECK(quest_plan.layers[2] == LayerAttention::QuestPages);

  AttentionOptions bad = tidal_options;
  bad.selection_layers = {2, 40};
  CHECK_THROWS_WITH(make_attention_plan(bad, 32), "selection layer 40");
  bad = tidal_options;
  bad.token_budget = 0;
  CHECK_THROWS_WITH(make_attention_plan(bad, 32), "token_budget");
}

TIDAL_TEST(attention_backend_selection_equals_brute_force_on_its_scores) {
  // A decode step through the CPU backend; the trace holds the selection layer's scores and
  // the positions every sparse layer then attended.
  SyntheticModelSpec spec = tiny_model_spec("deep");  // 8 query heads in groups of 4
  SyntheticModel model = make_synthetic_model(spec);
  ModelWeights weights = bind_model_weights(model.config, *model.tensors);
  auto backend = create_cpu_backend(model.config, weights, CpuBackendOptions{2, 0});
  const SelectionPolicy policies[] = {SelectionPolicy::PerQueryHead, SelectionPolicy::PerKvHeadMax,
                                      SelectionPolicy::PerKvHeadSum};
  for (SelectionPolicy policy : policies) {
    auto cache = backend->create_kv_cache();
    const auto prompt = random_tokens(60, spec.vocab_size, 8);
    backend->forward(*cache, prompt.data(), 60, nullptr, LogitsWanted::None, nullptr, nullptr);
    AttentionOptions options;
    options.mode = AttentionMode::Tidal;
    options.token_budget = 12;
    options.selection_policy = policy;
    const AttentionPlan plan = make_attention_plan(options, spec.num_layers);
    std::vector<float> logits(static_cast<size_t>(spec.vocab_size));
    const int32_t token = 5;
    backend->forward(*cache, &token, 1, &plan, LogitsWanted::Last, logits.data(), nullptr);

    const SelectionTrace trace = backend->last_selection_trace();
    const int64_t n = 61, heads = spec.num_heads, group = spec.num_heads / spec.num_kv_heads;
    CHECK_EQ(trace.positions, n);
    CHECK_EQ(trace.selected.size(), static_cast<size_t>(heads));
    for (int64_t h = 0; h < heads; ++h) {
      // Ranked scores over the candidates [0, n - 1), combined in float in head order as the
      // policy says; then the brute-force top 11, plus the current token.
      std::vector<double> ranked(static_cast<size_t>(n - 1));
      const int64_t first = h / group * group;
      for (int64_t i = 0; i < n - 1; ++i) {
        if (policy == SelectionPolicy::PerQueryHead) {
          ranked[i] = trace.scores[h * n + i];
          continue;
        }
        float combined = trace.scores[first * n + i];
        for (int64_t g = first + 1; g < first + group; ++g)
          combined = policy == SelectionPolicy::PerKvHeadSum ? combined + trace.scores[g * n + i]
                                                             : std::max(combined, trace.scores[g * n + i]);
        ranked[i] = combined;
      }
      std::vector<int32_t> expected = brute_force_top(ranked, 11);
      expected.push_back(static_cast<int32_t>(n - 1));
      CHECK(trace.selected[h] == expected);
    }
    if (policy != SelectionPolicy::PerQueryHead)
      CHECK(trace.selected[0] == trace.selected[group - 1]);
    else
      CHECK(trace.selected[0] != trace.selected[1]);
  }
}
