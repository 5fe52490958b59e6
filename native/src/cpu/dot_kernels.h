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
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/simd_support.h"
#include "model/half.h"
#include "model/weight_store.h"

#if TIDAL_X86_SIMD
#include <immintrin.h>
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

// out[t] = sum_c w[c] * x[t][c] for t < NT (portable path).
template <DType D, int NT>
inline void dot_rows_portable(const unsigned char* w, const float* const* x, int64_t n, float* out) {
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
