// What a saved KV cache depends on besides its tokens: the model's shape, its rotary
// embedding (theta and a hash of the exact per-pair frequencies), and its weights (their total size and a hash of
// samples of the tensors that produce keys and values). A KV file is loaded only by an engine whose fingerprint matches
// field for field, so two fine-tunes of one base model, equal in shape, still differ.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/model_weights.h"
#include "model/model_config.h"

namespace tidal {

struct ModelFingerprint {
  // (name, value) in a fixed order; values are exact text (doubles with 17 digits).
  std::vector<std::pair<std::string, std::string>> fields;
};

// Reads up to 64 KiB of the embedding matrix and of every layer's k_proj and v_proj.
ModelFingerprint model_fingerprint(const ModelConfig& config, const ModelWeights& weights);

// Empty when equal; else "<field>: the file has <a>, this model has <b>" for the first field
// that differs.
std::string fingerprint_difference(const ModelFingerprint& file, const ModelFingerprint& model);

}  // namespace tidal
