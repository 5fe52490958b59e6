#include "engine/backend_factory.h"

#include <algorithm>

#include "cpu/cpu_backend.h"
#include "tidal/error.h"

namespace tidal {

std::vector<std::string> available_backends() { return {"cpu"}; }

void require_available_backend(const std::string& name) {
  const std::vector<std::string> backends = available_backends();
  if (std::find(backends.begin(), backends.end(), name) != backends.end()) return;
  std::string names;
  for (const std::string& backend : backends) names += (names.empty() ? "" : ", ") + backend;
  throw RequestError("backend '" + name + "' is not available in this engine; available: " + names);
}

std::unique_ptr<Backend> create_backend(const ModelConfig& config, const ModelWeights& weights,
                                        const EngineOptions& options) {
  require_available_backend(options.backend);
  CpuBackendOptions cpu_options;
  cpu_options.threads = options.threads;
  cpu_options.max_kv_bytes = options.max_kv_bytes;
  return create_cpu_backend(config, weights, cpu_options);
}

}  // namespace tidal
