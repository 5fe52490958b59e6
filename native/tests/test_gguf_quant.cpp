// Dequantisation of ggml block formats. Blocks are packed here from chosen integers by an
// encoder written from the format description (the decoder's inverse), and the expected
// values are computed in float64 from those integers; round trips through simple
// quantisers check the error stays within each format's step.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "model/half.h"
#include "model/quant.h"
#include "tidal/error.h"

using tidal::GgmlType;

namespace {

void put_f16(uint8_t* at, float value) {
  uint16_t h = tidal::f32_to_f16(value);
  at[0] = static_cast<uint8_t>(h);
  at[1] = static_cast<uint8_t>(h >> 8);
}

double f16_value(float value) { return tidal::f16_to_f32(tidal::f32_to_f16(value)); }

// ---- Q8_0 --------------------------------------------------------------------------

std::vector<uint8_t> pack_q8_0(float d, const std::vector<int>& q) {
  std::vector<uint8_t> block(34);
  put_f16(block.data(), d);
  for (int i = 0; i < 32; ++i) block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q[i]));
  return block;
}

// ---- Q4_K --------------------------------------------------------------------------

struct Q4kParts {
  float d = 0, dmin = 0;
  int scale[8] = {}, min[8] = {};
  int q[256] = {};  // 0..15
};

// Sub-blocks 0-3 keep their 6-bit scale and min whole in bytes 0-3 and 4-7; sub-blocks 4-7
// keep the low 4 bits of scale and min in bytes 8-11 (scale low nibble, min high nibble)
// and their top 2 bits in the top 2 bits of bytes 0-3 (scale) and 4-7 (min).
std::vector<uint8_t> pack_q4_k(const Q4kParts& p) {
  std::vector<uint8_t> block(144, 0);
  put_f16(block.data(), p.d);
  put_f16(block.data() + 2, p.dmin);
  uint8_t* packed = block.data() + 4;
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>((p.scale[j] & 63) | ((p.scale[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>((p.min[j] & 63) | ((p.min[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((p.scale[j + 4] & 15) | ((p.min[j + 4] & 15) << 4));
  }
  uint8_t* quants = block.data() + 16;
  for (int v = 0; v < 256; ++v) {
    const int sub = v / 32, i = v % 32;
    quants[32 * (sub / 2) + i] |= static_cast<uint8_t>(p.q[v] << (4 * (sub % 2)));
  }
  return block;
}

std::vector<double> expected_q4_k(const Q4kParts& p) {
  std::vector<double> out(256);
  const double d = f16_value(p.d), dmin = f16_value(p.dmin);
  for (int v = 0; v < 256; ++v) out[v] = d * p.scale[v / 32] * p.q[v] - dmin * p.min[v / 32];
  return out;
}

// ---- Q5_K: Q4_K's fields with a fifth bit per value ---------------------------------

// q values are 0..31 here: the low 4 bits are packed exactly as Q4_K's, and the fifth bit
// of value 32j + i is bit j of byte i of the 32-byte area between the scales and the quants.
std::vector<uint8_t> pack_q5_k(const Q4kParts& p) {
  Q4kParts low = p;
  for (int v = 0; v < 256; ++v) low.q[v] = p.q[v] & 15;
  std::vector<uint8_t> q4 = pack_q4_k(low);
  std::vector<uint8_t> block(q4.begin(), q4.begin() + 16);
  std::vector<uint8_t> high(32, 0);
  for (int v = 0; v < 256; ++v) high[v % 32] |= static_cast<uint8_t>((p.q[v] >> 4) << (v / 32));
  block.insert(block.end(), high.begin(), high.end());
  block.insert(block.end(), q4.begin() + 16, q4.end());
  return block;
}

// ---- 32-value legacy blocks ---------------------------------------------------------

// Values i and i + 16 share byte i (low and high nibble); bit v of the little-endian
// 32-bit word after the scales is the fifth bit of value v.
std::vector<uint8_t> pack_legacy(float d, const float* m, bool five_bits, const int* q) {
  std::vector<uint8_t> block(2);
  put_f16(block.data(), d);
  if (m) {
    block.resize(4);
    put_f16(block.data() + 2, *m);
  }
  if (five_bits) {
    uint32_t high = 0;
    for (int v = 0; v < 32; ++v) high |= static_cast<uint32_t>((q[v] >> 4) & 1) << v;
    for (int b = 0; b < 4; ++b) block.push_back(static_cast<uint8_t>(high >> (8 * b)));
  }
  for (int i = 0; i < 16; ++i) block.push_back(static_cast<uint8_t>((q[i] & 15) | ((q[i + 16] & 15) << 4)));
  return block;
}

// ---- Q6_K --------------------------------------------------------------------------

struct Q6kParts {
  float d = 0;
  int scale[16] = {};  // int8
  int q[256] = {};     // 0..63, value = d * scale * (q - 32)
};

// Value v = 128h + 32k + i (h: half, k: 0..3, i: 0..31). Its low 4 bits go to byte
// 64h + i + 32(k mod 2) of the low area, in the low nibble for k < 2 and the high nibble
// otherwise; its top 2 bits go to bits 2k, 2k+1 of byte 32h + i of the high area.
std::vector<uint8_t> pack_q6_k(const Q6kParts& p) {
  std::vector<uint8_t> block(210, 0);
  for (int v = 0; v < 256; ++v) {
    const int h = v / 128, k = (v % 128) / 32, i = v % 32;
    block[64 * h + i + 32 * (k % 2)] |= static_cast<uint8_t>((p.q[v] & 15) << (k < 2 ? 0 : 4));
    block[128 + 32 * h + i] |= static_cast<uint8_t>((p.q[v] >> 4) << (2 * k));
  }
  for (int s = 0; s < 16; ++s) block[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(p.scale[s]));
  put_f16(block.data() + 208, p.d);
  return block;
}

std::vector<double> expected_q6_k(const Q6kParts& p) {
  std::vector<double> out(256);
  const double d = f16_value(p.d);
  for (int v = 0; v < 256; ++v) out[v] = d * p.scale[v / 16] * (p.q[v] - 32);
  return out;
}

std::vector<float> dequantize(GgmlType type, const std::vector<uint8_t>& bytes, size_t count) {
  std::vector<float> out(count);
  tidal::dequantize_to_f32(type, bytes.data(), count, out.data());
  return out;
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double relative) {
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i)
    CHECK_NEAR(got[i], want[i], relative * std::fabs(want[i]) + 1e-30);
}

}  // namespace

TIDAL_TEST(gguf_quant_type_table_has_the_format_sizes) {
  CHECK_EQ(tidal::ggml_type_info(8)->block_bytes, 34u);
  CHECK_EQ(tidal::ggml_type_info(12)->block_bytes, 144u);
  CHECK_EQ(tidal::ggml_type_info(14)->block_bytes, 210u);
  CHECK_EQ(tidal::ggml_type_info(12)->block_elements, 256);
  CHECK_EQ(tidal::ggml_type_info(30)->block_bytes, 2u);
  CHECK(tidal::ggml_type_info(16) == nullptr);
  CHECK_EQ(tidal::ggml_type_name(16), "IQ2_XXS");
  CHECK_EQ(tidal::ggml_type_name(999), "type 999");
}

TIDAL_TEST(gguf_quant_plain_types_convert_exactly) {
  std::vector<float> values = {1.0f, -2.5f, 0.0f, 65280.0f, 3.140625f};
  std::vector<uint8_t> f32(values.size() * 4), f16, bf16;
  std::memcpy(f32.data(), values.data(), f32.size());
  for (float v : values) {
    uint16_t h = tidal::f32_to_f16(v), b = tidal::f32_to_bf16(v);
    f16.push_back(static_cast<uint8_t>(h));
    f16.push_back(static_cast<uint8_t>(h >> 8));
    bf16.push_back(static_cast<uint8_t>(b));
    bf16.push_back(static_cast<uint8_t>(b >> 8));
  }
  auto a = dequantize(GgmlType::F32, f32, values.size());
  auto b = dequantize(GgmlType::F16, f16, values.size());
  auto c = dequantize(GgmlType::BF16, bf16, values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    CHECK_EQ(a[i], values[i]);
    CHECK_EQ(b[i], values[i]);
    CHECK_EQ(c[i], values[i]);
  }
}

TIDAL_TEST(gguf_quant_q8_0_hand_built_blocks) {
  std::vector<int> q(32);
  for (int i = 0; i < 32; ++i) q[i] = (i * 37) % 256 - 128;  // covers -128 and 127 regions
  q[0] = -128;
  q[1] = 127;
  std::vector<uint8_t> two = pack_q8_0(0.5f, q);
  std::vector<uint8_t> second = pack_q8_0(-0.0078125f, q);
  two.insert(two.end(), second.begin(), second.end());
  auto got = dequantize(GgmlType::Q8_0, two, 64);
  std::vector<double> want;
  for (double d : {0.5, -0.0078125})
    for (int i = 0; i < 32; ++i) want.push_back(d * q[i]);
  check_close(got, want, 0.0);
}

TIDAL_TEST(gguf_quant_q4_k_hand_built_blocks) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    Q4kParts p;
    p.d = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 12));
    p.dmin = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 12));
    for (int j = 0; j < 8; ++j) {
      p.scale[j] = static_cast<int>(rng() % 64);
      p.min[j] = static_cast<int>(rng() % 64);
    }
    if (trial == 0)
      for (int j = 0; j < 8; ++j) p.scale[j] = p.min[j] = 63;  // every scale bit set
    for (int v = 0; v < 256; ++v) p.q[v] = static_cast<int>(rng() % 16);
    // Products of an f16, a 6-bit and a 4-bit integer are exact in float32; the final
    // subtraction rounds once.
    check_close(dequantize(GgmlType::Q4_K, pack_q4_k(p), 256), expected_q4_k(p), 1e-6);
  }
  // Isolated bits: one sub-block's scale top bits only, everything else zero.
  Q4kParts p;
  p.d = 1.0f;
  p.dmin = 1.0f;
  p.scale[6] = 48;  // 0b110000: only the bits stored in byte 2's top
  p.min[5] = 32;    // only the bit stored in byte 5's top
  for (int v = 0; v < 256; ++v) p.q[v] = 1;
  auto got = dequantize(GgmlType::Q4_K, pack_q4_k(p), 256);
  CHECK_EQ(got[6 * 32], 48.0f);
  CHECK_EQ(got[5 * 32], -32.0f);
  CHECK_EQ(got[0], 0.0f);
}

TIDAL_TEST(gguf_quant_q6_k_hand_built_blocks) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    Q6kParts p;
    p.d = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 14));
    for (int s = 0; s < 16; ++s) p.scale[s] = static_cast<int>(rng() % 256) - 128;
    for (int v = 0; v < 256; ++v) p.q[v] = static_cast<int>(rng() % 64);
    if (trial == 0)
      for (int v = 0; v < 256; ++v) p.q[v] = v % 64;
    check_close(dequantize(GgmlType::Q6_K, pack_q6_k(p), 256), expected_q6_k(p), 1e-6);
  }
  // One value per quarter of each half, with distinct scales, to pin the placement.
  Q6kParts p;
  p.d = 1.0f;
  for (int s = 0; s < 16; ++s) p.scale[s] = s + 1;
  for (int v = 0; v < 256; ++v) p.q[v] = 32;
  p.q[0] = 63;
  p.q[33] = 0;
  p.q[70] = 48;
  p.q[127] = 1;
  p.q[200] = 40;
  auto got = dequantize(GgmlType::Q6_K, pack_q6_k(p), 256);
  CHECK_EQ(got[0], 31.0f * 1);
  CHECK_EQ(got[33], -32.0f * 3);
  CHECK_EQ(got[70], 16.0f * 5);
  CHECK_EQ(got[127], -31.0f * 8);
  CHECK_EQ(got[200], 8.0f * 13);
  CHECK_EQ(got[1], 0.0f);
}

TIDAL_TEST(gguf_quant_round_trips_stay_within_one_half_step) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(1024);
  for (float& v : x) v = normal(rng) * 0.05f;
  x[5] = 0.9f;  // an outlier

  // Q8_0: d = max|x| / 127 rounded to f16; q = round(x / d).
  {
    std::vector<uint8_t> bytes;
    std::vector<double> step;
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      const float d = static_cast<float>(f16_value(amax / 127.0f * 1.002f));
      std::vector<int> q(32);
      for (int i = 0; i < 32; ++i) q[i] = std::clamp(static_cast<int>(std::lround(x[b * 32 + i] / d)), -127, 127);
      auto block = pack_q8_0(d, q);
      bytes.insert(bytes.end(), block.begin(), block.end());
      step.push_back(d);
    }
    auto y = dequantize(GgmlType::Q8_0, bytes, x.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(y[i] - x[i]) <= step[i / 32] * 0.5001);
  }
  // Q4_K: per 32-value sub-block a scale and a min (both 6-bit multiples of d / dmin),
  // chosen by rounding up so every value lies inside [-min, -min + 15 * scale].
  {
    std::vector<uint8_t> bytes;
    std::vector<double> step;
    for (size_t b = 0; b < x.size() / 256; ++b) {
      const float* xb = x.data() + b * 256;
      float lo[8], hi[8], max_lo = 0, max_range = 0;
      for (int j = 0; j < 8; ++j) {
        lo[j] = std::min(0.0f, *std::min_element(xb + 32 * j, xb + 32 * j + 32));
        hi[j] = *std::max_element(xb + 32 * j, xb + 32 * j + 32);
        max_lo = std::max(max_lo, -lo[j]);
      }
      Q4kParts p;
      p.dmin = static_cast<float>(f16_value(max_lo / 63.0f * 1.01f));
      for (int j = 0; j < 8; ++j) {
        p.min[j] = p.dmin > 0 ? static_cast<int>(std::ceil(-lo[j] / p.dmin)) : 0;
        max_range = std::max(max_range, hi[j] + p.dmin * p.min[j]);
      }
      p.d = static_cast<float>(f16_value(max_range / 15.0f / 63.0f * 1.01f));
      for (int j = 0; j < 8; ++j) {
        const double offset = static_cast<double>(p.dmin) * p.min[j];
        p.scale[j] = std::min(63, static_cast<int>(std::ceil((hi[j] + offset) / 15.0 / p.d)));
        const double s = static_cast<double>(p.d) * p.scale[j];
        for (int i = 0; i < 32; ++i)
          p.q[32 * j + i] = std::clamp(static_cast<int>(std::lround((xb[32 * j + i] + offset) / s)), 0, 15);
        step.push_back(s);
      }
      auto block = pack_q4_k(p);
      bytes.insert(bytes.end(), block.begin(), block.end());
    }
    auto y = dequantize(GgmlType::Q4_K, bytes, x.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(y[i] - x[i]) <= step[i / 32] * 0.5001 + 1e-7);
    // The step is about a fifteenth of the sub-block's spread (sub-block 0 holds the outlier).
    CHECK(step[0] < 0.08 && step[1] < 0.03);
  }
  // Q6_K: per 16-value sub-block an int8 scale of d; q - 32 in [-32, 31].
  {
    std::vector<uint8_t> bytes;
    std::vector<double> step;
    for (size_t b = 0; b < x.size() / 256; ++b) {
      const float* xb = x.data() + b * 256;
      float amax[16], top = 0;
      for (int s = 0; s < 16; ++s) {
        amax[s] = 0;
        for (int i = 0; i < 16; ++i) amax[s] = std::max(amax[s], std::fabs(xb[16 * s + i]));
        top = std::max(top, amax[s]);
      }
      Q6kParts p;
      p.d = static_cast<float>(f16_value(top / 31.0f / 127.0f * 1.01f));
      for (int s = 0; s < 16; ++s) {
        p.scale[s] = std::clamp(static_cast<int>(std::ceil(amax[s] / 31.0f / p.d)), 1, 127);
        const double st = static_cast<double>(p.d) * p.scale[s];
        for (int i = 0; i < 16; ++i)
          p.q[16 * s + i] = std::clamp(static_cast<int>(std::lround(xb[16 * s + i] / st)), -32, 31) + 32;
        step.push_back(st);
      }
      auto block = pack_q6_k(p);
      bytes.insert(bytes.end(), block.begin(), block.end());
    }
    auto y = dequantize(GgmlType::Q6_K, bytes, x.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(y[i] - x[i]) <= step[i / 16] * 0.5001 + 1e-7);
  }
}

TIDAL_TEST(gguf_quant_rejects_partial_blocks_and_unreadable_types) {
  std::vector<uint8_t> bytes(210 * 2);
  std::vector<float> out(512);
  CHECK_THROWS_WITH(tidal::dequantize_to_f32(GgmlType::Q6_K, bytes.data(), 300, out.data()), "256-value blocks");
  CHECK_THROWS_WITH(tidal::dequantize_to_f32(GgmlType::Q2_K, bytes.data(), 256, out.data()),
                    "Q2_K to float32; supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K");
}

TIDAL_TEST(gguf_quant_q5_k_hand_built_blocks) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 30; ++trial) {
    Q4kParts p;
    p.d = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 12));
    p.dmin = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 12));
    for (int j = 0; j < 8; ++j) {
      p.scale[j] = static_cast<int>(rng() % 64);
      p.min[j] = static_cast<int>(rng() % 64);
    }
    for (int v = 0; v < 256; ++v) p.q[v] = static_cast<int>(rng() % 32);
    const std::vector<uint8_t> block = pack_q5_k(p);
    CHECK_EQ(block.size(), 176u);
    std::vector<double> want(256);
    const double d = f16_value(p.d), dmin = f16_value(p.dmin);
    for (int v = 0; v < 256; ++v) want[v] = d * p.scale[v / 32] * p.q[v] - dmin * p.min[v / 32];
    check_close(dequantize(GgmlType::Q5_K, block, 256), want, 1e-6);
  }
}

TIDAL_TEST(gguf_quant_legacy_32_value_blocks) {
  std::mt19937 rng(19);
  for (int trial = 0; trial < 20; ++trial) {
    int q[32];
    const float d = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 10));
    const float m = -std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, -static_cast<int>(rng() % 10));
    for (int five = 0; five < 2; ++five) {
      for (int v = 0; v < 32; ++v) q[v] = static_cast<int>(rng() % (five ? 32 : 16));
      q[31] = five ? 31 : 15;
      std::vector<double> symmetric(32), with_min(32);
      for (int v = 0; v < 32; ++v) {
        symmetric[v] = f16_value(d) * (q[v] - (five ? 16 : 8));
        with_min[v] = f16_value(d) * q[v] + f16_value(m);
      }
      const GgmlType plain = five ? GgmlType::Q5_0 : GgmlType::Q4_0;
      const GgmlType offset = five ? GgmlType::Q5_1 : GgmlType::Q4_1;
      const std::vector<uint8_t> a = pack_legacy(d, nullptr, five, q), b = pack_legacy(d, &m, five, q);
      CHECK_EQ(a.size(), tidal::ggml_type_info(static_cast<uint32_t>(plain))->block_bytes);
      CHECK_EQ(b.size(), tidal::ggml_type_info(static_cast<uint32_t>(offset))->block_bytes);
      check_close(dequantize(plain, a, 32), symmetric, 0.0);
      check_close(dequantize(offset, b, 32), with_min, 1e-6);
    }
  }
}

TIDAL_TEST(gguf_quant_quantize_from_f32_round_trips_within_half_a_step) {
  // The engine's quantiser (synthetic models, tests): every value comes back within half a
  // step of its block, whose step is bounded by the block's spread; signs, zeros, an outlier,
  // an all-zero and an all-positive block included.
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(2048);
  for (float& v : x) v = normal(rng) * 0.03f;
  x[7] = 0.8f;
  for (int i = 256; i < 512; ++i) x[static_cast<size_t>(i)] = 0.0f;
  for (int i = 512; i < 768; ++i) x[static_cast<size_t>(i)] = 0.01f + std::fabs(x[static_cast<size_t>(i)]);
  struct Case {
    GgmlType type;
    double step_per_spread;  // step <= this x the block's spread
  };
  for (const Case& c :
       {Case{GgmlType::Q8_0, 1.002 / 127.0}, Case{GgmlType::Q4_K, 0.075}, Case{GgmlType::Q6_K, 0.0326}}) {
    const tidal::GgmlTypeInfo* info = tidal::ggml_type_info(static_cast<uint32_t>(c.type));
    std::vector<uint8_t> bytes(x.size() / static_cast<size_t>(info->block_elements) * info->block_bytes, 0xAB);
    tidal::quantize_from_f32(c.type, x.data(), x.size(), bytes.data());
    const std::vector<float> y = dequantize(c.type, bytes, x.size());
    const size_t block = static_cast<size_t>(info->block_elements);
    for (size_t b = 0; b < x.size() / block; ++b) {
      float lo = 0.0f, hi = 0.0f;
      for (size_t i = b * block; i < (b + 1) * block; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
      const double spread = c.type == GgmlType::Q4_K ? double(hi) - double(lo) : std::max(-double(lo), double(hi));
      double worst = 0.0;
      for (size_t i = b * block; i < (b + 1) * block; ++i) worst = std::max(worst, std::fabs(double(y[i]) - x[i]));
      CHECK(worst <= 0.5 * c.step_per_spread * spread + 1e-9);
    }
    // The all-zero block comes back as zeros.
    for (int i = 256; i < 512; ++i) CHECK_EQ(y[static_cast<size_t>(i)], 0.0f);
  }
  std::vector<uint8_t> out(34);
  const std::vector<float> nan_block(32, std::nanf(""));
  CHECK_THROWS_WITH(tidal::quantize_from_f32(GgmlType::Q8_0, nan_block.data(), 32, out.data()), "non-finite");
  CHECK_THROWS_WITH(tidal::quantize_from_f32(GgmlType::Q5_K, x.data(), 256, out.data()), "not supported");
  CHECK_THROWS_WITH(tidal::quantize_from_f32(GgmlType::Q8_0, x.data(), 31, out.data()), "not whole");
}
