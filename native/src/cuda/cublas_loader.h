// cuBLAS, loaded at run time. The build needs no cuBLAS headers or libraries (CI compiles
// the CUDA code with a toolkit that has none); the few entry points the backend calls are
// declared here and looked up with dlopen/dlsym the first time a backend is created.
//
// Search order: $TIDAL_CUBLAS (a path to libcublas.so*), then libcublas.so.13, .so.12 and
// libcublas.so on the loader's path (LD_LIBRARY_PATH, /usr/local/cuda/lib64 via ldconfig),
// then the lib folders of the CUDA toolkit and of the nvidia-cublas Python wheels.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace tidal::cuda {

// Row-major matrix products with bf16 operands and fp32 accumulation:
//   Y[t][r] = alpha * sum_c W[r][c] X[t][c] + beta * Y[t][r]
// W [rows][cols] bf16 (a Linear weight), X [tokens][cols] bf16 (stride x_stride), Y [tokens]
// [rows] fp32 (stride y_stride). beta = 1 accumulates into Y (the residual stream).
class Blas {
 public:
  // Throws CudaError-like std::runtime_error with what the user can do when cuBLAS cannot
  // be loaded or initialised.
  explicit Blas(cudaStream_t stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  void linear(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t x_stride, int64_t tokens,
              float* y, int64_t y_stride, float beta) const;
  const std::string& library() const { return library_; }

 private:
  void* handle_ = nullptr;
  std::string library_;
};

}  // namespace tidal::cuda
