// One-token products (a decode step's matrix-vector products) at Llama-3.1-8B's MLP shapes,
// gate 14336 x 4096 and down 4096 x 14336, through cpu::linear_rows split over a thread pool
// in units of 16 rows as the CPU backend splits them: bf16 against the GGUF block types kept in
// their blocks, on one and two threads. Prints a table for bench/NOTES.md:
//
//   TIDAL_CPU_LINEAR_TIMING=15 tidal_tests cpu_linear_one_token_timing
//
// (15 timed products per cell after two warm-ups; the cell is their median).
// TIDAL_CPU_LINEAR_WEIGHTS=q4_k,bf16 picks the formats (default bf16,q8_0,q4_k,q6_k) and
// TIDAL_CPU_LINEAR_THREADS=1 the thread counts (default 1,2), e.g. to count instructions of one
// cell under callgrind; TIDAL_CPU_LINEAR_TOKENS=4 times products of that many tokens (default 1). Without
// TIDAL_CPU_LINEAR_TIMING the same code runs once on a small shape, so that it stays built and working.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/linear.h"
#include "cpu/thread_pool.h"
#include "engine_test_models.h"
#include "harness.h"
#include "model/half.h"
#include "random_blocks.h"

using namespace tidal;
using namespace tidal_test;

namespace {

struct Shape {
  const char* name;
  int64_t rows, cols;
};

struct Format {
  const char* name;
  DType dtype;
};

// A rows x cols matrix of random values in `dtype` (bf16 from random floats, block types from
// random blocks).
std::vector<unsigned char> random_matrix(DType dtype, int64_t rows, int64_t cols, uint64_t seed) {
  if (is_quantized(dtype)) return random_blocks(dtype, rows, cols, seed);
  const auto values = random_floats(static_cast<size_t>(rows * cols), seed);
  std::vector<unsigned char> bytes(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = f32_to_bf16(values[i]);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

// Y = X W^T for `tokens` rows of X over the pool, in units of 16 rows at one token and 64 at
// more (as CpuBackend::run_linears splits them).
void product(cpu::ThreadPool& pool, const cpu::MatrixView& w, const float* x, int64_t tokens, float* y) {
  const int64_t unit_rows = tokens == 1 ? 16 : 64;
  pool.parallel_for((w.rows + unit_rows - 1) / unit_rows, [&](int64_t begin, int64_t end, int) {
    cpu::linear_rows(w, nullptr, x, w.cols, tokens, y, w.rows, begin * unit_rows, std::min(w.rows, end * unit_rows));
  });
}

// Comma-separated items of environment variable `name`, or `fallback`'s.
std::vector<std::string> list_from_env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  std::string text = value && *value ? value : fallback;
  std::vector<std::string> items;
  for (size_t start = 0; start <= text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

}  // namespace

TIDAL_TEST(cpu_linear_one_token_timing) {
  const char* requested = std::getenv("TIDAL_CPU_LINEAR_TIMING");
  const int repetitions = requested ? std::max(1, std::atoi(requested)) : 0;
  const bool timing = repetitions > 0;
  const std::vector<Shape> shapes =
      timing ? std::vector<Shape>{{"gate 14336x4096", 14336, 4096}, {"down 4096x14336", 4096, 14336}}
             : std::vector<Shape>{{"small 48x512", 48, 512}};
  const Format known[] = {{"bf16", DType::BF16}, {"q8_0", DType::Q8_0}, {"q4_k", DType::Q4_K}, {"q6_k", DType::Q6_K}};
  std::vector<Format> formats;
  for (const std::string& name : list_from_env("TIDAL_CPU_LINEAR_WEIGHTS", "bf16,q8_0,q4_k,q6_k"))
    for (const Format& f : known)
      if (name == f.name) formats.push_back(f);
  std::vector<int> thread_counts;
  for (const std::string& count : list_from_env("TIDAL_CPU_LINEAR_THREADS", "1,2"))
    thread_counts.push_back(std::max(1, std::atoi(count.c_str())));
  CHECK(!formats.empty());
  const char* tokens_text = std::getenv("TIDAL_CPU_LINEAR_TOKENS");
  const int64_t tokens = tokens_text ? std::max(1, std::atoi(tokens_text)) : 1;

  if (timing) {
    std::printf("\n%lld token%s per product\n| shape | weights | MB |", static_cast<long long>(tokens),
                tokens == 1 ? "" : "s");
    for (int threads : thread_counts) std::printf(" %d thread%s ms |", threads, threads == 1 ? "" : "s");
    std::printf(" GB/s (%d threads) |\n|---|---|---:|", thread_counts.back());
    for (size_t i = 0; i <= thread_counts.size(); ++i) std::printf("---:|");
    std::printf("\n");
  }
  for (const Shape& shape : shapes) {
    const auto x = random_floats(static_cast<size_t>(tokens * shape.cols), 7);
    std::vector<float> y(static_cast<size_t>(tokens * shape.rows));
    for (const Format& format : formats) {
      const auto bytes = random_matrix(format.dtype, shape.rows, shape.cols, 11);
      const cpu::MatrixView w{format.dtype, bytes.data(), shape.rows, shape.cols};
      std::vector<double> medians;
      for (int threads : thread_counts) {
        cpu::ThreadPool pool(threads);
        std::vector<double> ms;
        for (int i = 0; i < (timing ? repetitions + 2 : 1); ++i) {
          std::fill(y.begin(), y.end(), std::nanf(""));
          const auto start = std::chrono::steady_clock::now();
          product(pool, w, x.data(), tokens, y.data());
          const auto stop = std::chrono::steady_clock::now();
          if (!timing || i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
        }
        bool finite = true;
        for (float v : y) finite = finite && std::isfinite(v);
        CHECK(finite);
        std::sort(ms.begin(), ms.end());
        medians.push_back(ms[ms.size() / 2]);
      }
      if (!timing) continue;
      const double mb = static_cast<double>(bytes.size()) / 1e6;
      std::printf("| %s | %s | %.1f |", shape.name, format.name, mb);
      for (double m : medians) std::printf(" %.2f |", m);
      std::printf(" %.1f |\n", mb / medians.back());
      std::fflush(stdout);
    }
  }
}
