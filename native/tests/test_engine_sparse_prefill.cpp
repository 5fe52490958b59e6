// Sparse prefill (AttentionOptions::sparse_prefill): the prompt tokens after a cached context
// run under the tidal or Quest plan. With a budget covering the context it is bitwise the dense
// prefill; with small budgets it matches a float64 forward that applies the same selection
// rule, written here from the rule itself; the reads it reports shrink; backends without it,
// and bad options, are refused with the sequence unchanged.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "brute_force_top.h"
#include "engine/decoder.h"
#include "engine/synthetic_model.h"
#include "engine_test_models.h"
#include "harness.h"
#include "reference_forward.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

AttentionOptions sparse_prefill(AttentionMode mode, int64_t budget,
                                SelectionPolicy policy = SelectionPolicy::PerQueryHead) {
  AttentionOptions a;
  a.mode = mode;
  a.token_budget = budget;
  a.selection_policy = policy;
  if (mode == AttentionMode::Tidal) a.selection_layers = {2, 5};  // a re-selection layer in the 8-layer model
  a.sparse_prefill = true;
  return a;
}

// Every logit of `tail`, prefilled after `head` under `attention`.
std::vector<float> prefill_tail(Engine& engine, const std::vector<int32_t>& head, const std::vector<int32_t>& tail,
                                const AttentionOptions& attention, int64_t chunk = 0) {
  const SequenceId seq = engine.create_sequence();
  engine.prefill(seq, head);
  PrefillOptions options;
  options.all_logits = true;
  options.attention = attention;
  options.chunk = chunk;
  std::vector<float> logits = engine.prefill(seq, tail, options);
  engine.release_sequence(seq);
  return logits;
}

double dot(const std::vector<double>& a, int64_t a_offset, const std::vector<double>& b, int64_t b_offset, int64_t n) {
  double d = 0.0;
  for (int64_t i = 0; i < n; ++i) d += a[a_offset + i] * b[b_offset + i];
  return d;
}

// The selection rule of a sparse prefill of tokens [start, n), in float64, from its
// definition: tidal selects at each selection layer, per query head, the budget - 1 positions
// before `start` to which any of the pass's tokens gives the highest log-softmax weight, and
// the layers after it attend to those and to the pass up to themselves; Quest ranks, per layer
// from dense_layers on, the pages before `start` by the highest key bound any pass token gives
// them (the last page always kept).
AttentionRestriction restriction(const ModelConfig& config, AttentionMode mode, int64_t budget, int64_t start) {
  const int64_t hd = config.head_dim, nh = config.num_heads, group = config.num_heads / config.num_kv_heads;
  auto selected = std::make_shared<std::vector<std::vector<int64_t>>>();  // per head, tidal
  return [=](int64_t layer, const std::vector<std::vector<double>>& q, const std::vector<std::vector<double>>& k) {
    const int64_t n = static_cast<int64_t>(q.size());
    AttentionLists lists(static_cast<size_t>(n), std::vector<std::vector<int64_t>>(static_cast<size_t>(nh)));
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    if (layer < 2) return lists;  // dense layers
    std::vector<std::vector<int64_t>> chosen(static_cast<size_t>(nh));
    if (mode == AttentionMode::Tidal) {
      if (layer == 2 || layer == 5) {
        selected->assign(static_cast<size_t>(nh), {});
        for (int64_t h = 0; h < nh; ++h) {
          std::vector<double> best(static_cast<size_t>(start), -INFINITY);
          for (int64_t t = start; t < n; ++t) {
            std::vector<double> s(static_cast<size_t>(t + 1));
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j <= t; ++j)
              mx = std::fmax(mx, s[j] = scale * dot(q[t], h * hd, k[j], h / group * hd, hd));
            for (int64_t j = 0; j <= t; ++j) sum += std::exp(s[j] - mx);
            for (int64_t j = 0; j < start; ++j) best[j] = std::fmax(best[j], s[j] - mx - std::log(sum));
          }
          for (int32_t j : brute_force_top(best, budget - 1)) (*selected)[h].push_back(j);
        }
        return lists;  // a selection layer attends densely
      }
      chosen = *selected;
    } else {
      const int64_t pages = (start + 15) / 16;
      for (int64_t h = 0; h < nh; ++h) {
        std::vector<double> bound(static_cast<size_t>(std::max<int64_t>(pages - 1, 0)), -INFINITY);
        for (int64_t p = 0; p + 1 < pages; ++p)
          for (int64_t t = start; t < n; ++t) {
            double b = 0.0;
            for (int64_t i = 0; i < hd; ++i) {
              double lo = INFINITY, hi = -INFINITY;
              for (int64_t j = 16 * p; j < 16 * p + 16; ++j) {
                lo = std::fmin(lo, k[j][h / group * hd + i]);
                hi = std::fmax(hi, k[j][h / group * hd + i]);
              }
              b += std::fmax(q[t][h * hd + i] * lo, q[t][h * hd + i] * hi);
            }
            bound[p] = std::fmax(bound[p], b);
          }
        for (int64_t p : brute_force_top(bound, std::max<int64_t>(1, budget / 16) - 1))
          for (int64_t j = 16 * p; j < 16 * p + 16; ++j) chosen[h].push_back(j);
        for (int64_t j = 16 * (pages - 1); j < start; ++j) chosen[h].push_back(j);  // the last page
      }
    }
    for (int64_t t = start; t < n; ++t)
      for (int64_t h = 0; h < nh; ++h) {
        std::vector<int64_t>& list = lists[t][h];
        list = chosen[h];
        for (int64_t j = start; j <= t; ++j) list.push_back(j);
      }
    return lists;
  };
}

}  // namespace

TIDAL_TEST(engine_sparse_prefill_with_budget_covering_context_equals_dense_prefill_bitwise) {
  for (const std::string& kind : {std::string("deep"), std::string("qwen3"), std::string("llama-mha")}) {
    SyntheticModelSpec spec = tiny_model_spec(kind);
    auto engine = make_test_engine(spec);
    const auto head = random_tokens(45, spec.vocab_size, 11);
    const auto tail = random_tokens(13, spec.vocab_size, 12);
    const auto dense = prefill_tail(*engine, head, tail, AttentionOptions{});
    for (SelectionPolicy policy :
         {SelectionPolicy::PerQueryHead, SelectionPolicy::PerKvHeadMax, SelectionPolicy::PerKvHeadSum}) {
      AttentionOptions tidal_options = sparse_prefill(AttentionMode::Tidal, 46, policy);  // 45 earlier + own
      if (spec.num_layers < 6) tidal_options.selection_layers = {2};
      CHECK(bitwise_equal(prefill_tail(*engine, head, tail, tidal_options), dense));
      // In passes of 4 tokens the later passes start further on: 58 covers the last one's 57.
      tidal_options.token_budget = 58;
      CHECK(bitwise_equal(prefill_tail(*engine, head, tail, tidal_options, 4), dense));
      tidal_options.token_budget = 56;  // the last pass keeps 55 of its 57: no longer dense
      CHECK(!bitwise_equal(prefill_tail(*engine, head, tail, tidal_options, 4), dense));
    }
    // 3 pages hold the 45 earlier positions.
    CHECK(bitwise_equal(prefill_tail(*engine, head, tail, sparse_prefill(AttentionMode::Quest, 48)), dense));
    CHECK(bitwise_equal(prefill_tail(*engine, head, tail, sparse_prefill(AttentionMode::Quest, 4096), 5), dense));
    // Without sparse_prefill the plan leaves a prefill dense.
    AttentionOptions decode_only = sparse_prefill(AttentionMode::Quest, 16);
    decode_only.sparse_prefill = false;
    CHECK(bitwise_equal(prefill_tail(*engine, head, tail, decode_only), dense));
  }
}

TIDAL_TEST(engine_sparse_prefill_matches_a_float64_forward_of_its_selection_rule) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  SyntheticModel model = make_synthetic_model(spec);
  auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  const ReferenceModel reference(model.config, *model.tensors);
  const auto head = random_tokens(70, spec.vocab_size, 21);
  const auto tail = random_tokens(9, spec.vocab_size, 22);
  std::vector<int32_t> all = head;
  all.insert(all.end(), tail.begin(), tail.end());
  const int64_t vocab = spec.vocab_size, start = static_cast<int64_t>(head.size());
  const auto dense = prefill_tail(*engine, head, tail, AttentionOptions{});
  struct Case {
    AttentionMode mode;
    int64_t budget;
  };
  for (const Case& c :
       {Case{AttentionMode::Tidal, 9}, Case{AttentionMode::Tidal, 24}, Case{AttentionMode::Quest, 32}}) {
    const auto logits = prefill_tail(*engine, head, tail, sparse_prefill(c.mode, c.budget));
    const auto expected = reference.logits(all, restriction(model.config, c.mode, c.budget, start));
    const auto dense_expected = reference.logits(all);
    double worst = 0.0, largest = 0.0, moved = 0.0;
    for (size_t t = 0; t < tail.size(); ++t)
      for (int64_t i = 0; i < vocab; ++i) {
        const double want = expected[start + t][i];
        worst = std::fmax(worst, std::fabs(logits[t * vocab + i] - want));
        largest = std::fmax(largest, std::fabs(want));
        moved = std::fmax(moved, std::fabs(want - dense_expected[start + t][i]));
      }
    const std::string name =
        std::string(c.mode == AttentionMode::Tidal ? "tidal" : "quest") + " budget " + std::to_string(c.budget);
    if (!(worst <= 2e-5 * std::fmax(1.0, largest)))
      record_failure(__FILE__, __LINE__, name + ": max |logit - reference| = " + std::to_string(worst));
    // The sparse rule changes the answer: the test tells it from dense attention.
    if (!(moved > 1e-3 * std::fmax(1.0, largest)))
      record_failure(__FILE__, __LINE__, name + ": the sparse reference is the dense one");
    CHECK(!bitwise_equal(logits, dense));
  }
}

TIDAL_TEST(engine_sparse_prefill_entries_are_corrected_like_sparse_decode_ones) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  const auto head = random_tokens(80, spec.vocab_size, 31);
  const auto tail = random_tokens(8, spec.vocab_size, 32);
  // A generate whose prompt runs sparse, then one decode step and a KV-cache correction: the
  // correction recomputes the sparse prefill's entries too, so the cache equals a dense one.
  GenerateOptions options;
  options.max_tokens = 2;
  options.stop_at_eos = false;
  options.attention = sparse_prefill(AttentionMode::Tidal, 8);
  for (int64_t interval : {int64_t{1}, int64_t{0}}) {
    options.attention.correction_interval = interval;
    const SequenceId seq = engine->create_sequence();
    engine->prefill(seq, head);
    const GenerateResult result = engine->generate(seq, tail, options);
    CHECK_EQ(result.tokens.size(), size_t{2});
    CHECK_EQ(engine->usage().last_selection.corrections, interval);
    // The last token is pending; processing it reads the cache.
    const std::vector<float> after = engine->prefill(seq, {});
    std::vector<int32_t> everything = head;
    everything.insert(everything.end(), tail.begin(), tail.end());
    everything.insert(everything.end(), result.tokens.begin(), result.tokens.end());
    const SequenceId dense = engine->create_sequence();
    const bool same = bitwise_equal(after, engine->prefill(dense, everything));
    CHECK(same == (interval == 1));  // uncorrected, the sparse prefill's entries stay
    engine->release_sequence(seq);
    engine->release_sequence(dense);
  }
}

TIDAL_TEST(engine_sparse_prefill_reports_its_reads_through_the_backend) {
  // route_pass counts what each layer of a sparse prefill pass reads: token t of a 6-token
  // pass at position 50 reads keep + t + 1 positions in a sparse layer, start + t + 1 in a
  // dense one.
  SyntheticModelSpec spec = tiny_model_spec("deep");
  const ModelConfig config = make_synthetic_model(spec).config;
  AttentionPlan plan;
  plan.mode = AttentionMode::Tidal;
  plan.token_budget = 10;
  plan.sparse_prefill = true;
  plan.layers.assign(8, LayerAttention::Dense);
  plan.layers[2] = plan.layers[5] = LayerAttention::DenseAndSelect;
  for (int64_t l : {3, 4, 6, 7}) plan.layers[static_cast<size_t>(l)] = LayerAttention::Selected;
  DecoderPass pass;
  pass.start = 50;
  pass.count = 6;
  pass.plan = &plan;
  const DecoderRoute route = route_pass(config, pass);
  const int64_t heads = config.num_heads, dense = heads * (6 * 50 + 21), sparse = heads * (6 * 9 + 21);
  CHECK_EQ(route.selection.keep, int64_t{9});
  CHECK_EQ(route.selection.pass_tokens, int64_t{6});
  CHECK_EQ(route.stats.dense_positions, 8 * dense);
  CHECK_EQ(route.stats.attended_positions, 4 * dense + 4 * sparse);
  plan.sparse_prefill = false;  // then the plan is for one-token passes only
  CHECK_EQ(route_pass(config, pass).stats.attended_positions, 8 * dense);
}

TIDAL_TEST(engine_sparse_prefill_refusals_leave_the_sequence_as_it_was) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  const auto head = random_tokens(40, spec.vocab_size, 41);
  const SequenceId seq = engine->create_sequence();
  const std::vector<float> before = engine->prefill(seq, head);
  PrefillOptions bad;
  bad.attention = sparse_prefill(AttentionMode::Tidal, 0);  // a budget below 1
  CHECK_THROWS_WITH(engine->prefill(seq, random_tokens(5, spec.vocab_size, 42), bad), "token_budget");
  bad.attention = sparse_prefill(AttentionMode::Tidal, 8);
  bad.attention.selection_layers = {9};  // past the 8 layers
  CHECK_THROWS_WITH(engine->prefill(seq, random_tokens(5, spec.vocab_size, 43), bad), "selection layer 9");
  CHECK_EQ(engine->sequence_length(seq), int64_t{40});
  CHECK(bitwise_equal(engine->prefill(seq, {}), before));
  engine->release_sequence(seq);
}
