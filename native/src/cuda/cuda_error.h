// Errors of the CUDA kernels' host side: a failed runtime call or launch becomes a CudaError
// naming what was attempted and the runtime's own message.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace tidal::cuda {

class CudaError : public std::runtime_error {
 public:
  CudaError(const std::string& what, cudaError_t code);
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

// Throws CudaError("<what>: <runtime message>") unless code is cudaSuccess.
void throw_if_failed(cudaError_t code, const char* what);

}  // namespace tidal::cuda
