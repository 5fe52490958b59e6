#include "engine/backend_factory.h"

#include <algorithm>

#include "cpu/cpu_backend.h"
#include "tidal/error.h"
#include "webgpu/webgpu_backend.h"
#ifdef TIDAL_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace tidal {

namespace {

std::unique_ptr<Backend> create_cpu(const ModelConfig& config, const ModelWeights& weights,
                                    const EngineOptions& options) {
  CpuBackendOptions cpu_options;
  cpu_options.threads = options.threads;
  cpu_options.max_kv_bytes = options.max_kv_bytes;
  cpu_options.kv_fp8_simulation = options.kv_fp8_simulation;
  return create_cpu_backend(config, weights, cpu_options);
}

}  // namespace

// "cpu" is the default and the reference; "cuda" runs on the GPU or fails with the reason;
// "webgpu" records the ops for a WebGPU device the caller supplies (EngineOptions::webgpu_executor);
// "auto" takes the GPU when the cuda backend can run there and falls back to the CPU
// otherwise (the only case in which the engine falls back).
std::vector<std::string> available_backends() {
#ifdef TIDAL_HAVE_CUDA
  return {"cpu", "cuda", "webgpu", "auto"};
#else
  return {"cpu", "webgpu"};
#endif
}

void require_available_backend(const std::string& name) {
  const std::vector<std::string> backends = available_backends();
  if (std::find(backends.begin(), backends.end(), name) != backends.end()) return;
  std::string names;
  for (const std::string& backend : backends) names += (names.empty() ? "" : ", ") + backend;
  std::string hint;
  if (name == "cuda" || name == "auto") hint = " (this engine was built without the CUDA backend: nvcc was not found)";
  throw RequestError("backend '" + name + "' is not available in this engine" + hint + "; available: " + names);
}

std::unique_ptr<Backend> create_backend(const ModelConfig& config, const ModelWeights& weights,
                                        const EngineOptions& options) {
  require_available_backend(options.backend);
  if (options.kv_fp8_simulation && options.backend != "cpu")
    throw RequestError(
        "kv_fp8_simulation (rounding the KV cache as FP8 to measure its accuracy) is a CPU backend "
        "option; backend '" +
        options.backend + "' was asked for");
  if (options.kv_fp8 && (options.backend == "cpu" || options.backend == "webgpu"))
    throw RequestError("an FP8 KV cache is a cuda backend option; backend '" + options.backend +
                       "' keeps its K/V as floats (to measure FP8's accuracy on the CPU use kv_fp8_simulation)");
  if (options.backend == "webgpu") {
    WebGpuBackendOptions webgpu_options;
    webgpu_options.executor = options.webgpu_executor;
    webgpu_options.max_kv_bytes = options.max_kv_bytes;
    webgpu_options.max_positions = options.max_context;
    return create_webgpu_backend(config, weights, webgpu_options);
  }
#ifdef TIDAL_HAVE_CUDA
  if (options.backend == "cuda" || (options.backend == "auto" && cuda_backend_unavailable_reason().empty())) {
    CudaBackendOptions cuda_options;
    cuda_options.max_kv_bytes = options.max_kv_bytes;
    cuda_options.kv_fp8 = options.kv_fp8;
    try {
      return create_cuda_backend(config, weights, cuda_options);
    } catch (const RequestError&) {
      if (options.backend != "auto") throw;  // e.g. an unsupported head size or no cuBLAS
    }
  }
#endif
  return create_cpu(config, weights, options);
}

}  // namespace tidal
