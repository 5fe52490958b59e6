// ggml tensor types as stored in GGUF files, and their conversion to float32.
//
// A ggml type packs `block_elements` consecutive values of a row into `block_bytes` bytes.
// The plain types (F32, F16, BF16, ...) are blocks of one element. The block-quantised
// types this engine reads:
//
//   Q4_0, Q4_1, Q5_0, Q5_1  32 values with an f16 scale (and f16 offset for _1); 4-bit
//         quants, plus a 32-bit word of fifth bits for Q5
//   Q8_0  32 values in 34 bytes:  f16 d | int8 q[32]                       x = d * q
//   Q4_K  256 values in 144 bytes: f16 d | f16 dmin | 12 bytes of 6-bit scales and mins for
//         8 sub-blocks of 32 | 128 bytes of 4-bit q               x = d * sc * q - dmin * m
//   Q5_K  256 values in 176 bytes: Q4_K's fields plus 32 bytes of fifth bits
//   Q6_K  256 values in 210 bytes: 128 bytes low 4 bits | 64 bytes high 2 bits | int8
//         scales[16] (one per 16 values) | f16 d                  x = d * sc * (q - 32)
//
// The exact bit placement is described next to each decoder in quant.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tidal {

// Type ids as written in a GGUF tensor info. Ids not listed are either unknown or types
// whose layout this engine does not read; ggml_type_info() tells the two apart.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;        // "Q4_K"
  int64_t block_elements;  // values per block
  size_t block_bytes;      // bytes per block
  bool dequantizable;      // dequantize_to_f32 supports it
};

// The layout of type `id`, or null when the id is not one of the types listed above
// (including the IQ* families, whose layouts are not read here).
const GgmlTypeInfo* ggml_type_info(uint32_t id);

// "Q4_K", or "type 42" for ids without an entry; known-but-unlisted ids get their ggml name
// ("IQ2_XXS") so messages can say what the file holds.
std::string ggml_type_name(uint32_t id);

// The types dequantize_to_f32 reads, for messages ("F32, F16, BF16, Q4_0, ...").
const char* ggml_dequantizable_types();

// Index of the first block (of `blocks` consecutive blocks of `type` at `src`) whose f16
// scale or offset fields are Inf or NaN, or `blocks`. Every value of a block whose fields are
// finite is finite. `type` must be dequantizable.
size_t first_non_finite_block(GgmlType type, const void* src, size_t blocks);

// Quantises `count` float32 values (a multiple of the block) to Q8_0, Q4_K or Q6_K blocks at
// `out` (dtype-sized: count / block_elements * block_bytes bytes), rounding every value to the
// nearest step of its block's scales, which are chosen so that no value is clipped: each value
// comes back within half a step. For synthetic models and tests; not tuned like llama.cpp's
// quantisers (no search for the scales that minimise the error). Throws tidal::ModelError for
// other types, a partial block or a non-finite value.
void quantize_from_f32(GgmlType type, const float* values, size_t count, void* out);

// Converts `count` values of `type` starting at `src` (any alignment) to float32.
// `count` must be a multiple of the type's block_elements. Throws tidal::ModelError for a
// type that cannot be dequantised (naming it) or a count that is not whole blocks.
void dequantize_to_f32(GgmlType type, const void* src, size_t count, float* out);

}  // namespace tidal
