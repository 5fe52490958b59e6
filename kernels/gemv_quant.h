// Launcher of kernels/gemv_quant.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant_format.h"

namespace tidal::cuda {

// One-token linear layer over block-quantised weights: y[r] = beta * y[r] + sum_c W[r][c] x[c]
// with W [rows][cols] in `format` (rows of ggml blocks, row r at byte r * quant_row_bytes(format,
// cols)), x bf16 [cols], y fp32; the weights are dequantised in registers, fp32 accumulation;
// beta == 0 never reads y. cols a multiple of the format's block values (32 for Q8_0, 256 for
// Q4_K and Q6_K); w and x 16-byte aligned (cudaErrorMisalignedAddress otherwise).
cudaError_t launch_gemv_quant(QuantFormat format, const void* w, int64_t rows, int cols, const uint16_t* x, float* y,
                              float beta, cudaStream_t stream);

}  // namespace tidal::cuda
