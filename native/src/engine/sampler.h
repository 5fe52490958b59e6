// Turns logits into a token: greedy argmax, or a draw from the temperature-scaled softmax
// restricted by top-k and then top-p (nucleus), with a seeded generator so that the same
// seed, options and logits give the same tokens on every platform.
#pragma once
#include <cstdint>
#include <vector>

#include "tidal/engine.h"

namespace tidal {

struct TokenProbability {
  int32_t token;
  double probability;
};

// xoshiro256** seeded through splitmix64: small, fast and identical everywhere.
class SamplingRandom {
 public:
  explicit SamplingRandom(uint64_t seed);
  uint64_t next();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();

 private:
  uint64_t state_[4];
};

// Throws RequestError for a non-finite temperature, top_k < 0 or top_p outside (0, 1].
void validate_sampling_options(const SamplingOptions& options);

// The distribution sample() draws from, most likely first (ties: lower token id first):
// temperature scaling, then the top_k most likely, then the smallest prefix whose mass
// reaches top_p, renormalised. Greedy options give the argmax with probability 1.
std::vector<TokenProbability> sampling_distribution(const float* logits, int64_t vocab, const SamplingOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int32_t sample(const float* logits, int64_t vocab);

 private:
  SamplingOptions options_;
  SamplingRandom random_;
};

}  // namespace tidal
