// Linear layers on the CPU: y = W x (+ b) with W in its stored dtype (f32, bf16, f16, or a
// GGUF block-quantised type: see linear_rows) and f32 activations. Weights are converted to f32 inside the dot product,
// so a bf16 model keeps its 2 bytes per parameter in memory (a 1.5B model stays ~3 GB) at the price of a widening per
// element read, which is free next to the memory traffic of a decode step.
#pragma once
#include <cstdint>

#include "model/weight_store.h"

namespace tidal::cpu {

// A row-major matrix [rows][cols] in its stored dtype; Hugging Face Linear weights are
// [out_features][in_features]. `data` may be unaligned. A block-quantised row is
// dtype_bytes(dtype, cols) bytes (cols a multiple of the block).
struct MatrixView {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Row `row` of `m` as f32 (an embedding lookup).
void load_matrix_row(const MatrixView& m, int64_t row, float* out);

// For every token t < tokens and every row r in [row_begin, row_end):
//   y[t * y_stride + r] = sum_c W[r][c] * x[t * x_stride + c]  (+ bias[r] when bias is set)
// Single-threaded over the given rows; callers split rows across threads. Each output is
// computed by the same sequence of operations whatever `tokens` and the row range are.
void linear_rows(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens, float* y,
                 int64_t y_stride, int64_t row_begin, int64_t row_end);

// sum_i a[i] * b[i] with the summation order of the linear kernels.
float dot(const float* a, const float* b, int64_t n);

}  // namespace tidal::cpu
