// RMSNorm: out = x * rsqrt(mean(x^2) + eps) * weight, in f32 (the mean of squares is
// accumulated in double so its rounding does not depend on n).
#pragma once
#include <cstdint>

namespace tidal::cpu {

// `out` may alias `x`.
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out);

}  // namespace tidal::cpu
