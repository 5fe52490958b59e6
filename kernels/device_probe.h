// Launcher of kernels/device_probe.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

namespace tidal::cuda {

// out[i] = i * 3 + 1 for i < n: proves that this build's device code runs on the GPU.
cudaError_t launch_probe(int* out, int n, cudaStream_t stream);

}  // namespace tidal::cuda
