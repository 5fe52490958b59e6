// The per-pair inverse frequencies of rotary position embeddings, resolved once when a model
// is loaded. Pair i of a head of size d (i < d/2) is rotated by position * f_i; every
// backend reads these f_i from ModelConfig::rope_frequencies and never recomputes them.
//
// Where they come from:
//   config.json:  f_i = theta^(-2i/d), rescaled by the Llama 3 rule when rope_scaling says so
//   GGUF:         f_i = theta^(-2i/d) / divisor_i, the divisors read from rope_freqs.weight
// Each is computed in double and rounded once to f32.
//
// The Llama 3.1 rule: with wavelength w_i = 2 pi / f_i, low = original_max / low_freq_factor
// and high = original_max / high_freq_factor,
//   w_i > low   (long wavelengths)  -> f_i / factor
//   w_i < high  (short wavelengths) -> f_i unchanged
//   otherwise, with s = (original_max / w_i - low_freq_factor) / (high_freq_factor - low_freq_factor):
//              (1 - s) * f_i / factor + s * f_i
#pragma once
#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace tidal {

// The d/2 frequencies from theta and a rope_scaling of type "none" or "llama3". Throws
// tidal::ModelError for an odd or non-positive head_dim, a non-positive theta, or a scaling
// type without a formula ("per-pair": only the file that gave them has those frequencies).
std::vector<float> rope_frequencies_from_parameters(int64_t head_dim, double theta, const RopeScaling& scaling);

// theta^(-2i/d) / divisors[i]: GGUF's rope_freqs.weight. Throws tidal::ModelError naming
// rope_freqs.weight when there are not d/2 divisors, or one is zero, negative, NaN or
// infinite, or so small that its frequency overflows f32.
std::vector<float> rope_frequencies_from_divisors(int64_t head_dim, double theta, const std::vector<float>& divisors);

// Sets config.rope_frequencies from config.head_dim, rope_theta and rope_scaling. The loaders
// call it (parse_model_config, the synthetic models); code that fills a ModelConfig by hand
// must call it before giving the config to an engine or a backend. Throws as
// rope_frequencies_from_parameters does.
void resolve_rope_frequencies(ModelConfig& config);

// Throws tidal::ModelError unless config.rope_frequencies holds head_dim / 2 finite positive
// values: the engine and both backends check a config before using it.
void check_rope_frequencies(const ModelConfig& config);

}  // namespace tidal
