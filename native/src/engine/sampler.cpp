#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "tidal/error.h"

namespace tidal {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotate_left(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// NaN logits never win; among equals the lower id does.
bool more_likely(float a, int32_t ia, float b, int32_t ib) {
  const bool a_nan = std::isnan(a), b_nan = std::isnan(b);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a != b) return a > b;
  return ia < ib;
}

int32_t argmax(const float* logits, int64_t vocab) {
  int32_t best = 0;
  for (int32_t i = 1; i < vocab; ++i)
    if (more_likely(logits[i], i, logits[best], best)) best = i;
  return best;
}

}  // namespace

SamplingRandom::SamplingRandom(uint64_t seed) {
  for (auto& word : state_) word = splitmix64(seed);
}

uint64_t SamplingRandom::next() {
  const uint64_t result = rotate_left(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotate_left(state_[3], 45);
  return result;
}

double SamplingRandom::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

void validate_sampling_options(const SamplingOptions& options) {
  if (!std::isfinite(options.temperature))
    throw RequestError("sampling temperature must be a finite number (0 = greedy)");
  if (options.top_k < 0)
    throw RequestError("sampling top_k must be >= 0 (0 = off), got " + std::to_string(options.top_k));
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f))
    throw RequestError("sampling top_p must be in (0, 1] (1 = off), got " + std::to_string(options.top_p));
}

std::vector<TokenProbability> sampling_distribution(const float* logits, int64_t vocab,
                                                    const SamplingOptions& options) {
  if (options.temperature <= 0.0f) return {{argmax(logits, vocab), 1.0}};

  // Candidates ranked most likely first; only the top_k need to be ordered.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  auto better = [logits](int32_t a, int32_t b) { return more_likely(logits[a], a, logits[b], b); };
  int64_t kept = vocab;
  if (options.top_k > 0 && options.top_k < vocab) {
    kept = options.top_k;
    std::partial_sort(order.begin(), order.begin() + kept, order.end(), better);
  } else {
    std::sort(order.begin(), order.end(), better);
  }
  while (kept > 1 && std::isnan(logits[order[static_cast<size_t>(kept - 1)]])) --kept;

  // softmax(logit / temperature) over the kept tokens, in double, max subtracted.
  const double inverse_temperature = 1.0 / static_cast<double>(options.temperature);
  const double max_scaled = static_cast<double>(logits[order[0]]) * inverse_temperature;
  std::vector<TokenProbability> out(static_cast<size_t>(kept));
  double total = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    const int32_t token = order[static_cast<size_t>(i)];
    const double p = std::exp(static_cast<double>(logits[token]) * inverse_temperature - max_scaled);
    out[static_cast<size_t>(i)] = {token, p};
    total += p;
  }
  for (auto& entry : out) entry.probability /= total;

  // Nucleus: the shortest prefix whose mass reaches top_p.
  if (options.top_p < 1.0f) {
    double mass = 0.0;
    size_t prefix = 0;
    while (prefix < out.size()) {
      mass += out[prefix++].probability;
      if (mass >= static_cast<double>(options.top_p)) break;
    }
    out.resize(prefix);
    for (auto& entry : out) entry.probability /= mass;
  }
  return out;
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), random_(options.seed) {
  validate_sampling_options(options);
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (options_.temperature <= 0.0f) return argmax(logits, vocab);
  const std::vector<TokenProbability> distribution = sampling_distribution(logits, vocab, options_);
  const double u = random_.uniform();
  double cumulative = 0.0;
  for (const auto& entry : distribution) {
    cumulative += entry.probability;
    if (u < cumulative) return entry.token;
  }
  return distribution.back().token;
}

}  // namespace tidal
