// Launcher of kernels/bias_add.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// x[r][i] += bias[i] for i < width (fp32 rows `stride` apart).
cudaError_t launch_bias_add(float* x, int64_t stride, const float* bias, int rows, int width, cudaStream_t stream);

}  // namespace tidal::cuda
