#include "cpu/softmax.h"

#include <cmath>
#include <cstring>

#include "cpu/dot_kernels.h"
#include "cpu/simd_support.h"
#include "cpu/vector_exp.h"

namespace tidal::cpu {

namespace {

void softmax_portable(float* x, int64_t n) {
  float max_value = x[0];
  for (int64_t i = 1; i < n; ++i) max_value = x[i] > max_value ? x[i] : max_value;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_value);
    sum += x[i];
  }
  const float inverse_sum = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inverse_sum;
}

#if TIDAL_X86_SIMD
// Eight running sums (lane i holds elements i, i+8, ...), then the fixed lane tree.
TIDAL_TARGET_AVX2 void softmax_avx2(float* x, int64_t n) {
  float max_value = x[0];
  for (int64_t i = 1; i < n; ++i) max_value = x[i] > max_value ? x[i] : max_value;
  const __m256 shift = _mm256_set1_ps(max_value);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = kernels::exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (i < n) {
    alignas(32) float tail[8];
    for (int j = 0; j < 8; ++j) tail[j] = i + j < n ? x[i + j] - max_value : -INFINITY;
    const __m256 e = kernels::exp8(_mm256_load_ps(tail));
    _mm256_store_ps(tail, e);
    std::memcpy(x + i, tail, static_cast<size_t>(n - i) * sizeof(float));
    sum = _mm256_add_ps(sum, e);
  }
  const float inverse_sum = 1.0f / kernels::sum_lanes(sum, _mm256_setzero_ps());
  const __m256 scale = _mm256_set1_ps(inverse_sum);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), scale));
  for (; i < n; ++i) x[i] *= inverse_sum;
}
#endif

}  // namespace

void softmax_in_place(float* x, int64_t n) {
  if (n <= 0) return;
#if TIDAL_X86_SIMD
  if (simd_enabled()) {
    softmax_avx2(x, n);
    return;
  }
#endif
  softmax_portable(x, n);
}

}  // namespace tidal::cpu
