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
// early: the kernel may start before the previous kernel in the stream ends and load W then
// (kernels/common.cuh, "Early launch"); only for a W that no kernel in flight writes.
cudaError_t launch_gemv_quant(QuantFormat format, const void* w, int64_t rows, int cols, const uint16_t* x, float* y,
                              float beta, cudaStream_t stream, bool early = false);

// The same over a gate|up matrix W [2 * inner][cols] (gate rows, then up rows) in one format,
// ending in SwiGLU: out[j] = bf16(silu(gate_j) * up_j) with gate_j, up_j the fp32 row sums, bit
// for bit what launch_gemv_quant into fp32 followed by launch_swiglu (kernels/swiglu.h) writes.
// cudaErrorInvalidValue for a configuration with an odd rows_per_warp.
cudaError_t launch_gemv_quant_swiglu(QuantFormat format, const void* w, int64_t inner, int cols, const uint16_t* x,
                                     uint16_t* out, cudaStream_t stream, bool early = false);

// How the product is spread. The SIMT kernel (all formats): warps per block, rows per warp,
// chunks of 1024 values in flight per warp (shared-memory stages). The tensor-core kernel
// (Q4_K only, `mma`): a warp multiplies 16 rows (the mma's M dimension; rows_per_warp is 16);
// the block's `warps` form warps / k_splits groups of 16 rows, the k_splits warps of a group
// splitting its K-blocks between them (k_splits 0: all the block's warps, one group); `stages`
// pairs of K-blocks in flight per warp; min_blocks > 0 asks the compiler for registers that let
// that many blocks share an SM and the SM for its largest shared-memory carveout (0: neither).
// Only the configurations listed below are compiled.
struct GemvQuantConfig {
  int warps = 4;
  int rows_per_warp = 2;
  int stages = 3;
  bool mma = false;
  int k_splits = 0;
  int min_blocks = 0;
};
// X(warps, rows_per_warp, stages) for every compiled SIMT configuration (each format's stages
// must fit 48 KB of static shared memory), and X(warps, stages, k_splits, min_blocks) for the
// tensor-core ones (bench/NOTES.md Version 29 has the measurements behind them).
#define TIDAL_GEMV_QUANT_CONFIGS(X) \
  X(4, 2, 3)                        \
  X(4, 2, 4)                        \
  X(4, 4, 2)                        \
  X(2, 4, 3)                        \
  X(2, 4, 4)                        \
  X(2, 8, 2)                        \
  X(4, 1, 4)
#define TIDAL_GEMV_Q4K_MMA_CONFIGS(X) \
  X(4, 2, 0, 0)                       \
  X(4, 3, 0, 0)                       \
  X(8, 2, 0, 0)                       \
  X(4, 2, 2, 0)                       \
  X(4, 2, 0, 6)                       \
  X(4, 2, 2, 6)
#define TIDAL_GEMV_QUANT_CONFIG_ENTRY(W, R, S) GemvQuantConfig{W, R, S, false},
#define TIDAL_GEMV_Q4K_MMA_CONFIG_ENTRY(W, S, K, B) GemvQuantConfig{W, 16, S, true, K, B},
inline constexpr GemvQuantConfig kGemvQuantConfigs[] = {TIDAL_GEMV_QUANT_CONFIGS(
    TIDAL_GEMV_QUANT_CONFIG_ENTRY) TIDAL_GEMV_Q4K_MMA_CONFIGS(TIDAL_GEMV_Q4K_MMA_CONFIG_ENTRY)};
#undef TIDAL_GEMV_QUANT_CONFIG_ENTRY
#undef TIDAL_GEMV_Q4K_MMA_CONFIG_ENTRY
// Defaults per format: Q8_0 keeps the long-standing SIMT configuration (bench/NOTES.md Version
// 16: 76-93% of the read sweep at the large matrices); Q6_K takes 2 warps of 4 rows (Version 17:
// the Q6_K head 166 -> 150 us on an H100, no matrix slower by more than 2%); Q4_K,
// instruction-bound in the SIMT kernel, takes the tensor-core kernel (Version 17).
inline constexpr GemvQuantConfig kDefaultGemvQuantConfig{4, 2, 3, false};
inline constexpr GemvQuantConfig kDefaultGemvQ6kConfig{2, 4, 3, false};
inline constexpr GemvQuantConfig kDefaultGemvQ4kConfig{4, 16, 2, true};
constexpr GemvQuantConfig default_gemv_quant_config(QuantFormat format) {
  return format == QuantFormat::Q4_K   ? kDefaultGemvQ4kConfig
         : format == QuantFormat::Q6_K ? kDefaultGemvQ6kConfig
                                       : kDefaultGemvQuantConfig;
}
constexpr bool operator==(const GemvQuantConfig& a, const GemvQuantConfig& b) {
  return a.warps == b.warps && a.rows_per_warp == b.rows_per_warp && a.stages == b.stages && a.mma == b.mma &&
         a.k_splits == b.k_splits && a.min_blocks == b.min_blocks;
}
// Whether `config` is compiled (for any format), and whether it serves `format`.
bool gemv_quant_config_supported(const GemvQuantConfig& config);
bool gemv_quant_config_supported(const GemvQuantConfig& config, QuantFormat format);
// launch_gemv_quant with an explicit configuration (cudaErrorInvalidValue for one not compiled
// or not serving the format).
cudaError_t launch_gemv_quant_with(const GemvQuantConfig& config, QuantFormat format, const void* w, int64_t rows,
                                   int cols, const uint16_t* x, float* y, float beta, cudaStream_t stream,
                                   bool early = false);
// launch_gemv_quant_swiglu with an explicit configuration.
cudaError_t launch_gemv_quant_swiglu_with(const GemvQuantConfig& config, QuantFormat format, const void* w,
                                          int64_t inner, int cols, const uint16_t* x, uint16_t* out,
                                          cudaStream_t stream, bool early = false);

}  // namespace tidal::cuda
