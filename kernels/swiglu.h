// Launcher of kernels/swiglu.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// out[t][i] = bf16(silu(gate_up[t][i]) * gate_up[t][inner + i]).
cudaError_t launch_swiglu(const float* gate_up, int tokens, int inner, uint16_t* out, cudaStream_t stream);

}  // namespace tidal::cuda
