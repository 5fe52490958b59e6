#include "bench/device_bandwidth.h"

#include <algorithm>
#include <string>
#include <vector>

#include "tidal/error.h"

#ifdef TIDAL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace tidal::bench {

#ifdef TIDAL_HAVE_CUDA

namespace {

void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(error));
}

}  // namespace

double measure_copy_bandwidth() {
  const size_t bytes = size_t(1) << 31;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc for the bandwidth probe");
  check(cudaMalloc(&b, bytes), "cudaMalloc for the bandwidth probe");
  check(cudaMemset(a, 0x3c, bytes), "cudaMemset");
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> times;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(start);
    check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice), "copy");
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i >= 3) times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  std::sort(times.begin(), times.end());
  return 2.0 * double(bytes) / (times[times.size() / 2] * 1e-3);
}

#else

double measure_copy_bandwidth() { throw Error("this build has no CUDA backend"); }

#endif

}  // namespace tidal::bench
