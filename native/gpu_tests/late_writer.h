// Test kernels for early launch (kernels/common.cuh): a writer that lets the next kernel in the
// stream start at once and writes only after a delay, and a probe that records what it read
// before waiting for the previous kernels.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "test_support.h"

namespace tidal::gpu_test {

// After spinning for `delay_ns` of GPU time, copies `bytes[i]` bytes from `from[i]` to `to[i]`
// for i < 2 (a zero size skips a pair); the kernel lets the next one start before the delay.
cudaError_t launch_late_copy(const void* const (&from)[2], void* const (&to)[2], const size_t (&bytes)[2],
                             uint64_t delay_ns, cudaStream_t stream);

// Launched early: stores the first 32-bit word of `watched` into `seen[0]`, then waits for the
// previous kernels and stores it again into `seen[1]`.
cudaError_t launch_early_probe(const void* watched, uint32_t* seen, cudaStream_t stream);

// On a new stream, after the device is idle: launch_late_copy of the pairs with a 20 us delay,
// then launch(stream) right behind it (a kernel launched early, whose inputs the copy writes);
// waits for both. Fails the test run (check_cuda) on an error.
template <class Launch>
void behind_late_copy(const void* const (&from)[2], void* const (&to)[2], const size_t (&bytes)[2], Launch&& launch) {
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating a stream");
  check_cuda(cudaDeviceSynchronize(), "waiting for the device");
  check_cuda(launch_late_copy(from, to, bytes, 20'000, stream), "late copy");
  check_cuda(launch(stream), "the launch behind the late copy");
  check_cuda(cudaStreamSynchronize(stream), "the launch behind the late copy");
  cudaStreamDestroy(stream);
}

}  // namespace tidal::gpu_test
