#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace tidal::cuda {

namespace {

// The cuBLAS ABI values this file uses (cublas_api.h, library_types.h).
using Status = int;
constexpr Status kSuccess = 0;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kR32F = 0, kR16BF = 14;
constexpr int kCompute32F = 68;
constexpr int kGemmDefault = -1;
constexpr int kDefaultMath = 0;

struct Api {
  Status (*create)(void**) = nullptr;
  Status (*destroy)(void*) = nullptr;
  Status (*set_stream)(void*, cudaStream_t) = nullptr;
  Status (*set_math_mode)(void*, int) = nullptr;
  Status (*gemm_ex)(void*, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                    const void*, void*, int, int, int, int) = nullptr;
  std::string library;
  std::string error;
};

std::vector<std::string> candidates() {
  std::vector<std::string> names;
  if (const char* path = std::getenv("TIDAL_CUBLAS")) names.push_back(path);
  for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) names.push_back(name);
  for (const char* folder :
       {"/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/", "/usr/lib/x86_64-linux-gnu/"})
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"})
      names.push_back(std::string(folder) + name);
  for (const char* python : {"3.13", "3.12", "3.11", "3.10"})
    for (const char* root : {"/usr/local/lib/python", "/usr/lib/python"})
      for (const char* wheel :
           {"/dist-packages/nvidia/cublas/lib/libcublas.so.12", "/dist-packages/nvidia/cu13/lib/libcublas.so.13",
            "/site-packages/nvidia/cublas/lib/libcublas.so.12", "/site-packages/nvidia/cu13/lib/libcublas.so.13"})
        names.push_back(std::string(root) + python + wheel);
  return names;
}

const Api& api() {
  static Api loaded;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string tried;
    for (const std::string& name : candidates()) {
      void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!library) {
        tried += (tried.empty() ? "" : ", ") + name;
        continue;
      }
      Api a;
      a.create = reinterpret_cast<decltype(a.create)>(dlsym(library, "cublasCreate_v2"));
      a.destroy = reinterpret_cast<decltype(a.destroy)>(dlsym(library, "cublasDestroy_v2"));
      a.set_stream = reinterpret_cast<decltype(a.set_stream)>(dlsym(library, "cublasSetStream_v2"));
      a.set_math_mode = reinterpret_cast<decltype(a.set_math_mode)>(dlsym(library, "cublasSetMathMode"));
      a.gemm_ex = reinterpret_cast<decltype(a.gemm_ex)>(dlsym(library, "cublasGemmEx"));
      if (!a.create || !a.destroy || !a.set_stream || !a.set_math_mode || !a.gemm_ex) {
        tried += ", " + name + " (lacks the cublas*_v2 / cublasGemmEx entry points)";
        dlclose(library);
        continue;
      }
      a.library = name;
      loaded = a;
      return;
    }
    loaded.error = "cuBLAS could not be loaded (tried " + tried +
                   "); install the CUDA toolkit's libcublas or the nvidia-cublas Python wheel, or set TIDAL_CUBLAS "
                   "to the path of libcublas.so";
  });
  return loaded;
}

}  // namespace

Blas::Blas(cudaStream_t stream) {
  const Api& a = api();
  if (!a.create) throw std::runtime_error(a.error);
  library_ = a.library;
  Status status = a.create(&handle_);
  if (status != kSuccess)
    throw std::runtime_error("cublasCreate failed with status " + std::to_string(status) + " (" + library_ +
                             "): the GPU may be out of memory or the library too old for the driver");
  a.set_math_mode(handle_, kDefaultMath);
  status = a.set_stream(handle_, stream);
  if (status != kSuccess) throw std::runtime_error("cublasSetStream failed with status " + std::to_string(status));
}

Blas::~Blas() {
  if (handle_) api().destroy(handle_);
}

void Blas::linear(const uint16_t* w, int64_t rows, int64_t cols, const uint16_t* x, int64_t x_stride, int64_t tokens,
                  float* y, int64_t y_stride, float beta) const {
  if (rows <= 0 || tokens <= 0) return;
  const float alpha = 1.0f;
  // Column-major view: Y^T (rows x tokens) = W^T' (W row-major [rows][cols] is col-major
  // cols x rows, transposed) times X^T (col-major cols x tokens).
  const Status status =
      api().gemm_ex(handle_, kOpT, kOpN, static_cast<int>(rows), static_cast<int>(tokens), static_cast<int>(cols),
                    &alpha, w, kR16BF, static_cast<int>(cols), x, kR16BF, static_cast<int>(x_stride), &beta, y, kR32F,
                    static_cast<int>(y_stride), kCompute32F, kGemmDefault);
  if (status != kSuccess)
    throw std::runtime_error("cublasGemmEx failed with status " + std::to_string(status) + " for a " +
                             std::to_string(rows) + "x" + std::to_string(cols) + " matrix and " +
                             std::to_string(tokens) + " tokens");
}

}  // namespace tidal::cuda
