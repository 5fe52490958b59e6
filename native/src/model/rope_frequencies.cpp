#include "model/rope_frequencies.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "tidal/error.h"

namespace tidal {

namespace {

// theta^(-2i/d) in double.
double plain_frequency(int64_t pair, int64_t head_dim, double theta) {
  return std::pow(theta, -static_cast<double>(2 * pair) / static_cast<double>(head_dim));
}

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

void check_head_dim_and_theta(int64_t head_dim, double theta) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw ModelError("RoPE frequencies need a positive, even head_dim, got " + std::to_string(head_dim));
  if (!(theta > 0.0) || !std::isfinite(theta))
    throw ModelError("RoPE frequencies need a finite positive rope_theta, got " + number_text(theta));
}

}  // namespace

std::vector<float> rope_frequencies_from_parameters(int64_t head_dim, double theta, const RopeScaling& scaling) {
  check_head_dim_and_theta(head_dim, theta);
  const bool llama3 = scaling.type == "llama3";
  if (!llama3 && scaling.type != "none")
    throw ModelError("RoPE scaling '" + scaling.type + "' has no formula for its frequencies" +
                     (scaling.type == "per-pair" ? " (they come from the GGUF file's rope_freqs.weight)" : "") +
                     "; supported: none, llama3");
  const double kTwoPi = 6.283185307179586476925286766559;
  const double original = static_cast<double>(scaling.original_max_position_embeddings);
  const double low_freq_wavelength = original / scaling.low_freq_factor;
  const double high_freq_wavelength = original / scaling.high_freq_factor;
  const int64_t half = head_dim / 2;
  std::vector<float> out(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double frequency = plain_frequency(i, head_dim, theta);
    if (llama3) {
      const double wavelength = kTwoPi / frequency;
      if (wavelength > low_freq_wavelength) {
        frequency = frequency / scaling.factor;
      } else if (wavelength >= high_freq_wavelength) {
        const double smooth =
            (original / wavelength - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
        frequency = (1.0 - smooth) * frequency / scaling.factor + smooth * frequency;
      }
    }
    out[static_cast<size_t>(i)] = static_cast<float>(frequency);
  }
  return out;
}

std::vector<float> rope_frequencies_from_divisors(int64_t head_dim, double theta, const std::vector<float>& divisors) {
  check_head_dim_and_theta(head_dim, theta);
  const int64_t half = head_dim / 2;
  if (static_cast<int64_t>(divisors.size()) != half)
    throw ModelError("rope_freqs.weight has " + std::to_string(divisors.size()) + " divisors; expected " +
                     std::to_string(half) + " (head_dim / 2), one per rotated pair");
  std::vector<float> out(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float divisor = divisors[static_cast<size_t>(i)];
    const std::string found = "rope_freqs.weight holds " + number_text(divisor) + " for pair " + std::to_string(i);
    if (!std::isfinite(divisor) || !(divisor > 0.0f))
      throw ModelError(found + "; every divisor must be a finite positive number (the file is damaged)");
    const float frequency = static_cast<float>(plain_frequency(i, head_dim, theta) / static_cast<double>(divisor));
    if (!std::isfinite(frequency) || !(frequency > 0.0f))
      throw ModelError(found + ", which puts that pair's frequency outside the range of f32 (the file is damaged)");
    out[static_cast<size_t>(i)] = frequency;
  }
  return out;
}

void resolve_rope_frequencies(ModelConfig& config) {
  config.rope_frequencies = rope_frequencies_from_parameters(config.head_dim, config.rope_theta, config.rope_scaling);
}

void check_rope_frequencies(const ModelConfig& config) {
  const int64_t pairs = config.head_dim / 2;
  if (static_cast<int64_t>(config.rope_frequencies.size()) != pairs)
    throw ModelError("model config has " + std::to_string(config.rope_frequencies.size()) +
                     " RoPE frequencies, expected head_dim / 2 = " + std::to_string(pairs) +
                     " (a config filled in by hand needs resolve_rope_frequencies)");
  for (int64_t i = 0; i < pairs; ++i) {
    const float frequency = config.rope_frequencies[static_cast<size_t>(i)];
    if (!std::isfinite(frequency) || !(frequency > 0.0f))
      throw ModelError("RoPE frequency " + std::to_string(i) + " of the model config is " + std::to_string(frequency) +
                       "; every frequency must be finite and positive");
  }
}

}  // namespace tidal
