// What the CUDA backend can see: devices, and whether our kernels run on them.
#pragma once
#include <string>

namespace tidal {

struct CudaProbe {
  bool compiled = false;  // built with the CUDA backend
  int device_count = 0;   // devices visible to the CUDA runtime
  bool usable = false;    // a kernel of this build ran on device 0 and returned the right answer
  std::string device_name;
  int compute_capability = 0;  // e.g. 90 for H100
  double memory_total_gib = 0;
  std::string message;  // why not usable, in words a user can act on
};

// Never throws: no GPU, no driver, or a GPU this build has no kernels for all come back as
// usable = false with a message.
CudaProbe probe_cuda();

}  // namespace tidal
