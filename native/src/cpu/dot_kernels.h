// Inner loops shared by the CPU kernels: dot products of one weight row (f32, bf16 or f16)
// with up to four f32 activation rows, and y += a*x. Each exists twice, a portable loop and
// an AVX2/FMA one, with the same structure:
//
//   16 lanes of partial sums (two 8-wide registers); element c goes to lane c % 16; the last
//   partial chunk is zero-padded to 16; the lanes are then summed by a fixed tree
//   (l + l+8, then + l+4, then + l+2, then + l+1).
//
// So one output is the same sequence of float operations whichever caller asks for it and
// however many activation rows ride along: a batched prefill and a one-token decode, or a
// dense and a gathered attention, give bitwise equal results.
//
// On WebAssembly with SIMD128 the portable ones run as 128-bit vector loops (the 16 lanes in
// four 4-wide registers, a multiplication then an addition as in the plain loop), so they give
// the plain loops' results bit for bit.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/simd_support.h"
#include "model/half.h"
#include "model/weight_store.h"

#if TIDAL_X86_SIMD
#include <immintrin.h>
#endif
#if TIDAL_WASM_SIMD
#include <wasm_simd128.h>
#endif

namespace tidal::cpu::kernels {

constexpr int64_t kLanes = 16;

template <DType D>
constexpr int64_t element_bytes() {
  return D == DType::F32 ? 4 : 2;
}

// Element i of a row stored as D, read without alignment assumptions.
template <DType D>
inline float load_element(const unsigned char* row, int64_t i) {
  if constexpr (D == DType::F32) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    if constexpr (D == DType::BF16) return bf16_to_f32(h);
    return f16_to_f32(h);
  }
}

// Sums 16 lanes with the fixed tree described above.
inline float sum_lanes(const float* lanes) {
  float s8[8], s4[4];
  for (int j = 0; j < 8; ++j) s8[j] = lanes[j] + lanes[j + 8];
  for (int j = 0; j < 4; ++j) s4[j] = s8[j] + s8[j + 4];
  float s2a = s4[0] + s4[2];
  float s2b = s4[1] + s4[3];
  return s2a + s2b;
}

#if TIDAL_WASM_SIMD

// f16_to_f32 (model/half.h) of the four halves in the low 16 bits of h's lanes; same bits.
inline v128_t f16x4_to_f32(v128_t h) {
  const v128_t sign = wasm_i32x4_shl(wasm_v128_and(h, wasm_i32x4_splat(0x8000)), 16);
  const v128_t magnitude = wasm_v128_and(h, wasm_i32x4_splat(0x7FFF));
  const v128_t mantissa = wasm_v128_and(h, wasm_i32x4_splat(0x03FF));
  // Normal: exponent|mantissa shifted into place, exponent rebiased by 112.
  const v128_t normal = wasm_i32x4_add(wasm_i32x4_shl(magnitude, 13), wasm_i32x4_splat(112 << 23));
  // Zero or subnormal: mantissa * 2^-24, exact.
  const v128_t small = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(mantissa), wasm_f32x4_splat(0x1p-24f));
  // Inf/NaN: all-ones exponent, the payload shifted into place, the quiet bit for a NaN.
  const v128_t quiet = wasm_v128_andnot(wasm_i32x4_splat(0x00400000), wasm_i32x4_eq(mantissa, wasm_i32x4_splat(0)));
  const v128_t special = wasm_v128_or(wasm_v128_or(wasm_i32x4_splat(0x7F800000), wasm_i32x4_shl(mantissa, 13)), quiet);
  v128_t bits = wasm_v128_bitselect(small, normal, wasm_i32x4_lt(magnitude, wasm_i32x4_splat(0x0400)));
  bits = wasm_v128_bitselect(special, bits, wasm_i32x4_ge(magnitude, wasm_i32x4_splat(0x7C00)));
  return wasm_v128_or(bits, sign);
}

// Sixteen consecutive elements of a row stored as D, widened to f32: v[k] holds 4k .. 4k + 3.
template <DType D>
inline void load16(const unsigned char* row, int64_t i, v128_t* v) {
  if constexpr (D == DType::F32) {
    for (int k = 0; k < 4; ++k) v[k] = wasm_v128_load(row + 4 * i + 16 * k);
  } else {
    for (int k = 0; k < 2; ++k) {
      const v128_t h = wasm_v128_load(row + 2 * i + 16 * k);
      if constexpr (D == DType::BF16) {
        // bf16 is the top half of an f32: interleave zeros below each half.
        const v128_t zero = wasm_i32x4_splat(0);
        v[2 * k] = wasm_i16x8_shuffle(zero, h, 0, 8, 1, 9, 2, 10, 3, 11);
        v[2 * k + 1] = wasm_i16x8_shuffle(zero, h, 4, 12, 5, 13, 6, 14, 7, 15);
      } else {
        v[2 * k] = f16x4_to_f32(wasm_u32x4_extend_low_u16x8(h));
        v[2 * k + 1] = f16x4_to_f32(wasm_u32x4_extend_high_u16x8(h));
      }
    }
  }
}

// Same tree as sum_lanes on the 16 lanes held in v[0..3].
inline float sum_lanes(const v128_t* v) {
  const v128_t s4 = wasm_f32x4_add(wasm_f32x4_add(v[0], v[2]), wasm_f32x4_add(v[1], v[3]));
  const v128_t s2 = wasm_f32x4_add(s4, wasm_i32x4_shuffle(s4, s4, 2, 3, 0, 1));
  return wasm_f32x4_extract_lane(s2, 0) + wasm_f32x4_extract_lane(s2, 1);
}

// out[t] = sum_c w[c] * x[t][c] for t < NT (WebAssembly SIMD128 path of dot_rows_portable).
template <DType D, int NT>
inline void dot_rows_wasm(const unsigned char* w, const float* const* x, int64_t n, float* out) {
  v128_t acc[NT][4];
  for (int t = 0; t < NT; ++t)
    for (int k = 0; k < 4; ++k) acc[t][k] = wasm_f32x4_splat(0.0f);
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    v128_t wc[4];
    load16<D>(w, c, wc);
    for (int t = 0; t < NT; ++t)
      for (int k = 0; k < 4; ++k)
        acc[t][k] = wasm_f32x4_add(acc[t][k], wasm_f32x4_mul(wc[k], wasm_v128_load(x[t] + c + 4 * k)));
  }
  if (c < n) {
    const int64_t rest = n - c;
    float wt[kLanes] = {};
    for (int64_t j = 0; j < rest; ++j) wt[j] = load_element<D>(w, c + j);
    v128_t wc[4];
    for (int k = 0; k < 4; ++k) wc[k] = wasm_v128_load(wt + 4 * k);
    for (int t = 0; t < NT; ++t) {
      float xt[kLanes] = {};
      std::memcpy(xt, x[t] + c, static_cast<size_t>(rest) * sizeof(float));
      for (int k = 0; k < 4; ++k)
        acc[t][k] = wasm_f32x4_add(acc[t][k], wasm_f32x4_mul(wc[k], wasm_v128_load(xt + 4 * k)));
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sum_lanes(acc[t]);
}

// y[i] += a * x[i] (WebAssembly SIMD128 path of axpy_portable).
inline void axpy_wasm(float a, const float* x, float* y, int64_t n) {
  const v128_t va = wasm_f32x4_splat(a);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_f32x4_mul(va, wasm_v128_load(x + i))));
  for (; i < n; ++i) y[i] = y[i] + a * x[i];
}

#endif  // TIDAL_WASM_SIMD

// out[t] = sum_c w[c] * x[t][c] for t < NT (portable path).
template <DType D, int NT>
inline void dot_rows_portable(const unsigned char* w, const float* const* x, int64_t n, float* out) {
#if TIDAL_WASM_SIMD
  dot_rows_wasm<D, NT>(w, x, n, out);
  return;
#endif
  float acc[NT][kLanes];
  for (int t = 0; t < NT; ++t)
    for (int j = 0; j < kLanes; ++j) acc[t][j] = 0.0f;
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    float wc[kLanes];
    for (int j = 0; j < kLanes; ++j) wc[j] = load_element<D>(w, c + j);
    for (int t = 0; t < NT; ++t) {
      const float* xt = x[t] + c;
      for (int j = 0; j < kLanes; ++j) acc[t][j] = acc[t][j] + wc[j] * xt[j];
    }
  }
  if (c < n) {
    const int64_t rest = n - c;
    float wc[kLanes] = {};
    for (int64_t j = 0; j < rest; ++j) wc[j] = load_element<D>(w, c + j);
    for (int t = 0; t < NT; ++t) {
      float xt[kLanes] = {};
      std::memcpy(xt, x[t] + c, static_cast<size_t>(rest) * sizeof(float));
      for (int j = 0; j < kLanes; ++j) acc[t][j] = acc[t][j] + wc[j] * xt[j];
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sum_lanes(acc[t]);
}

// y[i] += a * x[i] (portable path).
inline void axpy_portable(float a, const float* x, float* y, int64_t n) {
#if TIDAL_WASM_SIMD
  axpy_wasm(a, x, y, n);
  return;
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] + a * x[i];
}

#if TIDAL_X86_SIMD

// Eight consecutive elements of a row stored as D, widened to f32.
template <DType D>
TIDAL_TARGET_AVX2 inline __m256 load8(const unsigned char* row, int64_t i) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row + 4 * i));
  } else if constexpr (D == DType::BF16) {
    // bf16 is the top half of an f32: zero-extend to 32 bits and shift left by 16.
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    return _mm256_cvtph_ps(h);
  }
}

// Same tree as sum_lanes on the 16 lanes held in (lo, hi).
TIDAL_TARGET_AVX2 inline float sum_lanes(__m256 lo, __m256 hi) {
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

// out[t] = sum_c w[c] * x[t][c] for t < NT (AVX2 + FMA path).
template <DType D, int NT>
TIDAL_TARGET_AVX2 inline void dot_rows_avx2(const unsigned char* w, const float* const* x, int64_t n, float* out) {
  __m256 lo[NT], hi[NT];
  for (int t = 0; t < NT; ++t) lo[t] = hi[t] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    __m256 w0 = load8<D>(w, c);
    __m256 w1 = load8<D>(w, c + 8);
    for (int t = 0; t < NT; ++t) {
      lo[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + c), lo[t]);
      hi[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + c + 8), hi[t]);
    }
  }
  if (c < n) {
    const int64_t rest = n - c;
    alignas(32) float wc[kLanes] = {};
    for (int64_t j = 0; j < rest; ++j) wc[j] = load_element<D>(w, c + j);
    __m256 w0 = _mm256_load_ps(wc), w1 = _mm256_load_ps(wc + 8);
    for (int t = 0; t < NT; ++t) {
      alignas(32) float xt[kLanes] = {};
      std::memcpy(xt, x[t] + c, static_cast<size_t>(rest) * sizeof(float));
      lo[t] = _mm256_fmadd_ps(w0, _mm256_load_ps(xt), lo[t]);
      hi[t] = _mm256_fmadd_ps(w1, _mm256_load_ps(xt + 8), hi[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = sum_lanes(lo[t], hi[t]);
}

// y[i] += a * x[i] (AVX2 + FMA path).
TIDAL_TARGET_AVX2 inline void axpy_avx2(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    alignas(32) float xt[8] = {}, yt[8] = {};
    std::memcpy(xt, x + i, static_cast<size_t>(n - i) * sizeof(float));
    std::memcpy(yt, y + i, static_cast<size_t>(n - i) * sizeof(float));
    _mm256_store_ps(yt, _mm256_fmadd_ps(va, _mm256_load_ps(xt), _mm256_load_ps(yt)));
    std::memcpy(y + i, yt, static_cast<size_t>(n - i) * sizeof(float));
  }
}

#endif  // TIDAL_X86_SIMD

}  // namespace tidal::cpu::kernels
