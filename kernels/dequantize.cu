// Dequantisation of block-quantised rows (Q8_0, Q4_K, Q6_K) into bf16, for prefill: the
// engine expands a matrix (or a range of its rows) into scratch and multiplies it with cuBLAS.
//
// One thread per piece of 32 values (kernels/quant_blocks.cuh): it reads the block's scales
// and its piece's quant bytes and writes its runs as 16-byte vectors of bf16. Each value is
// the piece decoder's float32, the CPU dequantiser's (quant_blocks.cuh), rounded to bf16:
//   Q8_0  d * q;   Q4_K  (d * sc) * q - dmin * m;   Q6_K  (d * sc) * (q - 32).
// The output write (2 bytes a value) outweighs the read (0.56-1.06 bytes), and both are
// contiguous across a warp's threads.
#include "dequantize.h"

#include "common.cuh"
#include "quant_blocks.cuh"

namespace tidal::cuda {

namespace {

constexpr int kThreads = 256;

// 8 floats rounded to bf16 (nearest even) and stored as one 16-byte vector (16-byte aligned).
__device__ __forceinline__ void store_bf16x8(uint16_t* out, const float (&v)[8]) {
  *reinterpret_cast<uint4*>(out) =
      make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]), pack_bf16(v[6], v[7]));
}

template <class Format>
__global__ void __launch_bounds__(kThreads)
    dequantize_kernel(const uint8_t* w, int64_t first_row, int64_t rows, int cols, uint16_t* out) {
  const int64_t pieces_per_row = cols / Format::kPieceValues;
  const int64_t index = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= rows * pieces_per_row) return;
  const int64_t row = index / pieces_per_row;
  const int in_row = int(index % pieces_per_row);
  const int block = in_row / Format::kPieces, piece = in_row % Format::kPieces;
  const int64_t row_bytes = int64_t(cols / Format::kValues) * Format::kBytes;
  uint16_t* target = out + row * cols + int64_t(block) * Format::kValues;
  Format::decode(w + (first_row + row) * row_bytes + int64_t(block) * Format::kBytes, piece,
                 [&](int first, const float(&values)[8]) { store_bf16x8(target + first, values); });
}

template <class Format>
cudaError_t launch(const void* w, int64_t first_row, int64_t rows, int cols, uint16_t* out, cudaStream_t stream) {
  const int64_t pieces = rows * (cols / Format::kPieceValues);
  dequantize_kernel<Format><<<static_cast<unsigned>(ceil_div(pieces, kThreads)), kThreads, 0, stream>>>(
      static_cast<const uint8_t*>(w), first_row, rows, cols, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_dequantize_bf16(QuantFormat format, const void* w, int64_t first_row, int64_t rows, int cols,
                                   uint16_t* out, cudaStream_t stream) {
  if (!is_quant_format(uint32_t(format))) return cudaErrorInvalidValue;
  if (cols <= 0 || cols % quant_block_elements(format) != 0 || first_row < 0) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(out)) % 16 != 0) return cudaErrorMisalignedAddress;
  if (rows <= 0) return cudaSuccess;
  return with_quant_pieces(
      format, [&](auto pieces) { return launch<decltype(pieces)>(w, first_row, rows, cols, out, stream); });
}

}  // namespace tidal::cuda
