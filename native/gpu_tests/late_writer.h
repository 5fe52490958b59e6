// Test kernels for early launch (kernels/common.cuh): a writer that lets the next kernel in the
// stream start at once and writes only after a delay, and a probe that records what it read
// before waiting for the previous kernels.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::gpu_test {

// After spinning for `delay_ns` of GPU time, copies `bytes[i]` bytes from `from[i]` to `to[i]`
// for i < 2 (a zero size skips a pair); the kernel lets the next one start before the delay.
cudaError_t launch_late_copy(const void* const (&from)[2], void* const (&to)[2], const size_t (&bytes)[2],
                             uint64_t delay_ns, cudaStream_t stream);

// Launched early: stores the first 32-bit word of `watched` into `seen[0]`, then waits for the
// previous kernels and stores it again into `seen[1]`.
cudaError_t launch_early_probe(const void* watched, uint32_t* seen, cudaStream_t stream);

}  // namespace tidal::gpu_test
