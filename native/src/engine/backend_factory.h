// Chooses and builds the compute backend named in EngineOptions::backend. New backends
// register here and nowhere else in the engine.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model_weights.h"
#include "model/model_config.h"
#include "tidal/engine.h"

namespace tidal {

// Backends this build can create, in order of preference.
std::vector<std::string> available_backends();

// Throws RequestError naming the available backends when `name` is not one of them.
void require_available_backend(const std::string& name);

// `weights` must outlive the backend. Throws RequestError naming the available backends
// for an unknown or unavailable name.
std::unique_ptr<Backend> create_backend(const ModelConfig& config, const ModelWeights& weights,
                                        const EngineOptions& options);

}  // namespace tidal
