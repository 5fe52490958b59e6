#include "cpu/linear.h"

#include <algorithm>
#include <vector>

#include "cpu/block_dot.h"
#include "cpu/dot_kernels.h"
#include "cpu/simd_support.h"

namespace tidal::cpu {

namespace {

using kernels::element_bytes;

// One weight row against NT activation rows, on the chosen instruction path.
template <DType D, int NT, bool Simd>
inline void dot_rows(const unsigned char* w, const float* const* x, int64_t n, float* out) {
#if TIDAL_X86_SIMD
  if constexpr (Simd) {
    kernels::dot_rows_avx2<D, NT>(w, x, n, out);
    return;
  }
#endif
  kernels::dot_rows_portable<D, NT>(w, x, n, out);
}

// Rows are taken in blocks small enough to stay in L2 while every tile of up to four
// tokens streams past them, so a prefill reads each weight block once per block, not once
// per token.
constexpr int64_t kTile = 4;

int64_t rows_per_block(int64_t row_bytes) {
  return std::clamp<int64_t>((256 * 1024) / std::max<int64_t>(row_bytes, 1), 4, 256);
}

// Rows [block, block_end) of W, row r at rows + (r - block) * row_bytes (stored as D), against
// every tile of tokens: y[t][r] = W[r] . x[t] (+ bias[r]).
template <DType D, bool Simd>
void block_products(const unsigned char* rows, int64_t row_bytes, int64_t cols, int64_t block, int64_t block_end,
                    const float* bias, const float* x, int64_t x_stride, int64_t tokens, float* y, int64_t y_stride) {
  for (int64_t t0 = 0; t0 < tokens; t0 += kTile) {
    const int64_t nt = std::min(kTile, tokens - t0);
    const float* xs[kTile];
    for (int64_t i = 0; i < nt; ++i) xs[i] = x + (t0 + i) * x_stride;
    for (int64_t r = block; r < block_end; ++r) {
      const unsigned char* row = rows + (r - block) * row_bytes;
      float out[kTile];
      switch (nt) {
        case 4:
          dot_rows<D, 4, Simd>(row, xs, cols, out);
          break;
        case 3:
          dot_rows<D, 3, Simd>(row, xs, cols, out);
          break;
        case 2:
          dot_rows<D, 2, Simd>(row, xs, cols, out);
          break;
        default:
          dot_rows<D, 1, Simd>(row, xs, cols, out);
          break;
      }
      for (int64_t i = 0; i < nt; ++i) y[(t0 + i) * y_stride + r] = bias ? out[i] + bias[r] : out[i];
    }
  }
}

template <DType D, bool Simd>
void linear_rows_typed(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens,
                       float* y, int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const int64_t row_bytes = w.cols * element_bytes<D>();
  const int64_t block_rows = rows_per_block(row_bytes);
  const auto* base = static_cast<const unsigned char*>(w.data);
  for (int64_t block = row_begin; block < row_end; block += block_rows)
    block_products<D, Simd>(base + block * row_bytes, row_bytes, w.cols, block, std::min(row_end, block + block_rows),
                            bias, x, x_stride, tokens, y, y_stride);
}

// Block-quantised weights: each block of rows is dequantised once into f32 scratch (as many
// rows as an f32 matrix of this width takes per block), then every tile of tokens runs the f32
// dot over it. A matrix kept quantised therefore gives bit for bit what the same matrix
// dequantised to f32 in advance gives, at a quarter to an eighth of the memory and reads.
template <bool Simd>
void linear_rows_quantized(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens,
                           float* y, int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const int64_t f32_row_bytes = w.cols * 4;
  const int64_t block_rows = rows_per_block(f32_row_bytes);
  const size_t stored_row_bytes = dtype_bytes(w.dtype, w.cols);
  thread_local std::vector<float> scratch;
  if (static_cast<int64_t>(scratch.size()) < block_rows * w.cols)
    scratch.resize(static_cast<size_t>(block_rows * w.cols));
  const auto* base = static_cast<const unsigned char*>(w.data);
  for (int64_t block = row_begin; block < row_end; block += block_rows) {
    const int64_t block_end = std::min(row_end, block + block_rows);
    for (int64_t r = block; r < block_end; ++r)
      convert_to_f32(w.dtype, base + static_cast<size_t>(r) * stored_row_bytes, scratch.data() + (r - block) * w.cols,
                     static_cast<size_t>(w.cols));
    block_products<DType::F32, Simd>(reinterpret_cast<const unsigned char*>(scratch.data()), f32_row_bytes, w.cols,
                                     block, block_end, bias, x, x_stride, tokens, y, y_stride);
  }
}

#if TIDAL_X86_SIMD || TIDAL_WASM_SIMD
// R rows of F blocks against NT activation rows, dequantised in registers (cpu/block_dot.h):
// AVX2 + FMA on x86-64 (the build's F types are those kernels'), SIMD128 on WebAssembly.
template <class F, int R, int NT>
inline void block_dot_rows(const unsigned char* rows, int64_t row_bytes, const float* const* x, int64_t cols,
                           float* out) {
#if TIDAL_X86_SIMD
  kernels::block_dot_rows_avx2<F, R, NT>(rows, row_bytes, x, cols, out);
#else
  kernels::block_dot_rows_wasm<F, R, NT>(rows, row_bytes, x, cols, out);
#endif
}

// Up to kTile tokens against block-quantised rows dequantised in registers (cpu/block_dot.h):
// each row is read once, in its blocks; one token takes F::kRows rows at a time.
template <class F>
void tile_blocks(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens, float* y,
                 int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const int64_t row_bytes = static_cast<int64_t>(dtype_bytes(w.dtype, w.cols));
  const auto* base = static_cast<const unsigned char*>(w.data);
  const float* xs[kTile];
  for (int64_t t = 0; t < tokens; ++t) xs[t] = x + t * x_stride;
  auto store = [&](int64_t r, const float* out) {
    for (int64_t t = 0; t < tokens; ++t) y[t * y_stride + r] = bias ? out[t] + bias[r] : out[t];
  };
  int64_t r = row_begin;
  if (tokens == 1) {
    constexpr int kRows = F::kRows;
    for (; r + kRows <= row_end; r += kRows) {
      float out[kRows];
      block_dot_rows<F, kRows, 1>(base + r * row_bytes, row_bytes, xs, w.cols, out);
      for (int i = 0; i < kRows; ++i) store(r + i, out + i);
    }
  }
  for (; r < row_end; ++r) {
    float out[kTile];
    const unsigned char* row = base + r * row_bytes;
    switch (tokens) {
      case 4:
        block_dot_rows<F, 1, 4>(row, row_bytes, xs, w.cols, out);
        break;
      case 3:
        block_dot_rows<F, 1, 3>(row, row_bytes, xs, w.cols, out);
        break;
      case 2:
        block_dot_rows<F, 1, 2>(row, row_bytes, xs, w.cols, out);
        break;
      default:
        block_dot_rows<F, 1, 1>(row, row_bytes, xs, w.cols, out);
        break;
    }
    store(r, out);
  }
}

// Every tile of kTile tokens against the rows, each tile dequantising the blocks again. Same
// results as linear_rows_quantized.
template <class F>
void linear_rows_blocks(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens,
                        float* y, int64_t y_stride, int64_t row_begin, int64_t row_end) {
  for (int64_t t0 = 0; t0 < tokens; t0 += kTile)
    tile_blocks<F>(w, bias, x + t0 * x_stride, x_stride, std::min(kTile, tokens - t0), y + t0 * y_stride, y_stride,
                   row_begin, row_end);
}

// Up to this many tokens, dequantising the blocks again for each tile of tokens in registers
// beats dequantising them once into scratch and reading that back per tile (measured at
// 1-64 tokens, bench/NOTES.md Version 13: clearly faster at 5, as fast or faster at 8, mixed
// at 16 and 32, slower at 64). On WebAssembly (SIMD128, Node 20 on x86-64): one tile, faster
// for every format at 1 to 4 tokens, mixed at 5 to 8 (Q4_K and Q5_K slower at 6 and 8).
#if TIDAL_WASM_SIMD
constexpr int64_t kMaxTokensInRegisters = kTile;
#else
constexpr int64_t kMaxTokensInRegisters = 2 * kTile;
#endif

// The in-register product for w's format when there is one and few tokens (a decode step, a
// short batch); false when the caller should take linear_rows_quantized (many tokens share
// each dequantised block there, or the format has no in-register kernel).
bool linear_rows_in_registers(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens,
                              float* y, int64_t y_stride, int64_t row_begin, int64_t row_end) {
  if (tokens > kMaxTokensInRegisters) return false;
  switch (w.dtype) {
    case DType::Q8_0:
      linear_rows_blocks<kernels::Q8_0Blocks>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
      return true;
    case DType::Q4_0:
      linear_rows_blocks<kernels::Q4_0Blocks>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
      return true;
    case DType::Q4_K:
      linear_rows_blocks<kernels::Q4_KBlocks>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
      return true;
    case DType::Q5_K:
      linear_rows_blocks<kernels::Q5_KBlocks>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
      return true;
    case DType::Q6_K:
      linear_rows_blocks<kernels::Q6_KBlocks>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
      return true;
    default:
      return false;
  }
}
#endif

template <bool Simd>
void linear_rows_path(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens,
                      float* y, int64_t y_stride, int64_t row_begin, int64_t row_end) {
  switch (w.dtype) {
    case DType::F32:
      return linear_rows_typed<DType::F32, Simd>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
    case DType::BF16:
      return linear_rows_typed<DType::BF16, Simd>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
    case DType::F16:
      return linear_rows_typed<DType::F16, Simd>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
    default:
#if TIDAL_X86_SIMD
      if (Simd && linear_rows_in_registers(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end)) return;
#elif TIDAL_WASM_SIMD
      // WebAssembly's portable kernels are its SIMD128 ones (chosen at compile time).
      if (linear_rows_in_registers(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end)) return;
#endif
      return linear_rows_quantized<Simd>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
  }
}

}  // namespace

void load_matrix_row(const MatrixView& m, int64_t row, float* out) {
  const auto* base = static_cast<const unsigned char*>(m.data);
  switch (m.dtype) {
    case DType::F32:
      for (int64_t c = 0; c < m.cols; ++c) out[c] = kernels::load_element<DType::F32>(base + row * m.cols * 4, c);
      break;
    case DType::BF16:
      for (int64_t c = 0; c < m.cols; ++c) out[c] = kernels::load_element<DType::BF16>(base + row * m.cols * 2, c);
      break;
    case DType::F16:
      for (int64_t c = 0; c < m.cols; ++c) out[c] = kernels::load_element<DType::F16>(base + row * m.cols * 2, c);
      break;
    default:
      convert_to_f32(m.dtype, base + static_cast<size_t>(row) * dtype_bytes(m.dtype, m.cols), out,
                     static_cast<size_t>(m.cols));
      break;
  }
}

void linear_rows(const MatrixView& w, const float* bias, const float* x, int64_t x_stride, int64_t tokens, float* y,
                 int64_t y_stride, int64_t row_begin, int64_t row_end) {
  if (tokens <= 0 || row_begin >= row_end) return;
  if (simd_enabled())
    linear_rows_path<true>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
  else
    linear_rows_path<false>(w, bias, x, x_stride, tokens, y, y_stride, row_begin, row_end);
}

float dot(const float* a, const float* b, int64_t n) {
  float out;
  const auto* w = reinterpret_cast<const unsigned char*>(a);
#if TIDAL_X86_SIMD
  if (simd_enabled()) {
    kernels::dot_rows_avx2<DType::F32, 1>(w, &b, n, &out);
    return out;
  }
#endif
  kernels::dot_rows_portable<DType::F32, 1>(w, &b, n, &out);
  return out;
}

}  // namespace tidal::cpu
