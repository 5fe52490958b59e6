// GPU tests of the attention-family kernels against float64 CPU references. Exits 77 (the
// CTest skip code) when there is no device to run them on, 1 when a check failed.
// Usage: tidal_gpu_tests [--quick] [--only GROUP]   (--quick: small cases only; --only: the
// groups whose name contains GROUP, e.g. --only "prefill attention split")
#include <cuda_runtime_api.h>

#include <cstdio>
#include <functional>
#include <string>

#include "test_support.h"

namespace {

// Empty when a device able to run these kernels (Hopper or newer: thread-block clusters)
// is present, else why not.
std::string why_no_device() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) return cudaGetErrorString(error);
  if (count == 0) return "the CUDA runtime sees no device";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "cannot read the properties of device 0";
  if (prop.major < 9)
    return std::string(prop.name) + " has compute capability " + std::to_string(prop.major) + "." +
           std::to_string(prop.minor) + "; these kernels need 9.0 (Hopper) or newer";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") tidal::gpu_test::quick_mode() = true;
    if (std::string(argv[i]) == "--only" && i + 1 < argc) only = argv[++i];
  }
  const std::string reason = why_no_device();
  if (!reason.empty()) {
    std::printf("no usable CUDA device: %s\n", reason.c_str());
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);

  tidal::gpu_test::Report report;
  auto group = [&](const std::string& name, const std::function<void()>& body) {
    if (only.empty() || name.find(only) != std::string::npos) report.run(name, body);
  };
  group("decode attention", [&] { tidal::gpu_test::test_decode_attention(report); });
  group("top-k selection", [&] { tidal::gpu_test::test_top_k(report); });
  group("quest", [&] { tidal::gpu_test::test_quest(report); });
  group("model", [&] { tidal::gpu_test::test_model(report); });
  group("kv sequences", [&] { tidal::gpu_test::test_kv_sequences(report); });
  group("prefill attention split", [&] { tidal::gpu_test::test_prefill_attention_split(report); });
  group("quantized weights", [&] { tidal::gpu_test::test_quant_kernels(report); });
  group("fp8 kv cache", [&] { tidal::gpu_test::test_kv_fp8(report); });
  group("sparse prefill", [&] { tidal::gpu_test::test_sparse_prefill(report); });
  std::printf("%d passed, %d failed\n", report.passed(), report.failed());
  return report.failed() == 0 ? 0 : 1;
}
