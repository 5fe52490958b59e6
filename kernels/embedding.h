// Launcher of kernels/embedding.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// out[t][i] = table[tokens[t]][i] (bf16 -> fp32).
cudaError_t launch_embedding(const uint16_t* table, const int32_t* tokens, int count, int hidden, float* out,
                             cudaStream_t stream);

}  // namespace tidal::cuda
