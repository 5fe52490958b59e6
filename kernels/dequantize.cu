// Dequantisation of block-quantised rows (Q8_0, Q4_K, Q6_K) into bf16, for prefill: the
// engine expands a matrix (or a range of its rows) into scratch and multiplies it with cuBLAS.
//
// One thread per piece of 32 values (kernels/quant_blocks.cuh): it reads the block's scales
// and its piece's quant bytes and writes its runs as 16-byte vectors of bf16. Each value is
// computed with the CPU dequantiser's operations in its order, each rounded once (no fused
// multiply-add), so that the float32 is the reference's and its bf16 the reference's rounded:
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

struct Q8_0Dequantize : QuantBlock<QuantFormat::Q8_0> {
  // Block 2-byte aligned; out at the block's first value.
  __device__ static void piece(const uint8_t* block, int, uint16_t* out) {
    const float d = f16_bits_to_float(load_u16(block));
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      const uint32_t low = load_u32_even(block + 2 + 8 * v), high = load_u32_even(block + 6 + 8 * v);
      float values[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        values[i] = __fmul_rn(d, float(int8_t(low >> (8 * i))));
        values[4 + i] = __fmul_rn(d, float(int8_t(high >> (8 * i))));
      }
      store_bf16x8(out + 8 * v, values);
    }
  }
};

struct Q4_KDequantize : QuantBlock<QuantFormat::Q4_K> {
  // Block 16-byte aligned (every Q4_K block of a 16-byte aligned matrix is).
  __device__ static void piece(const uint8_t* block, int piece, uint16_t* out) {
    const float d = f16_bits_to_float(load_u16(block));
    const float dmin = f16_bits_to_float(load_u16(block + 2));
    const uint4 quants = __ldg(reinterpret_cast<const uint4*>(block + q4k_quant_offset(piece)));
    const uint32_t words[4] = {quants.x, quants.y, quants.z, quants.w};
#pragma unroll
    for (int run = 0; run < 2; ++run) {
      int scale, min;
      q4k_scale_min(block + 4, 2 * (piece / 2) + run, scale, min);
      const float step = __fmul_rn(d, float(scale)), offset = __fmul_rn(dmin, float(min));
      const int shift = 4 * run;  // run 0: low nibbles, run 1: high nibbles
#pragma unroll
      for (int v = 0; v < 2; ++v) {
        float values[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const uint32_t byte = words[2 * v + i / 4] >> (8 * (i % 4));
          values[i] = __fsub_rn(__fmul_rn(step, float((byte >> shift) & 0x0F)), offset);
        }
        store_bf16x8(out + q4k_run_start(piece, run) + 8 * v, values);
      }
    }
  }
};

struct Q6_KDequantize : QuantBlock<QuantFormat::Q6_K> {
  // Block 2-byte aligned.
  __device__ static void piece(const uint8_t* block, int piece, uint16_t* out) {
    const int half = piece / 4, first = 8 * (piece % 4);
    const uint8_t* low = block + 64 * half + first;
    const uint8_t* high = block + 128 + 32 * half + first;
    const float d = f16_bits_to_float(load_u16(block + 208));
    const uint32_t a[2] = {load_u32_even(low), load_u32_even(low + 4)};
    const uint32_t b[2] = {load_u32_even(low + 32), load_u32_even(low + 36)};
    const uint32_t h[2] = {load_u32_even(high), load_u32_even(high + 4)};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float step = __fmul_rn(d, float(static_cast<int8_t>(block[192 + q6k_scale_index(piece, k)])));
      float values[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint32_t source = (k % 2 == 0 ? a[i / 4] : b[i / 4]) >> (8 * (i % 4));
        const int nibble = int((source >> (4 * (k / 2))) & 0x0F);
        const int top = int((h[i / 4] >> (8 * (i % 4) + 2 * k)) & 0x03);
        values[i] = __fmul_rn(step, float((nibble | (top << 4)) - 32));
      }
      store_bf16x8(out + q6k_run_start(piece, k), values);
    }
  }
};

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
  Format::piece(w + (first_row + row) * row_bytes + int64_t(block) * Format::kBytes, piece,
                out + row * cols + int64_t(block) * Format::kValues);
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
  switch (format) {
    case QuantFormat::Q8_0:
      return launch<Q8_0Dequantize>(w, first_row, rows, cols, out, stream);
    case QuantFormat::Q4_K:
      return launch<Q4_KDequantize>(w, first_row, rows, cols, out, stream);
    case QuantFormat::Q6_K:
      return launch<Q6_KDequantize>(w, first_row, rows, cols, out, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace tidal::cuda
