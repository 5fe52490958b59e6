// Scalar conversions between float32 and the two 16-bit float formats in checkpoints.
//
//   float32:  1 sign | 8 exponent (bias 127) | 23 mantissa
//   bfloat16: 1 sign | 8 exponent (bias 127) |  7 mantissa   = the top half of a float32
//   float16:  1 sign | 5 exponent (bias 15)  | 10 mantissa
//
// float16 exponent field 0 encodes zero and subnormals (value = mantissa * 2^-24), field 31
// encodes infinity (mantissa 0) and NaN (mantissa != 0). Narrowing rounds to nearest, ties
// to even; NaNs stay NaN with their payload's top bits and the quiet bit set.
#pragma once
#include <cstdint>
#include <cstring>

namespace tidal {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = h & 0x7C00u;
  uint32_t mantissa = h & 0x03FFu;
  uint32_t bits;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24 is exact in float32 (a normal number or 0).
    bits = float_bits(static_cast<float>(mantissa) * 0x1p-24f);
  } else if (exponent == 0x7C00u) {
    // Inf/NaN: all-ones float32 exponent, mantissa (NaN payload) shifted into place. A
    // NaN also gets the quiet bit, as the hardware converters (F16C, CUDA) set it.
    bits = 0x7F800000u | (mantissa << 13) | (mantissa ? 0x00400000u : 0u);
  } else {
    // Normal: shift exponent|mantissa into place and rebias the exponent by 127 - 15 = 112.
    bits = ((static_cast<uint32_t>(h & 0x7FFFu)) << 13) + (112u << 23);
  }
  return bits_float(bits | sign);
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest even on the 16 dropped bits.
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline uint16_t f32_to_f16(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));  // NaN
  if (magnitude >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504: Inf
  if (magnitude < 0x38800000u) {
    // Below the smallest normal (2^-14): the result is subnormal, a multiple of 2^-24.
    // Adding 0.5 makes the FPU round the mantissa into the low bits (ties to even).
    float scaled = bits_float(magnitude) + 0.5f;
    return static_cast<uint16_t>(sign | (float_bits(scaled) - 0x3F000000u));
  }
  // Normal: rebias the exponent, then round the 13 dropped mantissa bits to nearest even.
  uint32_t rebased = magnitude - (112u << 23);
  rebased += 0x0FFFu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rebased >> 13));
}

}  // namespace tidal
