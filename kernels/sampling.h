// Launcher of kernels/sampling.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// out[r] = the lowest index of the largest value of row r (greedy sampling on the device).
cudaError_t launch_argmax(const float* logits, int rows, int64_t width, int32_t* out, cudaStream_t stream);

}  // namespace tidal::cuda
