#include "tidal/cuda_probe.h"

#include <cuda_runtime.h>

#include <vector>

#include "kernels/device_probe.h"

namespace tidal {

CudaProbe probe_cuda() {
  CudaProbe probe;
  probe.compiled = true;
  cudaError_t err = cudaGetDeviceCount(&probe.device_count);
  if (err != cudaSuccess || probe.device_count == 0) {
    probe.device_count = 0;
    if (err == cudaSuccess || err == cudaErrorNoDevice) {
      probe.message = "no CUDA device is visible";
    } else if (err == cudaErrorInsufficientDriver) {
      probe.message = "no NVIDIA driver for CUDA 13 was found (no GPU here, or the driver needs an update)";
    } else {
      probe.message = std::string("the CUDA runtime found no usable device: ") + cudaGetErrorString(err);
    }
    return probe;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    probe.device_name = prop.name;
    probe.compute_capability = prop.major * 10 + prop.minor;
    probe.memory_total_gib = double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
  }
  constexpr int n = 1000;
  int* device_out = nullptr;
  if ((err = cudaMalloc(&device_out, n * sizeof(int))) != cudaSuccess) {
    probe.message = std::string("cudaMalloc failed: ") + cudaGetErrorString(err);
    return probe;
  }
  std::vector<int> host(n, -1);
  err = cuda::launch_probe(device_out, n, nullptr);
  if (err == cudaSuccess) err = cudaMemcpy(host.data(), device_out, n * sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(device_out);
  if (err != cudaSuccess) {
    probe.message = "this build has no kernels for " + probe.device_name + " (compute capability " +
                    std::to_string(probe.compute_capability) + "): " + cudaGetErrorString(err);
    return probe;
  }
  for (int i = 0; i < n; ++i) {
    if (host[i] != i * 3 + 1) {
      probe.message = "the probe kernel returned a wrong result on " + probe.device_name;
      return probe;
    }
  }
  probe.usable = true;
  return probe;
}

}  // namespace tidal
