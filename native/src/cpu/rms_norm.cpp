#include "cpu/rms_norm.h"

#include <cmath>

namespace tidal::cpu {

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
  double sum_squares = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  const float mean_square = static_cast<float>(sum_squares / static_cast<double>(n));
  const float inverse_rms = 1.0f / std::sqrt(mean_square + eps);
  // Hugging Face order: weight * (x * inverse_rms).
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inverse_rms);
}

}  // namespace tidal::cpu
