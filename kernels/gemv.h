// Launcher of kernels/gemv.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// One-token linear layer: y[r] = beta * y[r] + sum_c W[r][c] x[c] (W bf16 [rows][cols], x bf16,
// y fp32; beta == 0 never reads y). cols a multiple of 8, W and x 16-byte aligned.
// early: the kernel may start before the previous kernel in the stream ends and read W then
// (kernels/common.cuh, "Early launch"); only for a W that no kernel in flight writes.
cudaError_t launch_gemv(const uint16_t* w, int64_t rows, int cols, const uint16_t* x, float* y, float beta,
                        cudaStream_t stream, bool early = false);

}  // namespace tidal::cuda
