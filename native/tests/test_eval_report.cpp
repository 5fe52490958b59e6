// `tidal eval` results: the saved lines round-trip, and the tables count what the records say.
#include "../cli/eval_report.h"
#include "harness.h"

using namespace tidal::cli;

namespace {

EvalResults handmade() {
  EvalResults r;
  // 4K: full 4/4, tidal {2,4} b64 2/4 and b128 4/4, quest b64 1/4 and b128 3/4.
  // 16K (beyond an 8K training length): full 1/4, everything else 0/4.
  const ConfigKey full{"full", "-", 0}, t64{"tidal", "2,4", 64}, t128{"tidal", "2,4", 128}, q64{"quest", "-", 64},
      q128{"quest", "-", 128};
  for (int64_t trial = 0; trial < 2; ++trial)
    for (double depth : {0.1, 0.9}) {
      const int64_t i = trial * 2 + (depth > 0.5);
      r.passkey.push_back({4096, depth, trial, full, true});
      r.passkey.push_back({4096, depth, trial, t64, i < 2});
      r.passkey.push_back({4096, depth, trial, t128, true});
      r.passkey.push_back({4096, depth, trial, q64, i == 0});
      r.passkey.push_back({4096, depth, trial, q128, i < 3});
      r.passkey.push_back({16384, depth, trial, full, i == 3});
      for (const ConfigKey& k : {t64, t128, q64, q128}) r.passkey.push_back({16384, depth, trial, k, false});
    }
  r.perplexity.push_back({0, 4096, full, 100.0, 50});
  r.perplexity.push_back({1, 4096, full, 110.0, 50});
  r.perplexity.push_back({0, 4096, t64, 120.0, 50});
  r.perplexity.push_back({1, 4096, t64, 130.0, 50});
  return r;
}

bool contains(const std::string& text, const std::string& part) {
  const bool found = text.find(part) != std::string::npos;
  if (!found) tidal_test::record_failure(__FILE__, __LINE__, "report lacks: " + part);
  return found;
}

}  // namespace

TIDAL_TEST(eval_results_round_trip_through_saved_lines) {
  const EvalResults r = handmade();
  EvalResults back;
  append_results(serialize_results(r), "saved.tsv", back);
  CHECK_EQ(back.passkey.size(), r.passkey.size());
  CHECK_EQ(back.perplexity.size(), r.perplexity.size());
  CHECK(serialize_results(back) == serialize_results(r));
  CHECK(back.passkey[1].config == (ConfigKey{"tidal", "2,4", 64}));
  CHECK_THROWS_WITH(append_results("passkey\t1\tx\n", "bad.tsv", back), "bad.tsv:1");
}

TIDAL_TEST(eval_report_counts_the_records) {
  const std::string report = render_report(handmade(), 8192);
  contains(report, "| 4K | 100% | 100% | 100% | 4 |");
  contains(report, "| 16K (beyond training) | 0% | 50% | 25% | 4 |");
  contains(report, "| tidal | 2,4 | 64 | 50% | 0% |");
  contains(report, "| quest | - | 128 | 75% | 0% |");
  contains(report, "- 4K: full attention 100% (>= 95%: met); budgets at which it is matched: tidal {2,4}: 128; quest: none");
  contains(report, "- 16K: full attention 25% (beyond the trained length)");
  // 4K b64 50% > 25%, b128 100% > 75%; 16K is past the trained length and not counted.
  contains(report, "tidal {2,4} vs quest at equal budget, over (budget, context) cells within the trained length: "
                   "2 better, 0 equal, 0 worse");
  // full: 210 nats / 100 tokens; tidal: 250 / 100 -> exp(0.4) - 1 = +49.18%.
  contains(report, "| full | - | - | 2.1000 | 8.166 | +0.00% |");
  contains(report, "| tidal | 2,4 | 64 | 2.5000 | 12.182 | +49.18% |");
}

TIDAL_TEST(eval_report_skips_comparisons_where_full_attention_retrieves_nothing) {
  EvalResults r;
  r.passkey.push_back({32768, 0.5, 0, {"full", "-", 0}, false});
  r.passkey.push_back({32768, 0.5, 0, {"tidal", "2,4", 64}, false});
  r.passkey.push_back({32768, 0.5, 0, {"quest", "-", 64}, true});
  const std::string report = render_report(r, 8192);
  contains(report, "- 32K: full attention 0% (beyond the trained length); with nothing retrieved by full attention");
  contains(report, "cells within the trained length: 0 better, 0 equal, 0 worse");
}
