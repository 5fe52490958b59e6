// Rotary position embedding in the "rotate half" (GPT-NeoX) form used by Hugging Face Llama,
// Mistral and Qwen: a head vector of size d is split into halves (x1, x2) and, with angle
// a_i = position * inv_freq_i for i < d/2,
//   out_i       = x1_i * cos a_i - x2_i * sin a_i
//   out_{i+d/2} = x2_i * cos a_i + x1_i * sin a_i
// inv_freq_i comes from ModelConfig::rope_frequencies, resolved once at load (see
// model/rope_frequencies.h).
#pragma once
#include <cstdint>
#include <vector>

namespace tidal::cpu {

// cos and sin of position * inv_freq_i for i < half (the angle is formed in f32 like the
// reference implementation, then its cosine and sine are taken in double).
void rope_angles(const float* inverse_frequencies, int64_t half, int64_t position, float* cos_out, float* sin_out);

// Rotates one head vector of size 2 * half in place.
void apply_rope(float* head, const float* cos_values, const float* sin_values, int64_t half);

// Re-encoding a cached key for another position (KV-cache compaction). Rotations of one pair
// compose by adding angles, so a key rotated for position p becomes the key for p + delta by
// one more rotation by delta * inv_freq_i. The angle is formed and its cosine and sine taken
// in double: at |delta| ~ 1e5 an f32 product would already be off by ~1e-2 radians.
void rope_delta_angles(const float* inverse_frequencies, int64_t half, int64_t delta, double* cos_out, double* sin_out);

// Rotates one head vector of size 2 * half in place by the given angles, computing in double
// and rounding once to f32.
void rotate_pairs(float* head, const double* cos_values, const double* sin_values, int64_t half);

}  // namespace tidal::cpu
