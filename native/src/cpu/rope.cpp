#include "cpu/rope.h"

#include <cmath>

namespace tidal::cpu {

void rope_angles(const float* inverse_frequencies, int64_t half, int64_t position, float* cos_out, float* sin_out) {
  const float p = static_cast<float>(position);
  for (int64_t i = 0; i < half; ++i) {
    const float angle = p * inverse_frequencies[i];
    cos_out[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sin_out[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

void apply_rope(float* head, const float* cos_values, const float* sin_values, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = head[i];
    const float x2 = head[i + half];
    head[i] = x1 * cos_values[i] - x2 * sin_values[i];
    head[i + half] = x2 * cos_values[i] + x1 * sin_values[i];
  }
}

void rope_delta_angles(const float* inverse_frequencies, int64_t half, int64_t delta, double* cos_out,
                       double* sin_out) {
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(delta) * static_cast<double>(inverse_frequencies[i]);
    cos_out[i] = std::cos(angle);
    sin_out[i] = std::sin(angle);
  }
}

void rotate_pairs(float* head, const double* cos_values, const double* sin_values, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const double x1 = head[i];
    const double x2 = head[i + half];
    head[i] = static_cast<float>(x1 * cos_values[i] - x2 * sin_values[i]);
    head[i + half] = static_cast<float>(x2 * cos_values[i] + x1 * sin_values[i]);
  }
}

}  // namespace tidal::cpu
