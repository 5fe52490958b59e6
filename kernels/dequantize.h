// Launcher of kernels/dequantize.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant_format.h"

namespace tidal::cuda {

// Rows [first_row, first_row + rows) of a block-quantised matrix W [*][cols] in `format` (w
// points at row 0; row r at byte r * quant_row_bytes(format, cols)) written as bf16 [rows][cols]
// to out (out row 0 is W row first_row). Each value is the CPU dequantiser's float32 rounded to
// bf16 (to nearest even). cols a multiple of the format's block values; w and out 16-byte
// aligned (cudaErrorMisalignedAddress otherwise).
cudaError_t launch_dequantize_bf16(QuantFormat format, const void* w, int64_t first_row, int64_t rows, int cols,
                                   uint16_t* out, cudaStream_t stream);

}  // namespace tidal::cuda
