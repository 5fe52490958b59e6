#include "cpu/swiglu.h"

#include <cmath>

#include "cpu/simd_support.h"
#include "cpu/vector_exp.h"

namespace tidal::cpu {

namespace {

inline float swiglu_one(float g, float u) {
  const float sigmoid = 1.0f / (1.0f + std::exp(-g));
  return (g * sigmoid) * u;
}

#if TIDAL_X86_SIMD
TIDAL_TARGET_AVX2 void swiglu_avx2(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = kernels::exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 sigmoid = _mm256_div_ps(one, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = swiglu_one(gate[i], up[i]);
}
#endif

}  // namespace

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
#if TIDAL_X86_SIMD
  if (simd_enabled()) {
    swiglu_avx2(gate, up, n, out);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = swiglu_one(gate[i], up[i]);
}

}  // namespace tidal::cpu
