#include "cuda/cuda_error.h"

namespace tidal::cuda {

CudaError::CudaError(const std::string& what, cudaError_t code)
    : std::runtime_error(what + ": " + cudaGetErrorString(code)), code_(code) {}

void throw_if_failed(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw CudaError(what, code);
}

}  // namespace tidal::cuda
