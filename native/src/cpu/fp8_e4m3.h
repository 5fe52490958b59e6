// FP8 E4M3, the 8-bit float of NVIDIA's __nv_fp8_e4m3 (OCP "E4M3FN"): a sign bit, 4 exponent
// bits (bias 7) and 3 mantissa bits; subnormals below 2^-6 (steps of 2^-9); no infinities; the
// largest magnitude 448 (0x7E); 0x7F and 0xFF are NaN.
//
// round_row_fp8_e4m3 is what an FP8 KV cache with one f16 scale per (position, KV head) row
// keeps of a row: scale = max|x| / 448 rounded up to an f16, each x stored as e4m3(x / scale)
// (the CUDA backend's FP8 cache, kernels/kv_fp8.cuh, stores exactly these). The CPU backend applies
// it to every K/V row it writes when asked (EngineOptions::kv_fp8_simulation), so that `tidal
// eval` measures the accuracy such a cache costs; the cache itself still holds floats.
#pragma once
#include <cstdint>

namespace tidal::cpu {

float fp8_e4m3_to_float(uint8_t code);

// Round to nearest, ties to the even code; magnitudes above 448 saturate to 448 (as the GPU's
// cvt.rn.satfinite does); NaN becomes 0x7F (its sign kept).
uint8_t float_to_fp8_e4m3(float value);

// max|x| / 448 (float division) rounded up to the next f16 value, at most 65504; 0 for 0.
float fp8_e4m3_row_scale(float max_abs);

// Rounds the n floats of `row` in place as above. A row of zeros, or one holding a non-finite
// value, is left as it is.
void round_row_fp8_e4m3(float* row, int64_t n);

}  // namespace tidal::cpu
