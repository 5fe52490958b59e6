// Small helpers of the GPU test program: device arrays, a seeded random source, bf16
// conversion on the host, error measures and the pass/fail tally.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tidal::gpu_test {

inline void check_cuda(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(code));
}

// Device memory for `count` elements of T, freed on destruction.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count) : count_(count) {
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&data_), std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc");
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept { *this = std::move(other); }
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  ~DeviceArray() {
    if (data_) cudaFree(data_);
  }

  T* data() const { return data_; }
  size_t size() const { return count_; }
  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::runtime_error("upload size mismatch");
    check_cuda(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    check_cuda(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return host;
  }
  // Every byte set to `byte`: 0xFF makes float NaN, bf16 NaN and int32 -1.
  void poison(uint8_t byte = 0xFF) { check_cuda(cudaMemset(data_, byte, count_ * sizeof(T)), "poison"); }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

// splitmix64: a fixed seed gives the same inputs on every run and machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi).
  double uniform(double lo = -1.0, double hi = 1.0) { return lo + (hi - lo) * double(next() >> 11) * 0x1p-53; }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }

 private:
  uint64_t state_;
};

inline uint16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(bits >> 16);
}
inline float from_bf16(uint16_t value) {
  const uint32_t bits = uint32_t(value) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}
// A random bf16 value in [lo, hi) that is never exactly zero.
inline uint16_t random_bf16(Rng& rng, double lo = -1.0, double hi = 1.0) {
  for (;;) {
    const uint16_t v = to_bf16(float(rng.uniform(lo, hi)));
    if ((v & 0x7fffu) != 0) return v;
  }
}

// ||got - ref|| / ||ref||; infinity when got holds a NaN or infinity.
inline double relative_l2(const std::vector<double>& ref, const std::vector<double>& got) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}
// The same of float vectors (logits); infinity when the sizes differ.
inline double relative_l2f(const std::vector<float>& ref, const std::vector<float>& got) {
  if (ref.size() != got.size()) return INFINITY;
  return relative_l2(std::vector<double>(ref.begin(), ref.end()), std::vector<double>(got.begin(), got.end()));
}

// --quick: only the cases up to a few thousand positions (for compute-sanitizer runs).
inline bool& quick_mode() {
  static bool quick = false;
  return quick;
}

// Pass/fail tally; every check prints a line.
class Report {
 public:
  void check(bool ok, const std::string& name, const std::string& detail = "") {
    (ok ? passed_ : failed_) += 1;
    std::printf("%s %s%s%s\n", ok ? "[pass]" : "[FAIL]", name.c_str(), detail.empty() ? "" : "  ", detail.c_str());
    std::fflush(stdout);
  }
  // Runs a test body; an exception counts as one failure.
  void run(const std::string& name, const std::function<void()>& body) {
    try {
      body();
    } catch (const std::exception& error) {
      check(false, name, std::string("threw: ") + error.what());
    }
  }
  int passed() const { return passed_; }
  int failed() const { return failed_; }

 private:
  int passed_ = 0;
  int failed_ = 0;
};

inline std::string format(const char* fmt, double a) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, fmt, a);
  return buffer;
}

void test_decode_attention(Report& report);
void test_top_k(Report& report);
void test_quest(Report& report);
void test_model(Report& report);
void test_kv_sequences(Report& report);
void test_prefill_attention_split(Report& report);
void test_quant_kernels(Report& report);
void test_kv_fp8(Report& report);
void test_sparse_prefill(Report& report);

}  // namespace tidal::gpu_test
