// Dot products of GGUF block-quantised weight rows (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; layouts in
// model/quant.h) with f32 activation rows, the blocks dequantised in registers (AVX2 + FMA; on
// WebAssembly, SIMD128: the second half of this file), so a row is read once, in its blocks,
// with no f32 copy in memory.
//
// Same numbers as the f32 dot over the dequantised row (dot_kernels.h): the values come out of
// the registers exactly as model/quant.cpp's dequantisers write them, and enter the same 16
// lanes (element c in lane c % 16, two 8-wide FMA chains) in the same order, summed by the same
// tree. For the formats here a dequantised value is exact before its last operation:
//   Q8_0  d * q                  one multiplication
//   Q4_0  d * (q - 8)            one multiplication
//   Q6_K  (d * sc) * (q - 32)    d * sc is exact (11 x 7 significant bits), then one multiplication
//   Q4_K  (d * sc) * q - dmin * m   d * sc, dmin * m (11 x 6 bits) and (d * sc) * q (17 x 4 bits)
//   Q5_K  likewise with q of 5 bits: exact, so q * step - offset rounds once, whether it is
//         computed as a multiplication then a subtraction (quant.cpp) or as one fmsub (here).
// So the products are bit for bit those of the dequantised matrix, on one token or several.
//
// A call takes R rows against NT activation rows (R * NT <= 4, eight accumulators): one token
// takes several rows at a time (the format's kRows) so that their FMA chains overlap.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/dot_kernels.h"
#include "cpu/simd_support.h"

#if TIDAL_X86_SIMD
#include <immintrin.h>

#define TIDAL_AVX2_INLINE TIDAL_TARGET_AVX2 __attribute__((always_inline)) inline

namespace tidal::cpu::kernels {

// Eight unsigned bytes at p, widened to eight int32.
TIDAL_AVX2_INLINE __m256i widen_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Eight signed bytes at p, widened to eight int32.
TIDAL_AVX2_INLINE __m256i widen_i8(const uint8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// The f16 at p (any alignment) as f32; exact, as f16_to_f32.
TIDAL_AVX2_INLINE float f16_at(const uint8_t* p) { return _cvtsh_ss(static_cast<unsigned short>(p[0] | (p[1] << 8))); }

// Each format: kValues values in kBytes bytes per block; scales() reads a block's scale fields
// once; piece<P>() gives values [16P, 16P + 8) and [16P + 8, 16P + 16) of the block. kRows is
// how many rows a one-token product takes at a time: enough FMA chains to hide their latency,
// few enough that the compiler keeps everything in the 16 registers (measured; bench/NOTES.md
// Version 13). The nibble formats take two: the compiler shares each byte load between the
// piece of its low nibbles and the piece of its high nibbles, which costs registers.

// Q8_0: [f16 d][int8 q[32]], value = d * q.
struct Q8_0Blocks {
  static constexpr int kRows = 4;
  static constexpr int64_t kValues = 32, kBytes = 34;
  struct Scales {
    float d;
  };
  TIDAL_AVX2_INLINE static void scales(const uint8_t* block, Scales* s) { s->d = f16_at(block); }
  template <int P>
  TIDAL_AVX2_INLINE static void piece(const uint8_t* block, const Scales& s, __m256* w0, __m256* w1) {
    const __m256 d = _mm256_set1_ps(s.d);
    const uint8_t* q = block + 2 + 16 * P;
    *w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(widen_i8(q)));
    *w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(widen_i8(q + 8)));
  }
};

// Q4_0: [f16 d][16 bytes], byte i holds value i (low nibble) and i + 16 (high nibble);
// value = d * (q - 8).
struct Q4_0Blocks {
  static constexpr int kRows = 2;
  static constexpr int64_t kValues = 32, kBytes = 18;
  struct Scales {
    float d;
  };
  TIDAL_AVX2_INLINE static void scales(const uint8_t* block, Scales* s) { s->d = f16_at(block); }
  template <int P>
  TIDAL_AVX2_INLINE static __m256i nibbles(const uint8_t* p) {
    const __m256i bytes = widen_u8(p);
    return P == 0 ? _mm256_and_si256(bytes, _mm256_set1_epi32(0x0F)) : _mm256_srli_epi32(bytes, 4);
  }
  template <int P>
  TIDAL_AVX2_INLINE static void piece(const uint8_t* block, const Scales& s, __m256* w0, __m256* w1) {
    const __m256 d = _mm256_set1_ps(s.d);
    const __m256i eight = _mm256_set1_epi32(8);
    *w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(nibbles<P>(block + 2), eight)));
    *w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(nibbles<P>(block + 10), eight)));
  }
};

// The per-sub-block steps d * sc_j and offsets dmin * m_j of a Q4_K / Q5_K block. The 12 bytes
// of 6-bit scales and mins (model/quant.cpp's k_scale_min) as three little-endian words a, b, c:
//   sc_0..3 = bytes of a & 0x3F,   sc_4..7 = (bytes of c & 0x0F) | (bytes of a >> 6) << 4
//   m_0..3  = bytes of b & 0x3F,   m_4..7  = (bytes of c >> 4)   | (bytes of b >> 6) << 4
TIDAL_AVX2_INLINE void k_block_steps(const uint8_t* block, float* step, float* offset) {
  uint32_t a, b, c;
  std::memcpy(&a, block + 4, 4);
  std::memcpy(&b, block + 8, 4);
  std::memcpy(&c, block + 12, 4);
  const uint64_t scales = (a & 0x3F3F3F3Fu) | static_cast<uint64_t>((c & 0x0F0F0F0Fu) | ((a >> 6) & 0x03030303u) << 4)
                                                  << 32;
  const uint64_t mins =
      (b & 0x3F3F3F3Fu) | static_cast<uint64_t>(((c >> 4) & 0x0F0F0F0Fu) | ((b >> 6) & 0x03030303u) << 4) << 32;
  const __m256i sc = _mm256_cvtepu8_epi32(_mm_set_epi64x(0, static_cast<long long>(scales)));
  const __m256i m = _mm256_cvtepu8_epi32(_mm_set_epi64x(0, static_cast<long long>(mins)));
  _mm256_store_ps(step, _mm256_mul_ps(_mm256_set1_ps(f16_at(block)), _mm256_cvtepi32_ps(sc)));
  _mm256_store_ps(offset, _mm256_mul_ps(_mm256_set1_ps(f16_at(block + 2)), _mm256_cvtepi32_ps(m)));
}

// Q4_K: [f16 d][f16 dmin][12 bytes of scales][128 bytes of quants]; sub-block j (32 values)
// is in the low (j even) or high (j odd) nibbles of quant bytes [32 (j / 2), 32 (j / 2) + 32).
// value = (d * sc_j) * q - dmin * m_j.
struct Q4_KBlocks {
  static constexpr int kRows = 2;
  static constexpr int64_t kValues = 256, kBytes = 144;
  struct Scales {
    alignas(32) float step[8];
    alignas(32) float offset[8];
  };
  TIDAL_AVX2_INLINE static void scales(const uint8_t* block, Scales* s) { k_block_steps(block, s->step, s->offset); }
  template <int P>
  TIDAL_AVX2_INLINE static __m256i quants(const uint8_t* p) {
    const __m256i bytes = widen_u8(p);
    return (P / 2) % 2 == 0 ? _mm256_and_si256(bytes, _mm256_set1_epi32(0x0F)) : _mm256_srli_epi32(bytes, 4);
  }
  template <int P>
  TIDAL_AVX2_INLINE static void piece(const uint8_t* block, const Scales& s, __m256* w0, __m256* w1) {
    const __m256 step = _mm256_set1_ps(s.step[P / 2]), offset = _mm256_set1_ps(s.offset[P / 2]);
    const uint8_t* q = block + 16 + 32 * (P / 4) + 16 * (P % 2);
    *w0 = _mm256_fmsub_ps(step, _mm256_cvtepi32_ps(quants<P>(q)), offset);
    *w1 = _mm256_fmsub_ps(step, _mm256_cvtepi32_ps(quants<P>(q + 8)), offset);
  }
};

// Q5_K: Q4_K with 32 bytes of fifth bits after the scales (quants at byte 48): bit j of byte i
// is the fifth bit of value 32 j + i.
struct Q5_KBlocks {
  static constexpr int kRows = 2;
  static constexpr int64_t kValues = 256, kBytes = 176;
  using Scales = Q4_KBlocks::Scales;
  TIDAL_AVX2_INLINE static void scales(const uint8_t* block, Scales* s) { k_block_steps(block, s->step, s->offset); }
  template <int P>
  TIDAL_AVX2_INLINE static __m256i quants(const uint8_t* low, const uint8_t* high) {
    constexpr int j = P / 2;
    const __m256i fifth = _mm256_and_si256(_mm256_srli_epi32(widen_u8(high), j), _mm256_set1_epi32(1));
    return _mm256_or_si256(Q4_KBlocks::quants<P>(low), _mm256_slli_epi32(fifth, 4));
  }
  template <int P>
  TIDAL_AVX2_INLINE static void piece(const uint8_t* block, const Scales& s, __m256* w0, __m256* w1) {
    const __m256 step = _mm256_set1_ps(s.step[P / 2]), offset = _mm256_set1_ps(s.offset[P / 2]);
    const uint8_t* q = block + 48 + 32 * (P / 4) + 16 * (P % 2);
    const uint8_t* h = block + 16 + 16 * (P % 2);
    *w0 = _mm256_fmsub_ps(step, _mm256_cvtepi32_ps(quants<P>(q, h)), offset);
    *w1 = _mm256_fmsub_ps(step, _mm256_cvtepi32_ps(quants<P>(q + 8, h + 8)), offset);
  }
};

// Q6_K: [128 bytes low 4 bits][64 bytes high 2 bits][int8 scales[16]][f16 d]. Values
// [16P, 16P + 16) have scale scales[P]; with half = P / 8, k = (P % 8) / 2, run = P % 2 their
// low bits are the (k / 2 ? high : low) nibbles of bytes 64 half + 32 (k % 2) + 16 run + i and
// their high bits bits 2k, 2k + 1 of byte 128 + 32 half + 16 run + i. value = (d * sc) * (q - 32).
struct Q6_KBlocks {
  static constexpr int kRows = 4;
  static constexpr int64_t kValues = 256, kBytes = 210;
  struct Scales {
    alignas(32) float step[16];
  };
  TIDAL_AVX2_INLINE static void scales(const uint8_t* block, Scales* s) {
    const __m256 d = _mm256_set1_ps(f16_at(block + 208));
    _mm256_store_ps(s->step, _mm256_mul_ps(d, _mm256_cvtepi32_ps(widen_i8(block + 192))));
    _mm256_store_ps(s->step + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(widen_i8(block + 200))));
  }
  // The 16 quants q - 32 of piece P as signed bytes. (The 16-bit shifts move bits across
  // bytes only into places the masks clear.)
  template <int P>
  TIDAL_AVX2_INLINE static __m128i quants(const uint8_t* low, const uint8_t* high) {
    constexpr int k = (P % 8) / 2;
    const __m128i low_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(low));
    const __m128i high_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(high));
    const __m128i low_bits = _mm_and_si128(k / 2 == 0 ? low_bytes : _mm_srli_epi16(low_bytes, 4), _mm_set1_epi8(0x0F));
    // Bits 2k, 2k + 1 of the high byte moved to bits 4, 5.
    const __m128i high_bits = _mm_and_si128(
        k < 2 ? _mm_slli_epi16(high_bytes, 4 - 2 * k) : _mm_srli_epi16(high_bytes, 2 * k - 4), _mm_set1_epi8(0x30));
    return _mm_sub_epi8(_mm_or_si128(low_bits, high_bits), _mm_set1_epi8(32));
  }
  template <int P>
  TIDAL_AVX2_INLINE static void piece(const uint8_t* block, const Scales& s, __m256* w0, __m256* w1) {
    constexpr int half = P / 8, k = (P % 8) / 2, run = P % 2;
    const __m256 step = _mm256_set1_ps(s.step[P]);
    const __m128i q = quants<P>(block + 64 * half + 32 * (k % 2) + 16 * run, block + 128 + 32 * half + 16 * run);
    *w0 = _mm256_mul_ps(step, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    *w1 = _mm256_mul_ps(step, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))));
  }
};

// How far ahead of the block being read each row asks for its bytes. With several rows read
// side by side the hardware prefetcher falls behind: asking 512 bytes ahead made Q8_0 15-25%
// faster on the 2-core build machine and changed nothing measurable for Q4_K / Q6_K (bench/NOTES.md
// Version 13). Prefetching past the end of the matrix is harmless.
constexpr int64_t kPrefetchBytes = 512;

// Values [16P, 16P + 16) of every row's current block against the same columns of every
// activation row.
template <class F, int R, int NT, int P>
TIDAL_AVX2_INLINE void block_piece_fma(const uint8_t* const* block, const typename F::Scales* s, const float* const* x,
                                       __m256 (&lo)[R][NT], __m256 (&hi)[R][NT]) {
  __m256 x0[NT], x1[NT];
  for (int t = 0; t < NT; ++t) {
    x0[t] = _mm256_loadu_ps(x[t] + 16 * P);
    x1[t] = _mm256_loadu_ps(x[t] + 16 * P + 8);
  }
  for (int r = 0; r < R; ++r) {
    __m256 w0, w1;
    F::template piece<P>(block[r], s[r], &w0, &w1);
    for (int t = 0; t < NT; ++t) {
      lo[r][t] = _mm256_fmadd_ps(w0, x0[t], lo[r][t]);
      hi[r][t] = _mm256_fmadd_ps(w1, x1[t], hi[r][t]);
    }
  }
}

template <class F, int R, int NT, int... P>
TIDAL_AVX2_INLINE void block_fma(const uint8_t* const* block, const typename F::Scales* s, const float* const* x,
                                 __m256 (&lo)[R][NT], __m256 (&hi)[R][NT], std::integer_sequence<int, P...>) {
  (block_piece_fma<F, R, NT, P>(block, s, x, lo, hi), ...);
}

// out[r * NT + t] = sum_c W[r][c] * x[t][c] for R rows of F blocks, row r at rows + r * row_bytes,
// cols a multiple of F::kValues.
template <class F, int R, int NT>
TIDAL_TARGET_AVX2 void block_dot_rows_avx2(const unsigned char* rows, int64_t row_bytes, const float* const* x,
                                           int64_t cols, float* out) {
  static_assert(R * NT <= 4, "eight accumulators at most");
  __m256 lo[R][NT], hi[R][NT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
  const int64_t blocks = cols / F::kValues;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block[R];
    typename F::Scales s[R];
    for (int r = 0; r < R; ++r) {
      block[r] = rows + r * row_bytes + b * F::kBytes;
      _mm_prefetch(reinterpret_cast<const char*>(block[r]) + kPrefetchBytes, _MM_HINT_T0);
      F::scales(block[r], &s[r]);
    }
    const float* xb[NT];
    for (int t = 0; t < NT; ++t) xb[t] = x[t] + b * F::kValues;
    block_fma<F, R, NT>(block, s, xb, lo, hi, std::make_integer_sequence<int, static_cast<int>(F::kValues / 16)>{});
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) out[r * NT + t] = sum_lanes(lo[r][t], hi[r][t]);
}

}  // namespace tidal::cpu::kernels

#endif  // TIDAL_X86_SIMD

#if TIDAL_WASM_SIMD
// The WebAssembly SIMD128 versions (the portable kernels there are SIMD128 ones: dot_kernels.h).
// The same formats and pieces of 16 values, each piece in four 4-wide registers (v[k] holds its
// values 4k .. 4k + 3), each product added as dot_rows_wasm adds it (a multiplication, then an
// addition: SIMD128 has no fused multiply-add), the 16 lanes summed by the same tree. The values
// are model/quant.cpp's bit for bit, computed with its operations (Q4_K / Q5_K: step * q, exact,
// then - offset). So a product is bit for bit that of linear_rows_quantized, which dequantises
// the rows into f32 scratch and runs dot_rows_wasm over them, on one token or several.

namespace tidal::cpu::kernels {

#define TIDAL_WASM_INLINE __attribute__((always_inline)) inline

// The f16 at p (any alignment) as f32.
TIDAL_WASM_INLINE float f16_at(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// The four int32 lanes (widened bytes) as f32, exact. The empty asm hides where n comes from:
// clang 14 folds byte widening followed by f32x4.convert_i32x4 into one conversion from 8- or
// 16-bit lanes, which its WebAssembly backend then does lane by lane (3x slower loops).
TIDAL_WASM_INLINE v128_t small_ints_to_f32(v128_t n) {
  __asm__("" : "+r"(n));
  return wasm_f32x4_convert_i32x4(n);
}

// Sixteen signed bytes as f32 in four registers, v[k] holding bytes 4k .. 4k + 3.
TIDAL_WASM_INLINE void widen_i8x16(v128_t bytes, v128_t* v) {
  const v128_t lo = wasm_i16x8_extend_low_i8x16(bytes), hi = wasm_i16x8_extend_high_i8x16(bytes);
  v[0] = small_ints_to_f32(wasm_i32x4_extend_low_i16x8(lo));
  v[1] = small_ints_to_f32(wasm_i32x4_extend_high_i16x8(lo));
  v[2] = small_ints_to_f32(wasm_i32x4_extend_low_i16x8(hi));
  v[3] = small_ints_to_f32(wasm_i32x4_extend_high_i16x8(hi));
}

// Each format: kValues values in kBytes bytes per block; scales() reads a block's scale fields
// once; piece<P>() gives values [16P, 16P + 16) of the block in v[0..3]. kRows: how many rows a
// one-token product takes at a time, measured per format in Node 20 (V8) on x86-64: four for
// the K formats (Q4_K twice as fast as with one), one for Q8_0 and Q4_0 (a third faster than
// with four).

// The formats whose block starts with its one f16 scale d.
struct OneScaleBlocks {
  struct Scales {
    v128_t d;
  };
  TIDAL_WASM_INLINE static void scales(const uint8_t* block, Scales* s) { s->d = wasm_f32x4_splat(f16_at(block)); }
};

// Q8_0: [f16 d][int8 q[32]], value = d * q.
struct Q8_0Blocks : OneScaleBlocks {
  static constexpr int kRows = 1;
  static constexpr int64_t kValues = 32, kBytes = 34;
  template <int P>
  TIDAL_WASM_INLINE static void piece(const uint8_t* block, const Scales& s, v128_t* v) {
    widen_i8x16(wasm_v128_load(block + 2 + 16 * P), v);
    for (int k = 0; k < 4; ++k) v[k] = wasm_f32x4_mul(s.d, v[k]);
  }
};

// Q4_0: [f16 d][16 bytes], byte i holds value i (low nibble) and i + 16 (high nibble);
// value = d * (q - 8).
struct Q4_0Blocks : OneScaleBlocks {
  static constexpr int kRows = 1;
  static constexpr int64_t kValues = 32, kBytes = 18;
  template <int P>
  TIDAL_WASM_INLINE static void piece(const uint8_t* block, const Scales& s, v128_t* v) {
    const v128_t bytes = wasm_v128_load(block + 2);
    const v128_t q = P == 0 ? wasm_v128_and(bytes, wasm_i8x16_splat(0x0F)) : wasm_u8x16_shr(bytes, 4);
    widen_i8x16(wasm_i8x16_sub(q, wasm_i8x16_splat(8)), v);
    for (int k = 0; k < 4; ++k) v[k] = wasm_f32x4_mul(s.d, v[k]);
  }
};

// The steps d * sc_j and offsets dmin * m_j of a Q4_K / Q5_K block's eight sub-blocks, from the
// 12 bytes of 6-bit scales and mins as three little-endian words a, b, c (as k_block_steps above).
struct KBlockSteps {
  float step[8];
  float offset[8];
};
TIDAL_WASM_INLINE void k_block_steps(const uint8_t* block, KBlockSteps* s) {
  uint32_t a, b, c;
  std::memcpy(&a, block + 4, 4);
  std::memcpy(&b, block + 8, 4);
  std::memcpy(&c, block + 12, 4);
  const v128_t scales = wasm_i32x4_make(static_cast<int32_t>(a & 0x3F3F3F3Fu),
                                        static_cast<int32_t>((c & 0x0F0F0F0Fu) | ((a >> 6) & 0x03030303u) << 4), 0, 0);
  const v128_t mins =
      wasm_i32x4_make(static_cast<int32_t>(b & 0x3F3F3F3Fu),
                      static_cast<int32_t>(((c >> 4) & 0x0F0F0F0Fu) | ((b >> 6) & 0x03030303u) << 4), 0, 0);
  const v128_t d = wasm_f32x4_splat(f16_at(block)), dmin = wasm_f32x4_splat(f16_at(block + 2));
  const v128_t sc = wasm_u16x8_extend_low_u8x16(scales), m = wasm_u16x8_extend_low_u8x16(mins);
  wasm_v128_store(s->step, wasm_f32x4_mul(d, small_ints_to_f32(wasm_u32x4_extend_low_u16x8(sc))));
  wasm_v128_store(s->step + 4, wasm_f32x4_mul(d, small_ints_to_f32(wasm_u32x4_extend_high_u16x8(sc))));
  wasm_v128_store(s->offset, wasm_f32x4_mul(dmin, small_ints_to_f32(wasm_u32x4_extend_low_u16x8(m))));
  wasm_v128_store(s->offset + 4, wasm_f32x4_mul(dmin, small_ints_to_f32(wasm_u32x4_extend_high_u16x8(m))));
}

// step * q - offset for sixteen quants (unsigned bytes below 128).
TIDAL_WASM_INLINE void k_values(v128_t quants, float step, float offset, v128_t* v) {
  widen_i8x16(quants, v);
  const v128_t st = wasm_f32x4_splat(step), off = wasm_f32x4_splat(offset);
  for (int k = 0; k < 4; ++k) v[k] = wasm_f32x4_sub(wasm_f32x4_mul(st, v[k]), off);
}

// The K formats with Q4_K's scale fields (d, dmin, 12 bytes of 6-bit scales and mins), four rows
// a one-token product.
struct KStepBlocks {
  static constexpr int kRows = 4;
  using Scales = KBlockSteps;
  TIDAL_WASM_INLINE static void scales(const uint8_t* block, Scales* s) { k_block_steps(block, s); }
};

// Q4_K: [f16 d][f16 dmin][12 bytes of scales][128 bytes of quants]; sub-block j (32 values)
// is in the low (j even) or high (j odd) nibbles of quant bytes [32 (j / 2), 32 (j / 2) + 32).
// value = (d * sc_j) * q - dmin * m_j.
struct Q4_KBlocks : KStepBlocks {
  static constexpr int64_t kValues = 256, kBytes = 144;
  template <int P>
  TIDAL_WASM_INLINE static v128_t quants(const uint8_t* p) {
    const v128_t bytes = wasm_v128_load(p);
    return (P / 2) % 2 == 0 ? wasm_v128_and(bytes, wasm_i8x16_splat(0x0F)) : wasm_u8x16_shr(bytes, 4);
  }
  template <int P>
  TIDAL_WASM_INLINE static void piece(const uint8_t* block, const Scales& s, v128_t* v) {
    k_values(quants<P>(block + 16 + 32 * (P / 4) + 16 * (P % 2)), s.step[P / 2], s.offset[P / 2], v);
  }
};

// Q5_K: Q4_K with 32 bytes of fifth bits after the scales (quants at byte 48): bit j of byte i
// is the fifth bit of value 32 j + i.
struct Q5_KBlocks : KStepBlocks {
  static constexpr int64_t kValues = 256, kBytes = 176;
  template <int P>
  TIDAL_WASM_INLINE static void piece(const uint8_t* block, const Scales& s, v128_t* v) {
    constexpr int j = P / 2;
    const v128_t high = wasm_v128_load(block + 16 + 16 * (P % 2));
    // Bit j of each high byte moved to bit 4.
    const v128_t fifth =
        wasm_v128_and(j <= 4 ? wasm_i8x16_shl(high, 4 - j) : wasm_u8x16_shr(high, j - 4), wasm_i8x16_splat(0x10));
    const v128_t q = wasm_v128_or(Q4_KBlocks::quants<P>(block + 48 + 32 * (P / 4) + 16 * (P % 2)), fifth);
    k_values(q, s.step[j], s.offset[j], v);
  }
};

// Q6_K: [128 bytes low 4 bits][64 bytes high 2 bits][int8 scales[16]][f16 d]. Values
// [16P, 16P + 16) have scale scales[P]; with half = P / 8, k = (P % 8) / 2, run = P % 2 their
// low bits are the (k / 2 ? high : low) nibbles of bytes 64 half + 32 (k % 2) + 16 run + i and
// their high bits bits 2k, 2k + 1 of byte 128 + 32 half + 16 run + i. value = (d * sc) * (q - 32).
struct Q6_KBlocks {
  static constexpr int kRows = 4;
  static constexpr int64_t kValues = 256, kBytes = 210;
  struct Scales {
    float step[16];
  };
  TIDAL_WASM_INLINE static void scales(const uint8_t* block, Scales* s) {
    const v128_t d = wasm_f32x4_splat(f16_at(block + 208));
    v128_t sc[4];
    widen_i8x16(wasm_v128_load(block + 192), sc);
    for (int k = 0; k < 4; ++k) wasm_v128_store(s->step + 4 * k, wasm_f32x4_mul(d, sc[k]));
  }
  template <int P>
  TIDAL_WASM_INLINE static void piece(const uint8_t* block, const Scales& s, v128_t* v) {
    constexpr int half = P / 8, k = (P % 8) / 2, run = P % 2;
    const v128_t low = wasm_v128_load(block + 64 * half + 32 * (k % 2) + 16 * run);
    const v128_t high = wasm_v128_load(block + 128 + 32 * half + 16 * run);
    const v128_t low_bits = k / 2 == 0 ? wasm_v128_and(low, wasm_i8x16_splat(0x0F)) : wasm_u8x16_shr(low, 4);
    // Bits 2k, 2k + 1 of the high byte moved to bits 4, 5.
    const v128_t high_bits = wasm_v128_and(k < 2 ? wasm_i8x16_shl(high, 4 - 2 * k) : wasm_u8x16_shr(high, 2 * k - 4),
                                           wasm_i8x16_splat(0x30));
    widen_i8x16(wasm_i8x16_sub(wasm_v128_or(low_bits, high_bits), wasm_i8x16_splat(32)), v);
    const v128_t step = wasm_f32x4_splat(s.step[P]);
    for (int j = 0; j < 4; ++j) v[j] = wasm_f32x4_mul(step, v[j]);
  }
};

// Values [16P, 16P + 16) of every row's current block against the same columns of every
// activation row: acc = acc + w * x, lane by lane.
template <class F, int R, int NT, int P>
TIDAL_WASM_INLINE void block_piece_wasm(const uint8_t* const* block, const typename F::Scales* s, const float* const* x,
                                        v128_t (&acc)[R][NT][4]) {
  v128_t xv[NT][4];
  for (int t = 0; t < NT; ++t)
    for (int k = 0; k < 4; ++k) xv[t][k] = wasm_v128_load(x[t] + 16 * P + 4 * k);
  for (int r = 0; r < R; ++r) {
    v128_t w[4];
    F::template piece<P>(block[r], s[r], w);
    for (int t = 0; t < NT; ++t)
      for (int k = 0; k < 4; ++k) acc[r][t][k] = wasm_f32x4_add(acc[r][t][k], wasm_f32x4_mul(w[k], xv[t][k]));
  }
}

template <class F, int R, int NT, int... P>
TIDAL_WASM_INLINE void block_wasm(const uint8_t* const* block, const typename F::Scales* s, const float* const* x,
                                  v128_t (&acc)[R][NT][4], std::integer_sequence<int, P...>) {
  (block_piece_wasm<F, R, NT, P>(block, s, x, acc), ...);
}

// out[r * NT + t] = sum_c W[r][c] * x[t][c] for R rows of F blocks, row r at rows + r * row_bytes,
// cols a multiple of F::kValues.
// Not inlined: each is a function of its own, which V8 compiles well (inlined into one function
// of every format, some formats' loops ran three times slower).
template <class F, int R, int NT>
__attribute__((noinline)) void block_dot_rows_wasm(const unsigned char* rows, int64_t row_bytes, const float* const* x,
                                                   int64_t cols, float* out) {
  v128_t acc[R][NT][4];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t)
      for (int k = 0; k < 4; ++k) acc[r][t][k] = wasm_f32x4_splat(0.0f);
  const int64_t blocks = cols / F::kValues;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block[R];
    typename F::Scales s[R];
    for (int r = 0; r < R; ++r) {
      block[r] = rows + r * row_bytes + b * F::kBytes;
      F::scales(block[r], &s[r]);
    }
    const float* xb[NT];
    for (int t = 0; t < NT; ++t) xb[t] = x[t] + b * F::kValues;
    block_wasm<F, R, NT>(block, s, xb, acc, std::make_integer_sequence<int, static_cast<int>(F::kValues / 16)>{});
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < NT; ++t) out[r * NT + t] = sum_lanes(acc[r][t]);
}

}  // namespace tidal::cpu::kernels

#endif  // TIDAL_WASM_SIMD
