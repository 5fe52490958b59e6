// Device side of the ggml block formats (kernels/quant_format.h): where each value of a block
// sits, cut into pieces of 32 values that one thread decodes, the small field readers shared
// by the GEMV (kernels/gemv_quant.cu), the dequantiser (kernels/dequantize.cu) and the
// embedding gather (kernels/embedding.cu), and the piece decoders of the last two.
//
// A piece is 32 values of one block, in runs of consecutive values whose positions follow
// from the bit placement, so that the thread reads whole bytes of the block and whole
// 16-byte vectors of x or of the output:
//
//   Q8_0  one piece, the whole block: value i = d * (int8) q[i], q at byte 2 + i.
//
//   Q4_K  [f16 d][f16 dmin][12 bytes packed scales][128 bytes qs]; 8 sub-blocks j of 32
//         values with 6-bit scale sc_j and min m_j:
//           j < 4:  sc_j = packed[j] & 63,     m_j = packed[j + 4] & 63
//           j >= 4: sc_j = packed[j + 4] & 15 | (packed[j - 4] >> 6) << 4
//                   m_j  = packed[j + 4] >> 4 | (packed[j] >> 6) << 4
//         qs byte 32g + i (g < 4, i < 32) holds value 64g + i (sub-block 2g) in its low
//         nibble and value 64g + 32 + i (sub-block 2g + 1) in its high nibble;
//         value = d * sc_j * q - dmin * m_j.
//         Piece p (8 per block), g = p / 2, h = p % 2: the 16 bytes qs[32g + 16h, +16), that
//         is runs [64g + 16h, +16) (low nibbles) and [64g + 32 + 16h, +16) (high nibbles).
//
//   Q6_K  [ql: 128 bytes][qh: 64 bytes][int8 scales: 16][f16 d]; two halves H of 128 values;
//         in half H, for i < 32 the 6-bit quants of values 128H + 32k + i (k < 4) are
//           k = 0: ql[64H + i]      low nibble  | (qh[32H + i] bits 0-1) << 4
//           k = 1: ql[64H + 32 + i] low nibble  | (qh[32H + i] bits 2-3) << 4
//           k = 2: ql[64H + i]      high nibble | (qh[32H + i] bits 4-5) << 4
//           k = 3: ql[64H + 32 + i] high nibble | (qh[32H + i] bits 6-7) << 4
//         value v = d * scales[v / 16] * (q - 32).
//         Piece p (8 per block), H = p / 4, i0 = 8 * (p % 4): i in [i0, i0 + 8) for all four
//         k, that is runs [128H + 32k + i0, +8), each under one scale, scales[8H + 2k + i0 / 16].
//
// Block addresses: a Q4_K block is 144 = 9 * 16 bytes, so in a 16-byte aligned matrix every
// Q4_K block is 16-byte aligned. Q8_0 (34 bytes) and Q6_K (210 bytes) blocks are only 2-byte
// aligned in general, so their fields are read as 16-bit halves.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "quant_format.h"

namespace tidal::cuda {

// The geometry of a format as compile-time constants, for the kernels' templates.
template <QuantFormat F>
struct QuantBlock {
  static constexpr QuantFormat kFormat = F;
  static constexpr int kValues = quant_block_elements(F);
  static constexpr int kBytes = quant_block_bytes(F);
  static constexpr int kPieceValues = 32;
  static constexpr int kPieces = kValues / kPieceValues;
};

// Q4_K piece p: the start of its low-nibble run (run 0) and of its high-nibble run (run 1),
// and the offset of its 16 quant bytes in the block.
__device__ __forceinline__ int q4k_run_start(int piece, int run) {
  return 64 * (piece / 2) + 32 * run + 16 * (piece % 2);
}
__device__ __forceinline__ int q4k_quant_offset(int piece) { return 16 + 32 * (piece / 2) + 16 * (piece % 2); }

// Q6_K piece p: the start of run k (k < 4), and its scale's index in scales[16].
__device__ __forceinline__ int q6k_run_start(int piece, int k) { return 128 * (piece / 4) + 32 * k + 8 * (piece % 4); }
__device__ __forceinline__ int q6k_scale_index(int piece, int k) { return 8 * (piece / 4) + 2 * k + (piece % 4) / 2; }

// An f16 stored as its 16 bits, widened exactly.
__device__ __forceinline__ float f16_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

// 16 and 32 bits at a 2-byte aligned address (shared or global memory), little-endian.
__device__ __forceinline__ uint32_t load_u16(const uint8_t* address) {
  return *reinterpret_cast<const uint16_t*>(address);
}
__device__ __forceinline__ uint32_t load_u32_even(const uint8_t* address) {
  return load_u16(address) | (load_u16(address + 2) << 16);
}

// Sub-block j's 6-bit scale and min of a Q4_K block, from its 12 packed bytes.
__device__ __forceinline__ void q4k_scale_min(const uint8_t* packed, int j, int& scale, int& min) {
  if (j < 4) {
    scale = packed[j] & 0x3F;
    min = packed[j + 4] & 0x3F;
  } else {
    scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
    min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}
// The same from the 12 bytes as three little-endian words p0, p1, p2 (bytes 0-3, 4-7, 8-11):
// both cases read byte j % 4 of the words (packed[j], packed[j + 4], packed[j + 8] for j < 4;
// packed[j - 4], packed[j], packed[j + 4] for j >= 4), so no per-lane branch on j is needed.
__device__ __forceinline__ void q4k_scale_min(uint32_t p0, uint32_t p1, uint32_t p2, int j, int& scale, int& min) {
  const int shift = 8 * (j & 3);
  const int a = int((p0 >> shift) & 0xFF), b = int((p1 >> shift) & 0xFF), c = int((p2 >> shift) & 0xFF);
  scale = j < 4 ? a & 0x3F : (c & 0x0F) | ((a >> 6) << 4);
  min = j < 4 ? b & 0x3F : (c >> 4) | ((b >> 6) << 4);
}

// Piece decoders: Format::decode(block, piece, emit) calls emit(first, values) for each run of
// 8 consecutive values of piece `piece`, values[0] being value `first` of the block. Each value
// is computed with the CPU dequantiser's operations in its order, each rounded once (no fused
// multiply-add), so it is the reference's float32:
//   Q8_0  d * q;   Q4_K  (d * sc) * q - dmin * m;   Q6_K  (d * sc) * (q - 32).
struct Q8_0Pieces : QuantBlock<QuantFormat::Q8_0> {
  // Block 2-byte aligned.
  template <class Emit>
  __device__ __forceinline__ static void decode(const uint8_t* block, int, Emit&& emit) {
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
      emit(8 * v, values);
    }
  }
};

struct Q4_KPieces : QuantBlock<QuantFormat::Q4_K> {
  // Block 16-byte aligned (every Q4_K block of a 16-byte aligned matrix is).
  template <class Emit>
  __device__ __forceinline__ static void decode(const uint8_t* block, int piece, Emit&& emit) {
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
        emit(q4k_run_start(piece, run) + 8 * v, values);
      }
    }
  }
};

struct Q6_KPieces : QuantBlock<QuantFormat::Q6_K> {
  // Block 2-byte aligned.
  template <class Emit>
  __device__ __forceinline__ static void decode(const uint8_t* block, int piece, Emit&& emit) {
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
      emit(q6k_run_start(piece, k), values);
    }
  }
};

// Calls fn(Pieces{}) with the piece decoder of `format`; cudaErrorInvalidValue for another.
template <class Fn>
cudaError_t with_quant_pieces(QuantFormat format, Fn&& fn) {
  switch (format) {
    case QuantFormat::Q8_0:
      return fn(Q8_0Pieces{});
    case QuantFormat::Q4_K:
      return fn(Q4_KPieces{});
    case QuantFormat::Q6_K:
      return fn(Q6_KPieces{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace tidal::cuda
