#include "late_writer.h"

#include "kernels/common.cuh"

namespace tidal::gpu_test {

namespace {

__device__ __forceinline__ uint64_t global_time_ns() {
  uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

struct LateCopy {
  const uint8_t* from[2];
  uint8_t* to[2];
  size_t bytes[2];
  uint64_t delay_ns;
};

__global__ void late_copy_kernel(const LateCopy p) {
  cuda::let_next_kernel_start();
  const uint64_t start = global_time_ns();
  while (global_time_ns() - start < p.delay_ns) {
  }
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (int pair = 0; pair < 2; ++pair)
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.bytes[pair]; i += stride)
      p.to[pair][i] = p.from[pair][i];
}

__global__ void early_probe_kernel(const uint32_t* watched, uint32_t* seen) {
  seen[0] = *reinterpret_cast<const volatile uint32_t*>(watched);
  cuda::wait_for_previous_kernels();
  seen[1] = *reinterpret_cast<const volatile uint32_t*>(watched);
}

}  // namespace

cudaError_t launch_late_copy(const void* const (&from)[2], void* const (&to)[2], const size_t (&bytes)[2],
                             uint64_t delay_ns, cudaStream_t stream) {
  LateCopy p{};
  for (int i = 0; i < 2; ++i) {
    p.from[i] = static_cast<const uint8_t*>(from[i]);
    p.to[i] = static_cast<uint8_t*>(to[i]);
    p.bytes[i] = bytes[i];
  }
  p.delay_ns = delay_ns;
  return cuda::launch_kernel(late_copy_kernel, dim3(8), dim3(256), 0, stream, false, p);
}

cudaError_t launch_early_probe(const void* watched, uint32_t* seen, cudaStream_t stream) {
  return cuda::launch_kernel(early_probe_kernel, dim3(1), dim3(1), 0, stream, true,
                             static_cast<const uint32_t*>(watched), seen);
}

}  // namespace tidal::gpu_test
