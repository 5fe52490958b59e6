// Softmax over a row, in place: p_i = exp(x_i - max) / sum_j exp(x_j - max). Subtracting the
// maximum keeps every exponent <= 0, so nothing overflows; the sum runs in index order.
#pragma once
#include <cstdint>

namespace tidal::cpu {

void softmax_in_place(float* x, int64_t n);

}  // namespace tidal::cpu
