// Runs a test body on the portable kernels and, where the CPU has them, on the AVX2 ones.
#pragma once
#include "cpu/simd_support.h"

namespace tidal_test {

template <class Body>
void on_each_simd_path(Body body) {
  const bool previous = tidal::cpu::set_simd_enabled(false);
  body("portable");
  if (tidal::cpu::simd_available()) {
    tidal::cpu::set_simd_enabled(true);
    body("avx2");
  }
  tidal::cpu::set_simd_enabled(previous);
}

}  // namespace tidal_test
