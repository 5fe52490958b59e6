// Properties of the current CUDA device that kernel launches size themselves by, read once
// per device and cached. Defined on the host side (native/src/cuda/device_info.cpp), where a
// failed query becomes a CudaError.
#pragma once
#include <cstddef>

namespace tidal::cuda {

struct DeviceInfo {
  int device = 0;
  int sm_count = 0;            // multiprocessors
  int compute_capability = 0;  // e.g. 90
  size_t l2_bytes = 0;
  size_t shared_per_block_optin = 0;  // largest dynamic shared memory a block may ask for
};

// The device current on the calling thread. Throws CudaError when none can be queried.
const DeviceInfo& current_device_info();

}  // namespace tidal::cuda
