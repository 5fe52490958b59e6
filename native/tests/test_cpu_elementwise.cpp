// RMSNorm, RoPE rotations, SwiGLU and softmax against float64 references. (The frequencies
// themselves are tested with the model layer: test_rope_frequencies.cpp.)
#include <cmath>
#include <vector>

#include "cpu/rms_norm.h"
#include "cpu/rope.h"
#include "cpu/softmax.h"
#include "cpu/swiglu.h"
#include "cpu/vector_exp.h"
#include "engine_test_models.h"
#include "harness.h"
#include "model/rope_frequencies.h"
#include "simd_paths.h"

using namespace tidal;
using namespace tidal_test;

TIDAL_TEST(cpu_rms_norm_matches_float64_reference) {
  for (int64_t n : {1, 5, 64, 1000}) {
    const auto x = random_floats(static_cast<size_t>(n), 1 + n, -3.0f, 3.0f);
    const auto w = random_floats(static_cast<size_t>(n), 2 + n, 0.5f, 1.5f);
    std::vector<float> out(static_cast<size_t>(n));
    cpu::rms_norm(x.data(), w.data(), n, 1e-5f, out.data());
    double ms = 0.0;
    for (float v : x) ms += static_cast<double>(v) * v;
    ms /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      const double exact = x[i] / std::sqrt(ms + 1e-5) * w[i];
      CHECK_NEAR(out[i], exact, 1e-6 * (1.0 + std::fabs(exact)));
    }
    cpu::rms_norm(x.data(), w.data(), n, 1e-5f, const_cast<float*>(x.data()));  // in place
    CHECK(bitwise_equal(x, out));
  }
}

TIDAL_TEST(cpu_swiglu_matches_float64_reference) {
  const auto gate = random_floats(257, 3, -8.0f, 8.0f);
  const auto up = random_floats(257, 4, -2.0f, 2.0f);
  on_each_simd_path([&](const char*) {
    std::vector<float> out(257);
    cpu::swiglu(gate.data(), up.data(), 257, out.data());
    for (size_t i = 0; i < out.size(); ++i) {
      const double g = gate[i];
      const double exact = g / (1.0 + std::exp(-g)) * up[i];
      CHECK_NEAR(out[i], exact, 1e-6 * (1.0 + std::fabs(exact)));
    }
  });
}

TIDAL_TEST(cpu_softmax_matches_reference_and_survives_large_inputs) {
  for (int64_t n : {1, 7, 8, 100}) {
    auto x = random_floats(static_cast<size_t>(n), 8 + n, -20.0f, 20.0f);
    x[0] = 1000.0f;  // exp(1000) overflows without the max subtraction
    if (n > 1) x[1] = 999.0f;
    on_each_simd_path([&](const char*) {
      std::vector<float> p = x;
      cpu::softmax_in_place(p.data(), n);
      double denominator = 0.0;
      for (float v : x) denominator += std::exp(static_cast<double>(v) - 1000.0);
      double total = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const double exact = std::exp(static_cast<double>(x[i]) - 1000.0) / denominator;
        CHECK_NEAR(p[i], exact, 1e-6 * exact + 1e-30);
        total += p[i];
      }
      CHECK_NEAR(total, 1.0, 1e-6);
    });
  }
}

#if TIDAL_X86_SIMD
namespace {
TIDAL_TARGET_AVX2 void exp8_array(const float* in, float* out) {
  _mm256_storeu_ps(out, cpu::kernels::exp8(_mm256_loadu_ps(in)));
}
}  // namespace

TIDAL_TEST(cpu_vector_exp_is_within_two_ulp) {
  if (!cpu::simd_available()) return;
  // Every 1/64 from -87 to 88, and the saturation ends.
  for (float start = -87.0f; start < 88.0f; start += 0.125f) {
    float in[8], out[8];
    for (int j = 0; j < 8; ++j) in[j] = start + j / 64.0f;
    exp8_array(in, out);
    for (int j = 0; j < 8; ++j) {
      const double exact = std::exp(static_cast<double>(in[j]));
      CHECK(std::fabs(out[j] - exact) <= 2.5e-7 * exact);
    }
  }
  const float ends[8] = {-1000.0f, -88.0f, 89.0f, 1000.0f, -INFINITY, INFINITY, 0.0f, -0.0f};
  float got[8];
  exp8_array(ends, got);
  CHECK(got[0] == 0.0f);
  CHECK(got[1] == 0.0f);
  CHECK(std::isinf(got[2]));
  CHECK(std::isinf(got[3]));
  CHECK(got[4] == 0.0f);
  CHECK(std::isinf(got[5]));
  CHECK(got[6] == 1.0f);
  CHECK(got[7] == 1.0f);
}
#endif

TIDAL_TEST(cpu_rope_default_rotates_half_pairs) {
  const int64_t head_dim = 16, half = 8;
  const auto inv_freq = rope_frequencies_from_parameters(head_dim, 10000.0, {});
  for (int64_t i = 0; i < half; ++i)
    CHECK_NEAR(inv_freq[i], std::pow(10000.0, -2.0 * i / head_dim), 1e-7 * std::pow(10000.0, -2.0 * i / head_dim));
  for (int64_t position : {0, 1, 7, 300}) {
    const auto x = random_floats(head_dim, 9 + position);
    std::vector<float> cos_values(half), sin_values(half), y = x;
    cpu::rope_angles(inv_freq.data(), half, position, cos_values.data(), sin_values.data());
    cpu::apply_rope(y.data(), cos_values.data(), sin_values.data(), half);
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(position) * inv_freq[i];
      CHECK_NEAR(y[i], x[i] * std::cos(a) - x[i + half] * std::sin(a), 1e-6);
      CHECK_NEAR(y[i + half], x[i + half] * std::cos(a) + x[i] * std::sin(a), 1e-6);
    }
  }
}
