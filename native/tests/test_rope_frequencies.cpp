// RoPE frequencies resolved at load (model/rope_frequencies.h): config.json's theta and Llama 3
// scaling against the Hugging Face formula evaluated here in long double, GGUF divisors, and
// the refusals. (The GGUF loader's use of them is in test_gguf_model.cpp.)
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "harness.h"
#include "model/model_config.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"

using tidal::ModelConfig;
using tidal::RopeScaling;

namespace {

// transformers' _compute_llama3_parameters, one pair at a time, in long double.
long double llama3_frequency(int64_t pair, int64_t head_dim, long double theta, const RopeScaling& s, int* band) {
  const long double pi = 3.141592653589793238462643383279502884L;
  const long double plain = 1.0L / std::pow(theta, 2.0L * pair / head_dim);
  const long double wavelength = 2.0L * pi / plain;
  const long double original = s.original_max_position_embeddings;
  if (wavelength < original / s.high_freq_factor) {
    *band = 0;
    return plain;
  }
  if (wavelength > original / s.low_freq_factor) {
    *band = 1;
    return plain / s.factor;
  }
  *band = 2;
  const long double smooth = (original / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0L - smooth) * plain / s.factor + smooth * plain;
}

// |a - b| in units in the last place of f32.
int64_t ulps_apart(float a, float b) {
  int64_t steps = 0;
  for (float x = std::fmin(a, b); x < std::fmax(a, b) && steps < 1000; ++steps)
    x = std::nextafter(x, std::numeric_limits<float>::infinity());
  return steps;
}

std::string llama_config(const std::string& rope) {
  return R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, )" +
         rope + "}";
}

}  // namespace

TIDAL_TEST(rope_frequencies_of_llama31_config_match_the_formula_in_long_double) {
  // Llama-3.1-8B's published settings, and a small original context that puts pairs of a
  // 32-wide head in all three bands.
  struct Case {
    std::string rope;
    int64_t head_dim;
  };
  const Case cases[] = {
      {R"("rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192, "rope_type": "llama3"})",
       128},
      {R"("head_dim": 32, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
          "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64})",
       32},
  };
  for (const Case& k : cases) {
    const ModelConfig c = tidal::parse_model_config(llama_config(k.rope));
    CHECK_EQ(c.head_dim, k.head_dim);
    CHECK_EQ(c.rope_frequencies.size(), static_cast<size_t>(k.head_dim / 2));
    int bands[3] = {0, 0, 0};
    for (int64_t i = 0; i < k.head_dim / 2 && i < static_cast<int64_t>(c.rope_frequencies.size()); ++i) {
      int band = 0;
      const long double expected = llama3_frequency(i, k.head_dim, 500000.0L, c.rope_scaling, &band);
      ++bands[band];
      // Rounded once to f32: within half a unit in the last place.
      const float got = c.rope_frequencies[static_cast<size_t>(i)];
      CHECK(std::fabs(static_cast<long double>(got) - expected) <= expected * 0x1p-24L * (1.0L + 1e-9L));
    }
    CHECK(bands[0] > 0);
    CHECK(bands[1] > 0);
    CHECK(bands[2] > 0);
  }
}

TIDAL_TEST(rope_frequencies_without_scaling_are_theta_powers) {
  const ModelConfig c = tidal::parse_model_config(llama_config(R"("rope_theta": 10000.0)"));
  CHECK_EQ(c.rope_scaling.type, std::string("none"));
  CHECK_EQ(c.rope_frequencies.size(), size_t(64));
  for (size_t i = 0; i < c.rope_frequencies.size(); ++i) {
    const long double expected = std::pow(10000.0L, -2.0L * static_cast<long double>(i) / 128.0L);
    CHECK(std::fabs(static_cast<long double>(c.rope_frequencies[i]) - expected) <=
          expected * 0x1p-24L * (1.0L + 1e-9L));
  }
  CHECK_EQ(c.rope_frequencies[0], 1.0f);
}

TIDAL_TEST(rope_frequencies_from_divisors_divide_the_plain_frequencies) {
  const std::vector<float> divisors = {1.0f, 1.5f, 3.25f, 8.0f};
  const std::vector<float> got = tidal::rope_frequencies_from_divisors(8, 500000.0, divisors);
  CHECK_EQ(got.size(), size_t(4));
  for (size_t i = 0; i < got.size() && i < divisors.size(); ++i) {
    const long double expected = std::pow(500000.0L, -2.0L * static_cast<long double>(i) / 8.0L) / divisors[i];
    CHECK(std::fabs(static_cast<long double>(got[i]) - expected) <= expected * 0x1p-24L * (1.0L + 1e-9L));
  }
}

TIDAL_TEST(rope_frequencies_from_llama31_divisors_agree_with_its_parameters) {
  // What a GGUF conversion of Llama 3.1 stores (one f32 divisor per pair) gives back the
  // config.json frequencies to f32 rounding: the divisor's own rounding and the final one
  // put them at most one unit in the last place apart.
  RopeScaling s;
  s.type = "llama3";
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 8192;
  const int64_t head_dim = 128;
  const std::vector<float> from_parameters = tidal::rope_frequencies_from_parameters(head_dim, 500000.0, s);
  std::vector<float> divisors;
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    int band = 0;
    const long double plain = std::pow(500000.0L, -2.0L * i / head_dim);
    divisors.push_back(static_cast<float>(plain / llama3_frequency(i, head_dim, 500000.0L, s, &band)));
  }
  const std::vector<float> from_divisors = tidal::rope_frequencies_from_divisors(head_dim, 500000.0, divisors);
  int64_t worst = 0, differing = 0;
  for (size_t i = 0; i < from_parameters.size(); ++i) {
    const int64_t apart = ulps_apart(from_parameters[i], from_divisors[i]);
    worst = std::max(worst, apart);
    differing += apart != 0;
  }
  CHECK(worst <= 1);
  CHECK(differing < 16);
}

TIDAL_TEST(rope_frequencies_refuse_bad_divisors_and_settings) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_divisors(8, 1e4, {1, 1, 1}),
                    "rope_freqs.weight has 3 divisors; expected 4 (head_dim / 2)");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_divisors(8, 1e4, {1, 0, 1, 1}),
                    "rope_freqs.weight holds 0 for pair 1; every divisor must be a finite positive number");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_divisors(8, 1e4, {1, 1, nan, 1}), "holds nan for pair 2");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_divisors(8, 1e4, {1, 1, 1, -2}), "holds -2 for pair 3");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_divisors(8, 1e4, {inf, 1, 1, 1}), "holds inf for pair 0");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_divisors(8, 1e4, {1e-45f, 1, 1, 1}), "outside the range of f32");

  RopeScaling per_pair;
  per_pair.type = "per-pair";
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_parameters(8, 1e4, per_pair), "rope_freqs.weight");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_parameters(7, 1e4, {}), "even head_dim, got 7");
  CHECK_THROWS_WITH(tidal::rope_frequencies_from_parameters(8, 0.0, {}), "positive rope_theta, got 0");

  ModelConfig by_hand;
  by_hand.head_dim = 8;
  by_hand.rope_theta = 10000.0;
  CHECK(by_hand.rope_frequencies.empty());
  tidal::resolve_rope_frequencies(by_hand);
  CHECK_EQ(by_hand.rope_frequencies.size(), size_t(4));
}
