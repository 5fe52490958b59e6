// probe_cuda() for builds without the CUDA backend.
#ifndef TIDAL_HAVE_CUDA
#include "tidal/cuda_probe.h"

namespace tidal {

CudaProbe probe_cuda() {
  CudaProbe probe;
  probe.message = "this build of the engine has no CUDA backend (nvcc was not found when it was built)";
  return probe;
}

}  // namespace tidal
#endif
