// Launchers of kernels/random_fill.cu. Asynchronous on `stream`; return the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::cuda {

// Deterministic pseudo-random fills (hash of seed and index), uniform in
// [center - half_width, center + half_width], never zero.
cudaError_t launch_fill_uniform_bf16(uint16_t* out, size_t count, float center, float half_width, uint64_t seed,
                                     cudaStream_t stream);
cudaError_t launch_fill_uniform_f32(float* out, size_t count, float center, float half_width, uint64_t seed,
                                    cudaStream_t stream);

}  // namespace tidal::cuda
