// The ggml block-quantised weight formats that the CUDA kernels read (kernels/gemv_quant.cu,
// kernels/dequantize.cu), with their block geometry. Host and device code may include it.
//
// A matrix W [rows][cols] of one format is stored row after row, each row cols /
// block_elements blocks; row r starts at byte r * quant_row_bytes(format, cols). The values
// are the GGUF ids, so a tensor's stored type converts with a cast. Layouts of the blocks:
//
//   Q8_0  32 values in 34 bytes:   f16 d | int8 q[32]                          x = d * q
//   Q4_K  256 values in 144 bytes: f16 d | f16 dmin | 12 bytes of 6-bit scales and mins for
//         8 sub-blocks of 32 | 128 bytes of 4-bit q                 x = d * sc * q - dmin * m
//   Q6_K  256 values in 210 bytes: 128 bytes low 4 bits | 64 bytes high 2 bits | int8
//         scales[16] (one per 16 values) | f16 d                    x = d * sc * (q - 32)
//
// The bit placement inside a block is spelled out next to each decoder (kernels/quant_blocks.cuh);
// the engine's CPU dequantiser is the reference for it.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

enum class QuantFormat : uint32_t { Q8_0 = 8, Q4_K = 12, Q6_K = 14 };

__host__ __device__ constexpr int quant_block_elements(QuantFormat format) {
  return format == QuantFormat::Q8_0 ? 32 : 256;
}

__host__ __device__ constexpr int quant_block_bytes(QuantFormat format) {
  return format == QuantFormat::Q8_0 ? 34 : format == QuantFormat::Q4_K ? 144 : 210;
}

// Bytes of one row of `cols` values (cols a multiple of the block's values).
__host__ __device__ constexpr int64_t quant_row_bytes(QuantFormat format, int64_t cols) {
  return cols / quant_block_elements(format) * quant_block_bytes(format);
}

// Whether `id` (a GGUF type id) is one of the formats above.
__host__ __device__ constexpr bool is_quant_format(uint32_t id) {
  return id == uint32_t(QuantFormat::Q8_0) || id == uint32_t(QuantFormat::Q4_K) || id == uint32_t(QuantFormat::Q6_K);
}

}  // namespace tidal::cuda
