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

// The same over a gate|up matrix W [2 * inner][cols] (gate rows, then up rows), ending in
// SwiGLU: out[j] = bf16(silu(gate_j) * up_j) with gate_j, up_j the fp32 row sums, bit for bit
// what launch_gemv into fp32 followed by launch_swiglu (kernels/swiglu.h) writes.
cudaError_t launch_gemv_swiglu(const uint16_t* w, int64_t inner, int cols, const uint16_t* x, uint16_t* out,
                               cudaStream_t stream, bool early = false);

}  // namespace tidal::cuda
