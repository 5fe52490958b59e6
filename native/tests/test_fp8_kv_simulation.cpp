// FP8 E4M3 rounding (cpu/fp8_e4m3.h) and the CPU KV cache option that applies it
// (EngineOptions::kv_fp8_simulation): the code table against the format's definition written
// out independently, round to nearest even at every midpoint, saturation and NaN, the per-row
// scale, rows as the cache stores them, and an engine whose K/V pass through it.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/fp8_e4m3.h"
#include "cpu/paged_kv_cache.h"
#include "engine_test_models.h"
#include "harness.h"
#include "kv_snapshot.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

// The value of a code from its bit fields, in double: (-1)^s * 2^(e - 7) * (1 + m / 8), or
// 2^-6 * m / 8 for e == 0.
double reference_value(int code) {
  const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
  const double magnitude = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -magnitude : magnitude;
}

}  // namespace

TIDAL_TEST(fp8_e4m3_codes_decode_as_the_format_defines_and_round_trip) {
  for (int code = 0; code < 256; ++code) {
    const float value = cpu::fp8_e4m3_to_float(uint8_t(code));
    if ((code & 0x7F) == 0x7F) {
      CHECK(std::isnan(value));
      continue;
    }
    CHECK_EQ(double(value), reference_value(code));
    // Every finite code encodes back to itself (-0 keeps its sign bit).
    CHECK_EQ(int(cpu::float_to_fp8_e4m3(value)), code);
  }
  CHECK_EQ(double(cpu::fp8_e4m3_to_float(0x7E)), 448.0);
  CHECK_EQ(double(cpu::fp8_e4m3_to_float(0x01)), std::ldexp(1.0, -9));
}

TIDAL_TEST(fp8_e4m3_rounds_to_nearest_with_ties_to_even_and_saturates) {
  // At every midpoint between neighbouring codes: the even code; just off it, the nearer one.
  for (int code = 0; code < 0x7E; ++code) {
    const double low = reference_value(code), high = reference_value(code + 1);
    const double mid = (low + high) / 2;
    const int even = code % 2 == 0 ? code : code + 1;
    CHECK_EQ(int(cpu::float_to_fp8_e4m3(float(mid))), even);
    CHECK_EQ(int(cpu::float_to_fp8_e4m3(float(-mid))), 0x80 | even);
    const double step = (high - low) / 64;
    CHECK_EQ(int(cpu::float_to_fp8_e4m3(float(mid - step))), code);
    CHECK_EQ(int(cpu::float_to_fp8_e4m3(float(mid + step))), code + 1);
  }
  CHECK_EQ(int(cpu::float_to_fp8_e4m3(449.0f)), 0x7E);
  CHECK_EQ(int(cpu::float_to_fp8_e4m3(1e30f)), 0x7E);
  CHECK_EQ(int(cpu::float_to_fp8_e4m3(-std::numeric_limits<float>::infinity())), 0xFE);
  CHECK_EQ(int(cpu::float_to_fp8_e4m3(std::nanf(""))), 0x7F);
  CHECK_EQ(int(cpu::float_to_fp8_e4m3(std::ldexp(1.0f, -11))), 0x00);  // below half the least subnormal
}

TIDAL_TEST(fp8_row_rounding_scales_by_the_row_maximum) {
  const std::vector<float> original = random_floats(128, 31, -3.0f, 3.0f);
  std::vector<float> row = original;
  cpu::round_row_fp8_e4m3(row.data(), int64_t(row.size()));
  float max_abs = 0;
  for (float v : original) max_abs = std::fmax(max_abs, std::fabs(v));
  const double scale = cpu::fp8_e4m3_row_scale(max_abs);
  // An f16 at or above max / 448, less than one f16 step (2^-10 relative) above it.
  CHECK(scale >= max_abs / 448.0 && scale <= max_abs / 448.0 * (1 + std::ldexp(1.0, -10)));
  size_t changed = 0;
  for (size_t i = 0; i < row.size(); ++i) {
    // Each value is scale times an e4m3 value, within half a step of the original: 1/16
    // relative in the normal range, half of 2^-9 * scale below it.
    const double q = row[i] / scale;
    const uint8_t code = cpu::float_to_fp8_e4m3(float(q));
    CHECK(std::fabs(q - cpu::fp8_e4m3_to_float(code)) <= 1e-4 * std::fabs(q) + 1e-6);
    const double error = std::fabs(double(row[i]) - original[i]);
    CHECK(error <= std::fmax(std::fabs(original[i]) / 16.0, std::ldexp(scale, -10)) * 1.0001);
    changed += row[i] != original[i];
  }
  CHECK(changed > 64);  // random floats are not e4m3 multiples of the scale
  // The largest magnitude lands on 448, the code below the scale's rounding.
  for (size_t i = 0; i < row.size(); ++i)
    if (std::fabs(original[i]) == max_abs) CHECK_EQ(std::fabs(double(row[i])), 448.0 * scale);

  std::vector<float> zeros(64, 0.0f), with_nan = original;
  cpu::round_row_fp8_e4m3(zeros.data(), 64);
  for (float v : zeros) CHECK_EQ(double(v), 0.0);
  with_nan[5] = std::nanf("");
  cpu::round_row_fp8_e4m3(with_nan.data(), int64_t(with_nan.size()));
  CHECK(std::memcmp(with_nan.data() + 6, original.data() + 6, (original.size() - 6) * sizeof(float)) == 0);
}

TIDAL_TEST(kv_cache_with_fp8_rows_stores_rounded_rows_and_bounds_of_them) {
  const cpu::KvPageLayout layout{2, 2, 32};
  auto exact_pool = std::make_shared<cpu::KvPagePool>(layout, 0, false);
  auto fp8_pool = std::make_shared<cpu::KvPagePool>(layout, 0, true);
  cpu::PagedKvCache exact(exact_pool), rounded(fp8_pool);
  const int64_t positions = 20;
  const std::vector<float> keys = random_floats(size_t(positions * 32), 41, -2.0f, 2.0f);
  const std::vector<float> values = random_floats(size_t(positions * 32), 42, -1.0f, 1.0f);
  exact.reserve(positions);
  rounded.reserve(positions);
  for (int64_t p = 0; p < positions; ++p) {
    exact.write(1, 1, p, &keys[size_t(p * 32)], &values[size_t(p * 32)]);
    rounded.write(1, 1, p, &keys[size_t(p * 32)], &values[size_t(p * 32)]);
  }
  exact.commit(positions);
  rounded.commit(positions);
  for (int64_t p = 0; p < positions; ++p) {
    std::vector<float> key(&keys[size_t(p * 32)], &keys[size_t(p * 32)] + 32);
    std::vector<float> value(&values[size_t(p * 32)], &values[size_t(p * 32)] + 32);
    CHECK(std::memcmp(exact.head_view(1, 1).key(p), key.data(), 32 * sizeof(float)) == 0);
    cpu::round_row_fp8_e4m3(key.data(), 32);
    cpu::round_row_fp8_e4m3(value.data(), 32);
    CHECK(std::memcmp(rounded.head_view(1, 1).key(p), key.data(), 32 * sizeof(float)) == 0);
    CHECK(std::memcmp(rounded.head_view(1, 1).value(p), value.data(), 32 * sizeof(float)) == 0);
    CHECK(std::memcmp(exact.head_view(1, 1).key(p), key.data(), 32 * sizeof(float)) != 0);
  }
  // Quest bounds of page 0 are the min and max of the stored (rounded) keys.
  for (int64_t d = 0; d < 32; ++d) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t p = 0; p < 16; ++p) {
      lo = std::fmin(lo, rounded.head_view(1, 1).key(p)[d]);
      hi = std::fmax(hi, rounded.head_view(1, 1).key(p)[d]);
    }
    CHECK_EQ(double(rounded.key_min(0, 1, 1)[d]), double(lo));
    CHECK_EQ(double(rounded.key_max(0, 1, 1)[d]), double(hi));
  }
}

TIDAL_TEST(kv_cache_with_fp8_rows_rounds_rows_loaded_from_a_saved_exact_cache) {
  const cpu::KvPageLayout layout{2, 2, 16};
  auto exact_pool = std::make_shared<cpu::KvPagePool>(layout, 0, false);
  auto fp8_pool = std::make_shared<cpu::KvPagePool>(layout, 0, true);
  cpu::PagedKvCache exact(exact_pool);
  const int64_t positions = 21;
  const std::vector<float> rows = random_floats(size_t(2 * 2 * positions * 16 * 2), 51, -2.0f, 2.0f);
  exact.reserve(positions);
  size_t at = 0;
  for (int64_t layer = 0; layer < 2; ++layer)
    for (int64_t head = 0; head < 2; ++head)
      for (int64_t p = 0; p < positions; ++p, at += 32) exact.write(layer, head, p, &rows[at], &rows[at + 16]);
  exact.commit(positions);
  MemorySink sink;
  exact.save(sink);
  cpu::PagedKvCache loaded(fp8_pool);
  MemorySource source(sink.bytes());
  loaded.load(positions, source);
  CHECK_EQ(loaded.length(), positions);
  for (int64_t layer = 0; layer < 2; ++layer)
    for (int64_t head = 0; head < 2; ++head)
      for (int64_t p = 0; p < positions; ++p) {
        std::vector<float> key(exact.head_view(layer, head).key(p), exact.head_view(layer, head).key(p) + 16);
        std::vector<float> value(exact.head_view(layer, head).value(p), exact.head_view(layer, head).value(p) + 16);
        cpu::round_row_fp8_e4m3(key.data(), 16);
        cpu::round_row_fp8_e4m3(value.data(), 16);
        CHECK(std::memcmp(loaded.head_view(layer, head).key(p), key.data(), 16 * sizeof(float)) == 0);
        CHECK(std::memcmp(loaded.head_view(layer, head).value(p), value.data(), 16 * sizeof(float)) == 0);
      }
  CHECK_EQ(double(loaded.key_max(1, 1, 0)[3]),
           double(std::fmax(
               loaded.head_view(1, 0).key(16)[3],
               std::fmax(loaded.head_view(1, 0).key(17)[3],
                         std::fmax(loaded.head_view(1, 0).key(18)[3],
                                   std::fmax(loaded.head_view(1, 0).key(19)[3], loaded.head_view(1, 0).key(20)[3]))))));
}

TIDAL_TEST(engine_kv_fp8_simulation_changes_the_logits_a_little_and_only_on_the_cpu) {
  for (const std::string& kind : {std::string("llama"), std::string("qwen2")}) {
    SyntheticModelSpec spec = tiny_model_spec(kind);
    EngineOptions options = test_engine_options();
    auto exact = make_test_engine(spec, options);
    options.kv_fp8_simulation = true;
    auto rounded = make_test_engine(spec, options);
    const auto prompt = random_tokens(40, spec.vocab_size, 5);
    const SequenceId a = exact->create_sequence(), b = rounded->create_sequence();
    std::vector<float> la = exact->prefill(a, prompt), lb = rounded->prefill(b, prompt);
    double worst = max_relative_difference(lb, la);
    bool differs = !bitwise_equal(la, lb);
    for (int step = 0; step < 4; ++step) {
      const int32_t token = prompt[size_t(step)];
      la = exact->decode(a, token);
      lb = rounded->decode(b, token);
      worst = std::fmax(worst, max_relative_difference(lb, la));
      differs = differs || !bitwise_equal(la, lb);
    }
    CHECK(differs);      // the rows were rounded
    CHECK(worst < 0.1);  // and only by what 3 mantissa bits cost
  }
  EngineOptions options = test_engine_options();
  options.kv_fp8_simulation = true;
  options.backend = "webgpu";  // compiled everywhere (auto only where CUDA is); refused before it is built
  SyntheticModel model = make_synthetic_model(tiny_model_spec("llama"));
  CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, options), "CPU backend option");
}

TIDAL_TEST(fp8_row_scale_is_the_next_f16_at_or_above_max_over_448) {
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(0.0f)), 0.0);
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(448.0f)), 1.0);  // an f16 already
  // Just above 1: the next f16 (steps of 2^-10 in [1, 2)).
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(448.0f * (1.0f + 0x1p-20f))), 1.0 + 0x1p-10);
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(448.0f * 1.5f)), 1.5);
  // Below 2^-14 the f16 steps are 2^-24 (subnormals); far below, the least subnormal.
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(448.0f * 0x1p-20f * 1.3f)), std::ldexp(std::ceil(1.3 * 16.0), -24));
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(1e-30f)), 0x1p-24);
  // Above the largest f16 (65504) the scale stays at it.
  CHECK_EQ(double(cpu::fp8_e4m3_row_scale(1e30f)), 65504.0);
  // Random maxima: an f16 (11 significant bits), >= max / 448, less than one f16 step above.
  const std::vector<float> mantissas = random_floats(1000, 77, 1.0f, 2.0f);
  for (int i = 0; i < 1000; ++i) {
    const float max_abs = std::ldexp(mantissas[size_t(i)], i % 22 - 4);  // scales in f16's normal range
    const float s = cpu::fp8_e4m3_row_scale(max_abs);
    int exponent = 0;
    const double mantissa = std::frexp(double(s), &exponent) * 2048.0;
    CHECK_EQ(mantissa, std::floor(mantissa));
    CHECK(double(s) >= double(max_abs / 448.0f));
    CHECK(double(s) < double(max_abs / 448.0f) * (1.0 + 0x1p-10));
  }
}

TIDAL_TEST(engine_fp8_kv_cache_is_refused_by_the_cpu_backend_with_a_pointer_to_the_simulation) {
  EngineOptions options = test_engine_options();
  options.kv_fp8 = true;
  SyntheticModel model = make_synthetic_model(tiny_model_spec("llama"));
  CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, options), "kv_fp8_simulation");
}
