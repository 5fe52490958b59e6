// The decode attention configurations the backend tests step through against the CPU backend,
// and the bound each is held to: sparse modes pick near-tied positions differently when bf16
// rounding moves a score, and a Quest swap moves a whole page (16 of 96 positions), so its bound
// is a sanity bound only (its mechanics are checked exactly elsewhere).
#pragma once
#include <cstdint>
#include <set>

#include "engine/attention_plan.h"
#include "engine/backend.h"
#include "model/model_config.h"

namespace tidal::gpu_test {

struct DecodeMode {
  const char* name;
  AttentionMode mode;
  SelectionPolicy policy;
  double bound_factor;  // times the full-attention bound
};

inline constexpr DecodeMode kDecodeModes[] = {
    {"full", AttentionMode::Full, SelectionPolicy::PerQueryHead, 1.0},
    {"tidal", AttentionMode::Tidal, SelectionPolicy::PerQueryHead, 2.5},
    {"tidal kv-max", AttentionMode::Tidal, SelectionPolicy::PerKvHeadMax, 2.5},
    {"quest", AttentionMode::Quest, SelectionPolicy::PerQueryHead, 8.0},
};

// A decode plan of `mode` with 2 dense layers (the tests' default).
inline AttentionPlan make_plan(const ModelConfig& config, AttentionMode mode, int64_t budget, SelectionPolicy policy) {
  AttentionOptions options;
  options.mode = mode;
  options.token_budget = budget;
  options.selection_policy = policy;
  options.dense_layers = 2;
  return make_attention_plan(options, config.num_layers);
}

// The share of one trace's selected positions (over every query head) that the other selected
// too; 0 when the two differ in shape (another cache length or list count).
inline double selection_overlap(const SelectionTrace& a, const SelectionTrace& b) {
  if (a.selected.size() != b.selected.size() || a.positions != b.positions) return 0;
  int64_t same = 0, total = 0;
  for (size_t h = 0; h < a.selected.size(); ++h) {
    const std::set<int32_t> chosen(b.selected[h].begin(), b.selected[h].end());
    for (int32_t position : a.selected[h]) same += int64_t(chosen.count(position));
    total += int64_t(a.selected[h].size());
  }
  return total ? double(same) / double(total) : 0.0;
}

}  // namespace tidal::gpu_test
