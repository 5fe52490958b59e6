#include "model/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/half.h"
#include "tidal/error.h"

namespace tidal {

namespace {

constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, true},       {GgmlType::F16, "F16", 1, 2, true},
    {GgmlType::Q4_0, "Q4_0", 32, 18, true},   {GgmlType::Q4_1, "Q4_1", 32, 20, true},
    {GgmlType::Q5_0, "Q5_0", 32, 22, true},   {GgmlType::Q5_1, "Q5_1", 32, 24, true},
    {GgmlType::Q8_0, "Q8_0", 32, 34, true},   {GgmlType::Q8_1, "Q8_1", 32, 36, false},
    {GgmlType::Q2_K, "Q2_K", 256, 84, false}, {GgmlType::Q3_K, "Q3_K", 256, 110, false},
    {GgmlType::Q4_K, "Q4_K", 256, 144, true}, {GgmlType::Q5_K, "Q5_K", 256, 176, true},
    {GgmlType::Q6_K, "Q6_K", 256, 210, true}, {GgmlType::Q8_K, "Q8_K", 256, 292, false},
    {GgmlType::I8, "I8", 1, 1, false},        {GgmlType::I16, "I16", 1, 2, false},
    {GgmlType::I32, "I32", 1, 4, false},      {GgmlType::I64, "I64", 1, 8, false},
    {GgmlType::F64, "F64", 1, 8, false},      {GgmlType::BF16, "BF16", 1, 2, true},
};

// ggml ids whose layouts are not read here, named so a message can say what the file holds.
struct NamedId {
  uint32_t id;
  const char* name;
};
constexpr NamedId kUnreadTypes[] = {
    {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"},
    {22, "IQ2_S"},   {23, "IQ4_XS"}, {29, "IQ1_M"},   {34, "TQ1_0"}, {35, "TQ2_0"},  {39, "MXFP4"},
};

uint16_t read_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t read_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// The 32-value legacy blocks share one packing of 4-bit quants: byte i (0..15) holds value
// i in its low nibble and value i + 16 in its high nibble. Q5 blocks add a 32-bit word
// whose bit v is the fifth (top) bit of value v.
//   Q4_0: [f16 d][16 bytes]              x = d * (q - 8)
//   Q4_1: [f16 d][f16 m][16 bytes]       x = d * q + m
//   Q5_0: [f16 d][u32 high][16 bytes]    x = d * (q - 16)
//   Q5_1: [f16 d][f16 m][u32 high][16]   x = d * q + m
void dequantize_legacy(const uint8_t* block, bool has_min, bool five_bits, float* out) {
  const float d = f16_to_f32(read_u16(block));
  const float m = has_min ? f16_to_f32(read_u16(block + 2)) : 0.0f;
  const uint8_t* rest = block + (has_min ? 4 : 2);
  const uint32_t high = five_bits ? read_u32(rest) : 0;
  const uint8_t* nibbles = rest + (five_bits ? 4 : 0);
  const int offset = has_min ? 0 : (five_bits ? 16 : 8);
  for (int v = 0; v < 32; ++v) {
    int q = (nibbles[v % 16] >> (v < 16 ? 0 : 4)) & 0x0F;
    if (five_bits) q |= static_cast<int>((high >> v) & 1u) << 4;
    out[v] = has_min ? d * static_cast<float>(q) + m : d * static_cast<float>(q - offset);
  }
}

// Q8_0: [f16 d][int8 q0 .. q31]; value i = d * q_i.
void dequantize_q8_0(const uint8_t* block, float* out) {
  const float d = f16_to_f32(read_u16(block));
  for (int i = 0; i < 32; ++i) out[i] = d * static_cast<float>(static_cast<int8_t>(block[2 + i]));
}

// The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K / Q5_K.
void k_scale_min(const uint8_t* packed, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = packed[j] & 0x3F;
    *min = packed[j + 4] & 0x3F;
  } else {
    *scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
    *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// Q4_K: [f16 d][f16 dmin][scales: 12 bytes][qs: 128 bytes], 8 sub-blocks of 32 values.
//
// Sub-block j has a 6-bit scale sc_j and a 6-bit min m_j, packed in the 12 bytes as:
//   j < 4:  sc_j = bytes[j] low 6 bits,     m_j = bytes[j + 4] low 6 bits
//   j >= 4: sc_j = bytes[j + 4] low nibble  | (bytes[j - 4] top 2 bits) << 4
//           m_j  = bytes[j + 4] high nibble | (bytes[j] top 2 bits) << 4
// The quants come in 4 groups of 32 bytes; group g holds sub-block 2g in the low nibbles
// and sub-block 2g + 1 in the high nibbles. Value = d * sc_j * q - dmin * m_j.
void dequantize_q4_k(const uint8_t* block, float* out) {
  const float d = f16_to_f32(read_u16(block));
  const float dmin = f16_to_f32(read_u16(block + 2));
  const uint8_t* packed = block + 4;
  const uint8_t* quants = block + 16;
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    k_scale_min(packed, j, &scale, &min);
    const float step = d * static_cast<float>(scale);
    const float offset = dmin * static_cast<float>(min);
    const uint8_t* group = quants + 32 * (j / 2);
    const int shift = (j % 2) * 4;
    for (int i = 0; i < 32; ++i) out[32 * j + i] = step * static_cast<float>((group[i] >> shift) & 0x0F) - offset;
  }
}

// Q5_K: [f16 d][f16 dmin][scales: 12 bytes as Q4_K][qh: 32 bytes][qs: 128 bytes]. The low
// 4 bits are placed as in Q4_K; the fifth bit of value 32j + i is bit j of qh[i].
void dequantize_q5_k(const uint8_t* block, float* out) {
  const float d = f16_to_f32(read_u16(block));
  const float dmin = f16_to_f32(read_u16(block + 2));
  const uint8_t* packed = block + 4;
  const uint8_t* high = block + 16;
  const uint8_t* quants = block + 48;
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    k_scale_min(packed, j, &scale, &min);
    const float step = d * static_cast<float>(scale);
    const float offset = dmin * static_cast<float>(min);
    const uint8_t* group = quants + 32 * (j / 2);
    const int shift = (j % 2) * 4;
    for (int i = 0; i < 32; ++i) {
      const int q = ((group[i] >> shift) & 0x0F) | (((high[i] >> j) & 1) << 4);
      out[32 * j + i] = step * static_cast<float>(q) - offset;
    }
  }
}

// Q6_K: [ql: 128 bytes][qh: 64 bytes][int8 scales: 16][f16 d], 256 values as two halves
// of 128. In half h (ql + 64h, qh + 32h), for i in [0, 32) the 6-bit quants of values
// 128h + i + 32k, k = 0..3, are
//   k = 0: ql[i]      low nibble | qh[i] bits 0-1 << 4
//   k = 1: ql[i + 32] low nibble | qh[i] bits 2-3 << 4
//   k = 2: ql[i]      high nibble| qh[i] bits 4-5 << 4
//   k = 3: ql[i + 32] high nibble| qh[i] bits 6-7 << 4
// Value v (0..255) uses scale scales[v / 16]: x = d * scale * (q - 32).
void dequantize_q6_k(const uint8_t* block, float* out) {
  const uint8_t* low = block;
  const uint8_t* high = block + 128;
  const uint8_t* scales = block + 192;
  const float d = f16_to_f32(read_u16(block + 208));
  for (int half = 0; half < 2; ++half) {
    const uint8_t* qh = high + 32 * half;
    for (int k = 0; k < 4; ++k) {
      const uint8_t* ql = low + 64 * half + 32 * (k % 2);
      const int low_shift = 4 * (k / 2), high_shift = 2 * k;
      // Two runs of 16 values, one scale each; the loops vectorise.
      for (int run = 0; run < 2; ++run) {
        const int first = 128 * half + 32 * k + 16 * run;
        const float step = d * static_cast<float>(static_cast<int8_t>(scales[first / 16]));
        for (int i = 16 * run; i < 16 * run + 16; ++i) {
          const int q = ((ql[i] >> low_shift) & 0x0F) | (((qh[i] >> high_shift) & 0x03) << 4);
          out[first + i - 16 * run] = step * static_cast<float>(q - 32);
        }
      }
    }
  }
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const GgmlTypeInfo& info : kTypes)
    if (static_cast<uint32_t>(info.type) == id) return &info;
  return nullptr;
}

std::string ggml_type_name(uint32_t id) {
  if (const GgmlTypeInfo* info = ggml_type_info(id)) return info->name;
  for (const NamedId& named : kUnreadTypes)
    if (named.id == id) return named.name;
  return "type " + std::to_string(id);
}

const char* ggml_dequantizable_types() { return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K"; }

namespace {

void write_f16(uint8_t* at, float value) {
  const uint16_t h = f32_to_f16(value);
  at[0] = static_cast<uint8_t>(h);
  at[1] = static_cast<uint8_t>(h >> 8);
}

// A scale rounded up to the next f16 value above it, so that value / scale stays in range.
float f16_at_least(float value) {
  float rounded = f16_to_f32(f32_to_f16(value));
  if (rounded < value) rounded = f16_to_f32(static_cast<uint16_t>(f32_to_f16(value) + 1));
  return rounded;
}

void quantize_q8_0(const float* x, uint8_t* block) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax > 0.0f ? f16_at_least(amax / 127.0f) : 0.0f;
  write_f16(block, d);
  for (int i = 0; i < 32; ++i) {
    const long q = d > 0.0f ? std::lround(x[i] / d) : 0;
    block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp<long>(q, -127, 127)));
  }
}

// Sub-block j covers [-dmin * m_j, -dmin * m_j + 15 * d * sc_j] with 6-bit sc_j and m_j,
// both rounded up so that it contains every value of the sub-block (packing as k_scale_min).
void quantize_q4_k(const float* x, uint8_t* block) {
  float low[8], high[8], deepest = 0.0f;
  for (int j = 0; j < 8; ++j) {
    low[j] = std::min(0.0f, *std::min_element(x + 32 * j, x + 32 * j + 32));
    high[j] = std::max(0.0f, *std::max_element(x + 32 * j, x + 32 * j + 32));
    deepest = std::max(deepest, -low[j]);
  }
  const float dmin = deepest > 0.0f ? f16_at_least(deepest / 63.0f) : 0.0f;
  int mins[8], scales[8];
  float widest = 0.0f;
  for (int j = 0; j < 8; ++j) {
    mins[j] = dmin > 0.0f ? std::min(63, static_cast<int>(std::ceil(-low[j] / dmin))) : 0;
    widest = std::max(widest, high[j] + dmin * static_cast<float>(mins[j]));
  }
  const float d = widest > 0.0f ? f16_at_least(widest / (15.0f * 63.0f)) : 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float span = high[j] + dmin * static_cast<float>(mins[j]);
    scales[j] = d > 0.0f ? std::min(63, static_cast<int>(std::ceil(span / (15.0f * d)))) : 0;
  }
  std::fill(block, block + 144, uint8_t{0});
  write_f16(block, d);
  write_f16(block + 2, dmin);
  uint8_t* packed = block + 4;
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>((scales[j] & 63) | ((scales[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>((mins[j] & 63) | ((mins[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((scales[j + 4] & 15) | ((mins[j + 4] & 15) << 4));
  }
  uint8_t* quants = block + 16;
  for (int j = 0; j < 8; ++j) {
    const float step = d * static_cast<float>(scales[j]), offset = dmin * static_cast<float>(mins[j]);
    for (int i = 0; i < 32; ++i) {
      const long q = step > 0.0f ? std::lround((x[32 * j + i] + offset) / step) : 0;
      quants[32 * (j / 2) + i] |= static_cast<uint8_t>(std::clamp<long>(q, 0, 15) << (4 * (j % 2)));
    }
  }
}

// Sub-block s (16 values) has an int8 scale sc_s of d; quants q - 32 in [-32, 31].
void quantize_q6_k(const float* x, uint8_t* block) {
  float amax[16], top = 0.0f;
  for (int s = 0; s < 16; ++s) {
    amax[s] = 0.0f;
    for (int i = 0; i < 16; ++i) amax[s] = std::max(amax[s], std::fabs(x[16 * s + i]));
    top = std::max(top, amax[s]);
  }
  const float d = top > 0.0f ? f16_at_least(top / (31.0f * 127.0f)) : 0.0f;
  std::fill(block, block + 210, uint8_t{0});
  for (int s = 0; s < 16; ++s) {
    const int scale = d > 0.0f ? std::clamp(static_cast<int>(std::ceil(amax[s] / (31.0f * d))), 1, 127) : 1;
    block[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(scale));
    const float step = d * static_cast<float>(scale);
    for (int i = 0; i < 16; ++i) {
      const int v = 16 * s + i;
      const long q = (step > 0.0f ? std::clamp<long>(std::lround(x[v] / step), -32, 31) : 0) + 32;
      const int half = v / 128, k = (v % 128) / 32, at = v % 32;
      block[64 * half + at + 32 * (k % 2)] |= static_cast<uint8_t>((q & 15) << (k < 2 ? 0 : 4));
      block[128 + 32 * half + at] |= static_cast<uint8_t>((q >> 4) << (2 * k));
    }
  }
  write_f16(block + 208, d);
}

}  // namespace

void quantize_from_f32(GgmlType type, const float* values, size_t count, void* out) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (!info || (type != GgmlType::Q8_0 && type != GgmlType::Q4_K && type != GgmlType::Q6_K))
    throw ModelError("quantising to ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                     " is not supported; supported: Q8_0, Q4_K, Q6_K");
  const size_t block = static_cast<size_t>(info->block_elements);
  if (count % block != 0)
    throw ModelError("cannot quantise " + std::to_string(count) + " values to " + info->name + ": not whole " +
                     std::to_string(block) + "-value blocks");
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      throw ModelError("cannot quantise a non-finite value (element " + std::to_string(i) + ")");
  uint8_t* bytes = static_cast<uint8_t*>(out);
  for (size_t b = 0; b < count / block; ++b) {
    const float* x = values + b * block;
    uint8_t* target = bytes + b * info->block_bytes;
    if (type == GgmlType::Q8_0) {
      quantize_q8_0(x, target);
    } else if (type == GgmlType::Q4_K) {
      quantize_q4_k(x, target);
    } else {
      quantize_q6_k(x, target);
    }
  }
}

size_t first_non_finite_block(GgmlType type, const void* src, size_t blocks) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (!info || !info->dequantizable) return 0;
  // Byte offsets of the f16 fields in a block (the layouts above).
  int fields[2] = {0, -1};
  switch (type) {
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      fields[1] = 2;  // d, then m / dmin
      break;
    case GgmlType::Q6_K:
      fields[0] = 208;
      break;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0:
      break;
    default:
      return blocks;  // plain types: not blocks of scales
  }
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = bytes + b * info->block_bytes;
    for (int field : fields)
      if (field >= 0 && (read_u16(block + field) & 0x7C00u) == 0x7C00u) return b;
  }
  return blocks;
}

void dequantize_to_f32(GgmlType type, const void* src, size_t count, float* out) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (!info || !info->dequantizable)
    throw ModelError("cannot convert ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                     " to float32; supported: " + ggml_dequantizable_types());
  const size_t block = static_cast<size_t>(info->block_elements);
  if (count % block != 0)
    throw ModelError("cannot convert " + std::to_string(count) + " values of ggml type " + info->name +
                     ": not a whole number of " + std::to_string(block) + "-value blocks");
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::F32:
      if (count) std::memcpy(out, bytes, count * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < count; ++i) out[i] = f16_to_f32(read_u16(bytes + 2 * i));
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < count; ++i) out[i] = bf16_to_f32(read_u16(bytes + 2 * i));
      return;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1: {
      const bool has_min = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
      const bool five_bits = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
      for (size_t b = 0; b < count / block; ++b)
        dequantize_legacy(bytes + b * info->block_bytes, has_min, five_bits, out + b * block);
      return;
    }
    case GgmlType::Q5_K:
      for (size_t b = 0; b < count / block; ++b) dequantize_q5_k(bytes + b * info->block_bytes, out + b * block);
      return;
    case GgmlType::Q8_0:
      for (size_t b = 0; b < count / block; ++b) dequantize_q8_0(bytes + b * info->block_bytes, out + b * block);
      return;
    case GgmlType::Q4_K:
      for (size_t b = 0; b < count / block; ++b) dequantize_q4_k(bytes + b * info->block_bytes, out + b * block);
      return;
    case GgmlType::Q6_K:
      for (size_t b = 0; b < count / block; ++b) dequantize_q6_k(bytes + b * info->block_bytes, out + b * block);
      return;
    default:
      break;
  }
  throw ModelError(std::string("cannot convert ggml type ") + info->name + " to float32");
}

}  // namespace tidal
