#include "tidal/version.h"

namespace tidal {

std::string engine_version() { return TIDAL_VERSION; }

std::vector<std::string> compiled_backends() {
#ifdef TIDAL_HAVE_CUDA
  return {"cuda", "webgpu", "cpu"};
#else
  return {"webgpu", "cpu"};
#endif
}

}  // namespace tidal
