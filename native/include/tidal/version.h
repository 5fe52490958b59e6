// Build facts of the native engine: version and the backends compiled in.
#pragma once
#include <string>
#include <vector>

namespace tidal {

// Semantic version of the engine library, e.g. "0.1.0".
std::string engine_version();

// Backends compiled into this build, in order of preference: "cuda" (when built with
// nvcc), then "cpu" (always). Compiled in does not mean usable: see cuda_device_count().
std::vector<std::string> compiled_backends();

}  // namespace tidal
