// Launchers of kernels/embedding.cu. Asynchronous on `stream`; return the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant_format.h"

namespace tidal::cuda {

// out[t][i] = table[tokens[t]][i] (bf16 -> fp32); with tokens null, table[t][i] (rows already
// gathered in pass order).
cudaError_t launch_embedding(const uint16_t* table, const int32_t* tokens, int count, int hidden, float* out,
                             cudaStream_t stream);

// The same from a block-quantised table [*][hidden] in `format` (row r at byte r *
// quant_row_bytes(format, hidden)): each value the CPU dequantiser's float32. hidden a multiple
// of the format's block values (cudaErrorInvalidValue otherwise); table and out 16-byte aligned
// (cudaErrorMisalignedAddress otherwise). Token ids are not checked: the caller does.
cudaError_t launch_embedding_quant(QuantFormat format, const void* table, const int32_t* tokens, int count, int hidden,
                                   float* out, cudaStream_t stream);

}  // namespace tidal::cuda
