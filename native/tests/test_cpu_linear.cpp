// Linear layers (matvec / matmul) with f32, bf16 and f16 weights against a float64
// reference, on both instruction paths, and the bitwise equalities the engine relies on.
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/linear.h"
#include "cpu/simd_support.h"
#include "engine/sampler.h"
#include "engine_test_models.h"
#include "harness.h"
#include "model/half.h"
#include "random_blocks.h"
#include "simd_paths.h"

using namespace tidal;
using namespace tidal_test;

namespace {

// A matrix stored in `dtype`, plus the exact f32 values it holds.
struct StoredMatrix {
  std::vector<unsigned char> bytes;
  std::vector<float> values;
  cpu::MatrixView view;
};

StoredMatrix make_matrix(DType dtype, int64_t rows, int64_t cols, uint64_t seed) {
  StoredMatrix m;
  const auto raw = random_floats(static_cast<size_t>(rows * cols), seed, -2.0f, 2.0f);
  m.values.resize(raw.size());
  m.bytes.resize(raw.size() * (dtype == DType::F32 ? 4 : 2) + 1);  // +1: view it unaligned
  unsigned char* data = m.bytes.data() + 1;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (dtype == DType::F32) {
      m.values[i] = raw[i];
      std::memcpy(data + 4 * i, &raw[i], 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(raw[i]) : f32_to_f16(raw[i]);
      m.values[i] = dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      std::memcpy(data + 2 * i, &h, 2);
    }
  }
  m.view = cpu::MatrixView{dtype, data, rows, cols};
  return m;
}

}  // namespace

TIDAL_TEST(cpu_linear_matches_float64_reference_for_every_dtype) {
  const DType dtypes[] = {DType::F32, DType::BF16, DType::F16};
  for (DType dtype : dtypes) {
    // Odd sizes: full 16-lane chunks, an 8-lane remainder and a scalar tail.
    for (int64_t cols : {1, 7, 16, 83, 200}) {
      const int64_t rows = 13, tokens = 6;
      StoredMatrix w = make_matrix(dtype, rows, cols, 100 + cols);
      const auto x = random_floats(static_cast<size_t>(tokens * cols), 200 + cols);
      const auto bias = random_floats(static_cast<size_t>(rows), 300 + cols);
      on_each_simd_path([&](const char* path) {
        std::vector<float> y(static_cast<size_t>(tokens * rows));
        cpu::linear_rows(w.view, bias.data(), x.data(), cols, tokens, y.data(), rows, 0, rows);
        for (int64_t t = 0; t < tokens; ++t)
          for (int64_t r = 0; r < rows; ++r) {
            double exact = bias[r], magnitude = std::fabs(bias[r]);
            for (int64_t c = 0; c < cols; ++c) {
              exact += static_cast<double>(w.values[r * cols + c]) * x[t * cols + c];
              magnitude += std::fabs(static_cast<double>(w.values[r * cols + c]) * x[t * cols + c]);
            }
            const double error = std::fabs(y[t * rows + r] - exact);
            if (!(error <= 1e-6 * magnitude + 1e-30))
              record_failure(__FILE__, __LINE__,
                             std::string(path) + " dtype " + dtype_name(dtype) + " cols " + std::to_string(cols) +
                                 ": error " + std::to_string(error) + " vs magnitude " + std::to_string(magnitude));
          }
      });
    }
  }
}

TIDAL_TEST(cpu_linear_output_does_not_depend_on_batch_or_row_split) {
  const DType dtypes[] = {DType::F32, DType::BF16, DType::F16};
  for (DType dtype : dtypes) {
    const int64_t rows = 70, cols = 133, tokens = 7;
    StoredMatrix w = make_matrix(dtype, rows, cols, 5);
    const auto x = random_floats(static_cast<size_t>(tokens * cols), 6);
    on_each_simd_path([&](const char*) {
      std::vector<float> batched(static_cast<size_t>(tokens * rows));
      cpu::linear_rows(w.view, nullptr, x.data(), cols, tokens, batched.data(), rows, 0, rows);
      for (int64_t t = 0; t < tokens; ++t) {
        std::vector<float> single(static_cast<size_t>(rows));
        // One token at a time, rows in three uneven ranges.
        cpu::linear_rows(w.view, nullptr, x.data() + t * cols, cols, 1, single.data(), rows, 0, 5);
        cpu::linear_rows(w.view, nullptr, x.data() + t * cols, cols, 1, single.data(), rows, 5, 41);
        cpu::linear_rows(w.view, nullptr, x.data() + t * cols, cols, 1, single.data(), rows, 41, rows);
        for (int64_t r = 0; r < rows; ++r) CHECK(single[r] == batched[t * rows + r]);
      }
    });
  }
}

TIDAL_TEST(cpu_dot_and_row_load_match_reference) {
  on_each_simd_path([&](const char*) {
    for (int64_t n : {1, 9, 16, 31, 128}) {
      const auto a = random_floats(static_cast<size_t>(n), 40 + n);
      const auto b = random_floats(static_cast<size_t>(n), 50 + n);
      double exact = 0.0, magnitude = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        exact += static_cast<double>(a[i]) * b[i];
        magnitude += std::fabs(static_cast<double>(a[i]) * b[i]);
      }
      CHECK_NEAR(cpu::dot(a.data(), b.data(), n), exact, 1e-6 * magnitude);
    }
  });
  StoredMatrix m = make_matrix(DType::BF16, 4, 9, 77);
  std::vector<float> row(9);
  cpu::load_matrix_row(m.view, 2, row.data());
  for (int c = 0; c < 9; ++c) CHECK(row[c] == m.values[2 * 9 + c]);
}

TIDAL_TEST(cpu_linear_quantised_weights_equal_the_same_weights_dequantised) {
  // A block-quantised matrix gives bit for bit the products of its dequantised f32 copy, for
  // every type, token count (up to 8: the in-register kernels in tiles of up to four tokens, one
  // token several rows at a time; more: the dequantised scratch), row split and width, on both
  // instruction paths; row loads likewise.
  for (DType dtype :
       {DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    for (int64_t cols : {512, 768}) {
      const int64_t rows = 37;
      std::vector<unsigned char> blocks = random_blocks(dtype, rows, cols, 3 + static_cast<uint64_t>(dtype) + cols);
      blocks.insert(blocks.begin(), 0);  // view it unaligned
      const cpu::MatrixView quantised{dtype, blocks.data() + 1, rows, cols};
      std::vector<float> dequantised(static_cast<size_t>(rows * cols));
      convert_to_f32(dtype, blocks.data() + 1, dequantised.data(), dequantised.size());
      bool finite = true;
      for (float v : dequantised) finite = finite && std::isfinite(v);
      CHECK(finite);
      const cpu::MatrixView plain{DType::F32, dequantised.data(), rows, cols};
      on_each_simd_path([&](const char* path) {
        for (int64_t tokens : {1, 2, 3, 4, 5, 8, 9}) {
          const auto x = random_floats(static_cast<size_t>(tokens * cols), 40 + tokens);
          const auto bias = random_floats(static_cast<size_t>(rows), 41);
          std::vector<float> a(static_cast<size_t>(tokens * rows), std::nanf("")), b = a;
          cpu::linear_rows(plain, bias.data(), x.data(), cols, tokens, a.data(), rows, 0, rows);
          // The quantised product in three row ranges (odd starts and lengths).
          cpu::linear_rows(quantised, bias.data(), x.data(), cols, tokens, b.data(), rows, 0, 11);
          cpu::linear_rows(quantised, bias.data(), x.data(), cols, tokens, b.data(), rows, 11, 14);
          cpu::linear_rows(quantised, bias.data(), x.data(), cols, tokens, b.data(), rows, 14, rows);
          bool written = true;
          for (float v : b) written = written && std::isfinite(v);
          if (!written || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0)
            record_failure(__FILE__, __LINE__,
                           std::string(path) + " " + dtype_name(dtype) + " cols " + std::to_string(cols) + " tokens " +
                               std::to_string(tokens) + ": the quantised product differs from the dequantised one");
        }
      });
      std::vector<float> row(static_cast<size_t>(cols));
      cpu::load_matrix_row(quantised, 23, row.data());
      CHECK(std::memcmp(row.data(), dequantised.data() + 23 * cols, row.size() * sizeof(float)) == 0);
    }
    CHECK(is_quantized(dtype));
  }
}
