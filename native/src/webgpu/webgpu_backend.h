// The WebGPU backend: the decoder ops (engine/decoder.h) recorded on a command tape
// (webgpu/webgpu_tape.h) and run by an executor the host supplies, on device-resident
// weights and KV caches. Matrices keep their stored type when it is f32, f16 or bf16
// (block-quantised ones are widened to f32 at load); the KV cache is f32.
#pragma once
#include <memory>

#include "engine/backend.h"
#include "engine/model_weights.h"
#include "model/model_config.h"
#include "webgpu/webgpu_tape.h"

namespace tidal {

struct WebGpuBackendOptions {
  std::shared_ptr<WebGpuExecutor> executor;  // required
  size_t max_kv_bytes = 0;                   // 0 = no cap
  int64_t max_positions = 0;                 // per sequence; 0 = no cap (KV buffers grow ahead up to it)
};

// Throws RequestError without an executor.
std::unique_ptr<Backend> create_webgpu_backend(const ModelConfig& config, const ModelWeights& weights,
                                               const WebGpuBackendOptions& options);

}  // namespace tidal
