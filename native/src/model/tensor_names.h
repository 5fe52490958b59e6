// Checkpoint tensor names, as the weight binding and the header-only inspection read them.
#pragma once
#include <cstdint>
#include <string>

namespace tidal {

bool is_digits(const std::string& text);

// The layer number of "model.layers.<n>.<rest>" (saturating for absurd numbers), or -1.
int64_t layer_of(const std::string& name);

// "model.layers.5.*" from "model.layers.5.mlp.up_proj.weight", "blk.5.*" from
// "blk.5.ffn_up.weight": the name up to its first all-digit part.
std::string layer_pattern(const std::string& stored_name);

}  // namespace tidal
