#include "cpu/simd_support.h"

#include <atomic>

namespace tidal::cpu {

namespace {

bool detect_simd() {
#if TIDAL_X86_SIMD
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

std::atomic<bool>& simd_flag() {
  static std::atomic<bool> flag{simd_available()};
  return flag;
}

}  // namespace

bool simd_available() {
  static const bool available = detect_simd();
  return available;
}

bool simd_enabled() { return simd_flag().load(std::memory_order_relaxed); }

bool set_simd_enabled(bool enabled) {
  return simd_flag().exchange(enabled && simd_available(), std::memory_order_relaxed);
}

}  // namespace tidal::cpu
