#include "engine/attention_plan.h"

#include <algorithm>
#include <string>

#include "tidal/error.h"

namespace tidal {

std::vector<int64_t> default_selection_layers(int64_t num_layers, int64_t dense_layers) {
  std::vector<int64_t> layers;
  // Shallow models: 13/32 of the depth falls on or before the first selection layer, which
  // would leave no re-selection at all; then re-select at the last layer, so that it attends
  // in full. The 6-layer embedded model retrieves in its last layer: with {2, 4} that layer
  // attends only to what layer 4 picked and a far passkey at 100K tokens is found 25% of the
  // time against full attention's 70%; {2, 5} finds it 73% (bench/eval/long_stage6_h100.md).
  int64_t reselection = num_layers * 13 / 32;
  if (reselection <= dense_layers) reselection = num_layers - 1;
  for (int64_t layer : {dense_layers, reselection})
    if (layer >= dense_layers && layer < num_layers && std::find(layers.begin(), layers.end(), layer) == layers.end())
      layers.push_back(layer);
  std::sort(layers.begin(), layers.end());
  return layers;
}

AttentionPlan make_attention_plan(const AttentionOptions& options, int64_t num_layers) {
  AttentionPlan plan;
  plan.mode = options.mode;
  plan.token_budget = options.token_budget;
  plan.selection_policy = options.selection_policy;
  plan.sparse_prefill = options.sparse_prefill && options.mode != AttentionMode::Full;
  plan.layers.assign(static_cast<size_t>(num_layers), LayerAttention::Dense);
  if (options.mode == AttentionMode::Full) return plan;

  if (options.token_budget < 1)
    throw RequestError("attention token_budget must be at least 1, got " + std::to_string(options.token_budget));
  if (options.dense_layers < 0)
    throw RequestError("attention dense_layers must be >= 0, got " + std::to_string(options.dense_layers));
  if (options.correction_interval < 0)
    throw RequestError("attention correction_interval must be >= 0 (0 = off), got " +
                       std::to_string(options.correction_interval));

  if (options.mode == AttentionMode::Quest) {
    for (int64_t layer = options.dense_layers; layer < num_layers; ++layer)
      plan.layers[static_cast<size_t>(layer)] = LayerAttention::QuestPages;
    return plan;
  }

  std::vector<int64_t> selection = options.selection_layers.empty()
                                       ? default_selection_layers(num_layers, options.dense_layers)
                                       : options.selection_layers;
  for (int64_t layer : selection)
    if (layer < 0 || layer >= num_layers)
      throw RequestError("tidal selection layer " + std::to_string(layer) + " is outside the model's layers [0, " +
                         std::to_string(num_layers) + ")");
  bool selected = false;
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    LayerAttention& role = plan.layers[static_cast<size_t>(layer)];
    if (std::find(selection.begin(), selection.end(), layer) != selection.end()) {
      role = LayerAttention::DenseAndSelect;
      selected = true;
    } else if (layer >= options.dense_layers && selected) {
      role = LayerAttention::Selected;
    }
  }
  return plan;
}

}  // namespace tidal
