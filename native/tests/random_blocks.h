// Random blocks of a GGUF block-quantised type for tests and timings: random quant bytes,
// finite f16 scale fields of a moderate size (the layouts of model/quant.h), so every
// dequantised value is finite and no larger than a few units.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/sampler.h"
#include "model/half.h"
#include "model/weight_store.h"

namespace tidal_test {

inline std::vector<unsigned char> random_blocks(tidal::DType dtype, int64_t rows, int64_t cols, uint64_t seed) {
  using tidal::DType;
  const size_t bytes = tidal::dtype_bytes(dtype, rows * cols);
  const size_t block_bytes = tidal::dtype_bytes(dtype, tidal::dtype_block_elements(dtype));
  std::vector<unsigned char> out(bytes);
  tidal::SamplingRandom random(seed);
  for (unsigned char& b : out) b = static_cast<unsigned char>(random.next());
  auto put_f16 = [&](size_t at, float value) {
    const uint16_t h = tidal::f32_to_f16(value);
    std::memcpy(out.data() + at, &h, 2);
  };
  for (size_t block = 0; block < bytes / block_bytes; ++block) {
    const size_t at = block * block_bytes;
    const float d = 0.002f + 0.01f * static_cast<float>(random.uniform());
    switch (dtype) {
      case DType::Q6_K:
        put_f16(at + 208, d);
        break;
      case DType::Q4_1:
      case DType::Q5_1:
      case DType::Q4_K:
      case DType::Q5_K:
        put_f16(at, d);
        put_f16(at + 2, 0.5f * d);
        break;
      default:
        put_f16(at, d);
        break;
    }
  }
  return out;
}

}  // namespace tidal_test
