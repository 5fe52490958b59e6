// Device memory for the CUDA backend: allocations that throw OutOfMemoryError with what was
// asked and what is free, owned by a move-only buffer.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include "cuda/cuda_error.h"
#include "tidal/error.h"

namespace tidal::cuda {

// "12.34 GiB".
inline std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

// cudaMalloc that throws OutOfMemoryError saying what was asked and what is free.
inline void* device_alloc(size_t bytes, const char* what) {
  void* pointer = nullptr;
  const cudaError_t error = cudaMalloc(&pointer, std::max<size_t>(bytes, 16));
  if (error == cudaSuccess) return pointer;
  cudaGetLastError();
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  if (error == cudaErrorMemoryAllocation)
    throw OutOfMemoryError(std::string("GPU out of memory: ") + what + " needs " + gib(bytes) + ", " + gib(free_bytes) +
                           " of " + gib(total_bytes) + " free; use a smaller model or context, or the cpu backend");
  throw CudaError(std::string("cudaMalloc for ") + what, error);
}

// An owned device allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, const char* what) : data_(device_alloc(bytes, what)), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }
  template <class T = void>
  T* get() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }
  // Grows (contents lost) to at least `bytes`; new memory is poisoned (0xFF: NaN floats) in
  // `stream` order (a plain cudaMemset would not be ordered with a non-blocking stream).
  void ensure(size_t bytes, const char* what, cudaStream_t stream) {
    if (bytes <= bytes_) return;
    DeviceBuffer bigger(bytes, what);
    throw_if_failed(cudaMemsetAsync(bigger.data_, 0xFF, bytes, stream), "poisoning a scratch buffer");
    *this = std::move(bigger);
  }
  // As ensure(), except that a buffer grown past `keep` bytes by an earlier, larger need is given
  // back down to `keep` bytes once `bytes` fits in that (contents lost, the new memory poisoned).
  void fit(size_t bytes, size_t keep, const char* what, cudaStream_t stream) {
    if (bytes <= keep && bytes_ > keep) {
      *this = DeviceBuffer();  // freed first, so the smaller one may take its place
      bytes = keep;
    }
    ensure(bytes, what, stream);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace tidal::cuda
