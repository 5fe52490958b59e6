// Launcher of kernels/gemv_quant.cu. Asynchronous on `stream`; returns the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant_format.h"

namespace tidal::cuda {

// One-token linear layer over block-quantised weights: y[r] = beta * y[r] + sum_c W[r][c] x[c]
// with W [rows][cols] in `format` (rows of ggml blocks, row r at byte r * quant_row_bytes(format,
// cols)), x bf16 [cols], y fp32; the weights are dequantised in registers, fp32 accumulation;
// beta == 0 never reads y. cols a multiple of the format's block values (32 for Q8_0, 256 for
// Q4_K and Q6_K); w and x 16-byte aligned (cudaErrorMisalignedAddress otherwise).
cudaError_t launch_gemv_quant(QuantFormat format, const void* w, int64_t rows, int cols, const uint16_t* x, float* y,
                              float beta, cudaStream_t stream);

// How the product is spread: warps per block, rows per warp, chunks of 1024 values in flight
// per warp (shared-memory stages). Only the configurations listed below are compiled; the
// default is the long-standing one (bench/NOTES.md Version 16: 4 warps, 4 rows, 2 stages was
// ~7% faster over the Llama-3.1-8B Q4_K_M matrices, not yet measured in a whole step).
struct GemvQuantConfig {
  int warps = 4;
  int rows_per_warp = 2;
  int stages = 3;
};
// X(warps, rows_per_warp, stages) for every compiled configuration (each format's stages must
// fit 48 KB of static shared memory).
#define TIDAL_GEMV_QUANT_CONFIGS(X) \
  X(4, 2, 3)                        \
  X(4, 2, 4)                        \
  X(4, 4, 2)                        \
  X(2, 4, 3)                        \
  X(2, 4, 4)                        \
  X(2, 8, 2)                        \
  X(4, 1, 4)
#define TIDAL_GEMV_QUANT_CONFIG_ENTRY(W, R, S) GemvQuantConfig{W, R, S},
inline constexpr GemvQuantConfig kGemvQuantConfigs[] = {TIDAL_GEMV_QUANT_CONFIGS(TIDAL_GEMV_QUANT_CONFIG_ENTRY)};
#undef TIDAL_GEMV_QUANT_CONFIG_ENTRY
inline constexpr GemvQuantConfig kDefaultGemvQuantConfig{4, 2, 3};
constexpr bool operator==(const GemvQuantConfig& a, const GemvQuantConfig& b) {
  return a.warps == b.warps && a.rows_per_warp == b.rows_per_warp && a.stages == b.stages;
}
bool gemv_quant_config_supported(const GemvQuantConfig& config);
// launch_gemv_quant with an explicit configuration (cudaErrorInvalidValue for one not compiled).
cudaError_t launch_gemv_quant_with(const GemvQuantConfig& config, QuantFormat format, const void* w, int64_t rows,
                                   int cols, const uint16_t* x, float* y, float beta, cudaStream_t stream);

}  // namespace tidal::cuda
