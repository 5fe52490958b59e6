// Launcher of kernels/rms_norm.cu. Rows are fp32 row-major, bf16 passed as uint16_t bits.
// Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// out[r] = bf16(x[r] / rms(x[r]) * weight), rms over `width` values, eps inside the root.
cudaError_t launch_rms_norm(const float* x, int64_t x_stride, const float* weight, int rows, int width, float eps,
                            uint16_t* out, int64_t out_stride, cudaStream_t stream);

}  // namespace tidal::cuda
