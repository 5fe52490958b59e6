// exp(x) for eight floats at once (AVX2 + FMA), for softmax and SiLU. Range reduction
//   x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2 / 2
// with ln2 split in two parts so n ln2 is exact, then exp(r) by its degree-7 Taylor/minimax
// polynomial (the Cephes expf coefficients, about 1 ulp), and 2^n built in the exponent
// bits. Inputs below -87.3 give exactly 0 (they would be subnormal), above 88.7 give +inf.
#pragma once
#include "cpu/simd_support.h"

#if TIDAL_X86_SIMD
#include <immintrin.h>

namespace tidal::cpu::kernels {

TIDAL_TARGET_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 too_small = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  const __m256 too_large = _mm256_cmp_ps(x, _mm256_set1_ps(88.72283f), _CMP_GT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.72283f)), _mm256_set1_ps(-87.33654f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 y = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n + 127 in the exponent field. n is in [-126, 128]; n = 128 only at the clamp,
  // which is replaced by +inf below.
  const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(exponent));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), too_small);
  return _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), too_large);
}

}  // namespace tidal::cpu::kernels

#endif  // TIDAL_X86_SIMD
