// The CPU backend: the reference implementation of the forward pass (prefill and decode,
// dense, TidalDecode and Quest attention) over the CPU kernels of this folder, parallelised
// over matrix rows and attention heads by a persistent thread pool.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/backend.h"
#include "engine/model_weights.h"
#include "model/model_config.h"

namespace tidal {

struct CpuBackendOptions {
  int threads = 0;                 // 0 = every hardware thread
  size_t max_kv_bytes = 0;         // 0 = no cap
  bool kv_fp8_simulation = false;  // EngineOptions::kv_fp8_simulation
};

// `weights` (and the tensors they view) must outlive the backend.
std::unique_ptr<Backend> create_cpu_backend(const ModelConfig& config, const ModelWeights& weights,
                                            const CpuBackendOptions& options);

}  // namespace tidal
