// Turns a request's AttentionOptions into the per-layer plan a backend executes.
//
//   full:  every layer Dense.
//   tidal: layers < dense_layers Dense; each selection layer DenseAndSelect; every other
//          layer after the first selection layer Selected (positions persist until the next
//          selection layer); layers before the first selection layer stay Dense.
//   quest: layers < dense_layers Dense, the others QuestPages.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "tidal/engine.h"

namespace tidal {

// The default tidal selection layers for a model of `num_layers` layers: {dense_layers,
// num_layers * 13 / 32}, without duplicates, dense layers or layers past the end (layers 2
// and 13 of 32, as in the TidalDecode reference). Where 13/32 of the depth is not past
// dense_layers (shallow models), the last layer re-selects (and so attends in full): {2, 5}
// for 6 layers, chosen from the embedded model's accuracy at 16K-128K tokens.
std::vector<int64_t> default_selection_layers(int64_t num_layers, int64_t dense_layers);

// Throws RequestError for a budget < 1, dense_layers < 0, a selection layer outside
// [0, num_layers) or a negative correction interval.
AttentionPlan make_attention_plan(const AttentionOptions& options, int64_t num_layers);

}  // namespace tidal
