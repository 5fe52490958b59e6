// A kernel whose only job is to prove that this build's device code runs on the GPU:
// out[i] = i * 3 + 1 for i < n. A wrong or missing result means the GPU's architecture is
// not among those compiled (or the driver is too old).
#include "device_probe.h"

#include <cuda_runtime.h>

namespace tidal::cuda {

__global__ void probe_kernel(int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i * 3 + 1;
}

cudaError_t launch_probe(int* out, int n, cudaStream_t stream) {
  probe_kernel<<<(n + 127) / 128, 128, 0, stream>>>(out, n);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
