#include "cpu/rope.h"

#include <cmath>

namespace tidal::cpu {

std::vector<float> rope_inverse_frequencies(int64_t head_dim, double theta, const Llama3RopeScaling& scaling) {
  const int64_t half = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(half));
  const double kTwoPi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < half; ++i) {
    double inv_freq = std::pow(theta, -static_cast<double>(2 * i) / static_cast<double>(head_dim));
    if (scaling.enabled) {
      const double wavelength = kTwoPi / inv_freq;
      const double low_freq_wavelength = scaling.original_max_position_embeddings / scaling.low_freq_factor;
      const double high_freq_wavelength = scaling.original_max_position_embeddings / scaling.high_freq_factor;
      if (wavelength > low_freq_wavelength) {
        inv_freq = inv_freq / scaling.factor;
      } else if (wavelength >= high_freq_wavelength) {
        const double smooth = (scaling.original_max_position_embeddings / wavelength - scaling.low_freq_factor) /
                              (scaling.high_freq_factor - scaling.low_freq_factor);
        inv_freq = (1.0 - smooth) * inv_freq / scaling.factor + smooth * inv_freq;
      }
    }
    out[static_cast<size_t>(i)] = static_cast<float>(inv_freq);
  }
  return out;
}

std::vector<float> rope_inverse_frequencies(const ModelConfig& config) {
  Llama3RopeScaling scaling;
  scaling.enabled = config.rope_scaling.type == "llama3";
  scaling.factor = config.rope_scaling.factor;
  scaling.low_freq_factor = config.rope_scaling.low_freq_factor;
  scaling.high_freq_factor = config.rope_scaling.high_freq_factor;
  scaling.original_max_position_embeddings = static_cast<double>(config.rope_scaling.original_max_position_embeddings);
  return rope_inverse_frequencies(config.head_dim, config.rope_theta, scaling);
}

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
