// The SwiGLU gate of Llama-style MLPs: out = silu(gate) * up, silu(g) = g * sigmoid(g).
#pragma once
#include <cstdint>

namespace tidal::cpu {

// `out` may alias `gate` or `up`.
void swiglu(const float* gate, const float* up, int64_t n, float* out);

}  // namespace tidal::cpu
