#include "cpu/fp8_e4m3.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace tidal::cpu {

namespace {

// The 127 finite non-negative values, in code order (codes 0x00..0x7E ascend).
std::array<float, 127> make_magnitudes() {
  std::array<float, 127> out{};
  for (int code = 0; code < 127; ++code) {
    const int exponent = code >> 3, mantissa = code & 7;
    out[size_t(code)] =
        exponent == 0 ? std::ldexp(float(mantissa), -9) : std::ldexp(1.0f + mantissa / 8.0f, exponent - 7);
  }
  return out;
}

const std::array<float, 127>& magnitudes() {
  static const std::array<float, 127> table = make_magnitudes();
  return table;
}

}  // namespace

float fp8_e4m3_to_float(uint8_t code) {
  const int magnitude = code & 0x7F;
  if (magnitude == 0x7F) return std::nanf("");
  const float value = magnitudes()[size_t(magnitude)];
  return code & 0x80 ? -value : value;
}

uint8_t float_to_fp8_e4m3(float value) {
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  if (std::isnan(value)) return uint8_t(sign | 0x7F);
  const float a = std::fabs(value);
  const std::array<float, 127>& table = magnitudes();
  if (a >= table[126]) return uint8_t(sign | 0x7E);
  // The last code whose value is <= a, then the nearer of it and the next (ties: even code).
  const int low = int(std::upper_bound(table.begin(), table.end(), a) - table.begin()) - 1;
  const float below = a - table[size_t(low)], above = table[size_t(low + 1)] - a;
  const int code = below < above ? low : above < below ? low + 1 : (low % 2 == 0 ? low : low + 1);
  return uint8_t(sign | code);
}

float fp8_e4m3_row_scale(float max_abs) {
  const float s = std::fmin(max_abs / 448.0f, 65504.0f);
  if (!(s > 0.0f)) return 0.0f;
  // f16 steps: 2^(e - 10) for s in [2^e, 2^(e+1)), e >= -14; 2^-24 below (subnormals).
  int exponent = 0;
  std::frexp(s, &exponent);  // s in [2^(exponent - 1), 2^exponent)
  const int step = std::max(exponent - 1, -14) - 10;
  return std::ldexp(std::ceil(std::ldexp(s, -step)), step);
}

void round_row_fp8_e4m3(float* row, int64_t n) {
  float max_abs = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(row[i])) return;
    max_abs = std::max(max_abs, std::fabs(row[i]));
  }
  if (max_abs == 0.0f) return;
  const float scale = fp8_e4m3_row_scale(max_abs);
  for (int64_t i = 0; i < n; ++i) row[i] = fp8_e4m3_to_float(float_to_fp8_e4m3(row[i] / scale)) * scale;
}

}  // namespace tidal::cpu
