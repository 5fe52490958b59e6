#include "kernels/device_info.h"

#include <cuda_runtime_api.h>

#include <mutex>

#include "cuda/cuda_error.h"

namespace tidal::cuda {

namespace {
constexpr int kMaxDevices = 64;
}  // namespace

const DeviceInfo& current_device_info() {
  static DeviceInfo infos[kMaxDevices];
  static std::once_flag once[kMaxDevices];
  int device = 0;
  throw_if_failed(cudaGetDevice(&device), "cudaGetDevice");
  if (device < 0 || device >= kMaxDevices) throw CudaError("device index out of range", cudaErrorInvalidDevice);
  std::call_once(once[device], [device] {
    DeviceInfo info;
    info.device = device;
    int value = 0;
    throw_if_failed(cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device), "reading the SM count");
    info.sm_count = value;
    int major = 0, minor = 0;
    throw_if_failed(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
                    "reading the compute capability");
    throw_if_failed(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
                    "reading the compute capability");
    info.compute_capability = major * 10 + minor;
    throw_if_failed(cudaDeviceGetAttribute(&value, cudaDevAttrL2CacheSize, device), "reading the L2 size");
    info.l2_bytes = static_cast<size_t>(value);
    throw_if_failed(cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                    "reading the shared memory limit");
    info.shared_per_block_optin = static_cast<size_t>(value);
    infos[device] = info;
  });
  return infos[device];
}

}  // namespace tidal::cuda
