// Model shapes for benchmarks without a checkpoint (random weights of a public model's sizes).
#pragma once
#include <string>

#include "model/model_config.h"

namespace tidal::bench {

// "llama-3.1-8b", "llama-2-7b", "qwen2.5-coder-7b", "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b" or
// "qwen3-8b"; throws
// RequestError naming the known shapes for anything else.
ModelConfig bench_shape(const std::string& name);

}  // namespace tidal::bench
