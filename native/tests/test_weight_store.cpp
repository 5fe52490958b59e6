#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "model/half.h"
#include "model/weight_store.h"
#include "safetensors_writer.h"
#include "tidal/error.h"

using tidal::DType;
using tidal::TensorView;
using tidal::WeightStore;
using tidal_test::TempDir;
using tidal_test::TensorSpec;

namespace {

uint32_t bits_of(float f) { return tidal::float_bits(f); }

std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  tidal::convert_to_f32(t, out.data());
  return out;
}

}  // namespace

TIDAL_TEST(f16_to_f32_matches_hand_computed_values) {
  using tidal::f16_to_f32;
  CHECK_EQ(f16_to_f32(0x3C00), 1.0f);
  CHECK_EQ(f16_to_f32(0xC000), -2.0f);
  CHECK_EQ(f16_to_f32(0x7BFF), 65504.0f);                 // largest finite
  CHECK_EQ(f16_to_f32(0x0400), 6.103515625e-05f);         // 2^-14, smallest normal
  CHECK_EQ(f16_to_f32(0x03FF), 6.097555160522461e-05f);   // 1023 * 2^-24, largest subnormal
  CHECK_EQ(f16_to_f32(0x0001), 5.9604644775390625e-08f);  // 2^-24, smallest subnormal
  CHECK_EQ(f16_to_f32(0x8001), -5.9604644775390625e-08f);
  CHECK_EQ(f16_to_f32(0x3555), 0.333251953125f);  // (1 + 341/1024) / 4
  CHECK_EQ(f16_to_f32(0x5640), 100.0f);           // 64 * (1 + 576/1024)
  CHECK_EQ(bits_of(f16_to_f32(0x0000)), 0x00000000u);
  CHECK_EQ(bits_of(f16_to_f32(0x8000)), 0x80000000u);  // -0 keeps its sign
  CHECK_EQ(bits_of(f16_to_f32(0x7C00)), 0x7F800000u);  // +Inf
  CHECK_EQ(bits_of(f16_to_f32(0xFC00)), 0xFF800000u);  // -Inf
  CHECK_EQ(bits_of(f16_to_f32(0x7E00)), 0x7FC00000u);  // quiet NaN
  CHECK_EQ(bits_of(f16_to_f32(0x7C01)), 0x7FC02000u);  // signalling NaN: payload kept, quieted
  CHECK_EQ(bits_of(f16_to_f32(0xFE01)), 0xFFC02000u);
}

TIDAL_TEST(bf16_to_f32_matches_hand_computed_values) {
  using tidal::bf16_to_f32;
  CHECK_EQ(bf16_to_f32(0x3F80), 1.0f);
  CHECK_EQ(bf16_to_f32(0x4049), 3.140625f);
  CHECK_EQ(bf16_to_f32(0xC2F7), -123.5f);
  CHECK_EQ(bf16_to_f32(0x3E80), 0.25f);
  CHECK_EQ(bf16_to_f32(0x0001), 9.183549615799121e-41f);  // 2^-133, a float32 subnormal
  CHECK_EQ(bits_of(bf16_to_f32(0x7F80)), 0x7F800000u);
  CHECK_EQ(bits_of(bf16_to_f32(0xFF80)), 0xFF800000u);
  CHECK(std::isnan(bf16_to_f32(0x7FC0)));
}

TIDAL_TEST(f32_to_half_rounds_to_nearest_even) {
  using tidal::f32_to_bf16;
  using tidal::f32_to_f16;
  CHECK_EQ(f32_to_f16(1.0f), 0x3C00);
  CHECK_EQ(f32_to_f16(65519.0f), 0x7BFF);  // below the rounding midpoint
  CHECK_EQ(f32_to_f16(65520.0f), 0x7C00);  // midpoint to odd 0x7BFF: rounds up to Inf
  CHECK_EQ(f32_to_f16(1e10f), 0x7C00);
  CHECK_EQ(f32_to_f16(-1e10f), 0xFC00);
  CHECK_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie, even is 0x3C00
  CHECK_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, even is 0x3C02
  CHECK_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);      // tie between 0 and 2^-24
  CHECK_EQ(f32_to_f16(3 * std::ldexp(1.0f, -25)), 0x0002);  // tie between 1 and 2 ulps
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -25) + std::ldexp(1.0f, -30)), 0x0001);
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);  // rounds up into the normals
  CHECK_EQ(f32_to_f16(-0.0f), 0x8000);
  CHECK_EQ(f32_to_f16(std::ldexp(1.0f, -140)), 0x0000);
  uint16_t nan16 = f32_to_f16(std::nanf(""));
  CHECK((nan16 & 0x7C00) == 0x7C00 && (nan16 & 0x03FF) != 0);

  CHECK_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie to even
  CHECK_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  CHECK_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  CHECK_EQ(f32_to_bf16(3.4028235e38f), 0x7F80);  // FLT_MAX rounds to Inf
  CHECK_EQ(f32_to_bf16(std::nanf("")) & 0x7FC0, 0x7FC0);

  // Every finite f16 survives the round trip through float32.
  int mismatches = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0) continue;  // NaN
    if (tidal::f32_to_f16(tidal::f16_to_f32(static_cast<uint16_t>(h))) != h) ++mismatches;
  }
  CHECK_EQ(mismatches, 0);
}

TIDAL_TEST(bulk_conversion_is_bit_identical_to_scalar) {
  // All 65536 f16 patterns, read from an odd address to exercise unaligned loads.
  std::vector<uint8_t> buffer(1 + 2 * 65536);
  for (uint32_t h = 0; h < 65536; ++h) {
    uint16_t v = static_cast<uint16_t>(h);
    std::memcpy(buffer.data() + 1 + 2 * h, &v, 2);
  }
  for (DType dtype : {DType::F16, DType::BF16}) {
    std::vector<float> out(65536);
    tidal::convert_to_f32(dtype, buffer.data() + 1, out.data(), out.size());
    int mismatches = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
      float expected = dtype == DType::F16 ? tidal::f16_to_f32(static_cast<uint16_t>(h))
                                           : tidal::bf16_to_f32(static_cast<uint16_t>(h));
      if (bits_of(out[h]) != bits_of(expected)) ++mismatches;
    }
    CHECK_EQ(mismatches, 0);
  }
  // Counts that leave a tail after the 8-wide vector loop.
  std::vector<float> tail(13, -1.0f);
  tidal::convert_to_f32(DType::F16, buffer.data() + 1 + 2 * 0x3C00, tail.data(), 11);
  CHECK_EQ(tail[0], 1.0f);
  CHECK_EQ(tail[10], tidal::f16_to_f32(0x3C0A));
  CHECK_EQ(tail[11], -1.0f);  // nothing written past count
  std::vector<float> f32_in = {1.5f, -2.25f, 3.0f};
  std::vector<float> f32_out(3);
  tidal::convert_to_f32(DType::F32, f32_in.data(), f32_out.data(), 3);
  CHECK_EQ(f32_out[1], -2.25f);
}

TIDAL_TEST(weight_store_reads_single_file_with_every_dtype) {
  TempDir dir;
  tidal_test::write_safetensors(
      dir.file("model.safetensors"),
      {{"a.f32", "F32", {2, 3}, tidal_test::f32_bytes({1.0f, -2.0f, 3.5f, 0.25f, -0.0f, 1e-3f})},
       {"b.f16", "F16", {4}, tidal_test::u16_bytes({0x3C00, 0xC000, 0x0001, 0x7BFF})},
       {"c.bf16", "BF16", {2, 2}, tidal_test::u16_bytes({0x3F80, 0x4049, 0xC2F7, 0x3E80})},
       {"empty", "F32", {0, 4}, {}},
       {"scalar", "F32", {}, tidal_test::f32_bytes({42.0f})}},
      {{"format", "pt"}});
  WeightStore store = WeightStore::open(dir.path());
  CHECK_EQ(store.size(), size_t(5));
  CHECK_EQ(store.source(), dir.path());
  CHECK_EQ(store.metadata().at("format"), std::string("pt"));
  std::vector<std::string> names = store.names();
  CHECK_EQ(names.size(), size_t(5));
  CHECK_EQ(names[0], std::string("a.f32"));
  CHECK_EQ(names[4], std::string("scalar"));
  CHECK_EQ(store.total_bytes(), size_t(24 + 8 + 8 + 0 + 4));
  CHECK(store.has("b.f16"));
  CHECK(!store.has("b"));

  const TensorView& a = store.get("a.f32", {2, 3});
  CHECK(a.dtype == DType::F32);
  CHECK_EQ(a.numel(), 6);
  CHECK_EQ(a.bytes, size_t(24));
  CHECK_EQ(reinterpret_cast<uintptr_t>(a.data) % 8, uintptr_t(0));  // header padded to 8 bytes
  std::vector<float> av = to_f32(a);
  CHECK_EQ(av[2], 3.5f);
  CHECK_EQ(av[5], 1e-3f);

  std::vector<float> bv = to_f32(store.get("b.f16"));
  CHECK_EQ(bv[0], 1.0f);
  CHECK_EQ(bv[1], -2.0f);
  CHECK_EQ(bv[2], 5.9604644775390625e-08f);
  CHECK_EQ(bv[3], 65504.0f);

  const TensorView& c = store.get("c.bf16");
  CHECK(c.dtype == DType::BF16);
  std::vector<float> cv = to_f32(c);
  CHECK_EQ(cv[1], 3.140625f);
  CHECK_EQ(cv[2], -123.5f);
  // One row of a matrix: elements [2, 4).
  float row[2];
  tidal::convert_to_f32(c, 2, 2, row);
  CHECK_EQ(row[0], -123.5f);
  CHECK_EQ(row[1], 0.25f);
  CHECK_THROWS_WITH(tidal::convert_to_f32(c, 3, 2, row), "elements [3, 5) are outside tensor 'c.bf16' of 4 elements");

  CHECK_EQ(store.get("empty").numel(), 0);
  CHECK_EQ(store.get("scalar").numel(), 1);
  CHECK_EQ(to_f32(store.get("scalar"))[0], 42.0f);
  CHECK_EQ(tidal::shape_string(store.get("scalar").shape), std::string("[]"));

  CHECK_THROWS_WITH(store.get("a.f32", {3, 2}),
                    "tensor 'a.f32' in '" + dir.path() + "' has shape [2, 3], expected [3, 2]");
  CHECK_THROWS_WITH(store.get("lm_head.weight"),
                    "missing tensor 'lm_head.weight' in '" + dir.path() + "' (5 tensors present)");
  CHECK_THROWS_WITH(store.get("f16"), "did you mean 'b.f16'?");

  // The same file opened directly; a moved store keeps its views valid.
  WeightStore direct = WeightStore::open_file(dir.file("model.safetensors"));
  WeightStore moved = std::move(direct);
  CHECK_EQ(to_f32(moved.get("a.f32"))[0], 1.0f);
  CHECK_EQ(moved.source(), dir.file("model.safetensors"));
}

TIDAL_TEST(weight_store_reads_sharded_checkpoint) {
  TempDir dir;
  tidal_test::write_safetensors(dir.file("model-00001-of-00003.safetensors"),
                                {{"embed", "F32", {2, 2}, tidal_test::f32_bytes({1, 2, 3, 4})},
                                 {"layer.0", "BF16", {2}, tidal_test::bf16_bytes({0.5f, -8.0f})}});
  tidal_test::write_safetensors(dir.file("model-00002-of-00003.safetensors"),
                                {{"layer.1", "F16", {3}, tidal_test::f16_bytes({0.1f, 0.2f, 0.3f})}});
  tidal_test::write_safetensors(dir.file("model-00003-of-00003.safetensors"),
                                {{"norm", "F32", {2}, tidal_test::f32_bytes({7, 8})}}, {{"format", "pt"}});
  tidal_test::write_text(dir.file("model.safetensors.index.json"), R"({
    "metadata": {"total_size": 38},
    "weight_map": {
      "embed": "model-00001-of-00003.safetensors",
      "layer.0": "model-00001-of-00003.safetensors",
      "layer.1": "model-00002-of-00003.safetensors",
      "norm": "model-00003-of-00003.safetensors"
    }})");
  WeightStore store = WeightStore::open(dir.path());
  CHECK_EQ(store.size(), size_t(4));
  CHECK_EQ(store.total_bytes(), size_t(16 + 4 + 6 + 8));
  CHECK_EQ(to_f32(store.get("embed", {2, 2}))[3], 4.0f);
  CHECK_EQ(to_f32(store.get("layer.0"))[1], -8.0f);
  CHECK_EQ(to_f32(store.get("layer.1"))[1], tidal::f16_to_f32(tidal::f32_to_f16(0.2f)));
  CHECK_NEAR(to_f32(store.get("layer.1"))[2], 0.3, 1e-3);
  CHECK_EQ(to_f32(store.get("norm"))[0], 7.0f);
  CHECK_EQ(store.metadata().at("format"), std::string("pt"));
}

TIDAL_TEST(weight_store_loads_reference_fixtures) {
  const std::string models = tidal_test::fixtures_dir() + "/models";
  struct Expect {
    const char* folder;
    size_t tensors;
    DType dtype;
    size_t total_bytes;
  };
  // Byte totals: parameter count x dtype size; the sharded folder's index states 1243392.
  const Expect expected[] = {
      {"llama2-mha-bf16", 57, DType::BF16, 0}, {"llama3-gqa-f32", 57, DType::F32, 0},
      {"mistral-gqa-f16", 57, DType::F16, 0},  {"qwen2-tied-sharded-f32", 74, DType::F32, 1243392},
      {"qwen3-qknorm-f32", 69, DType::F32, 0},
  };
  for (const Expect& e : expected) {
    WeightStore store = WeightStore::open(models + "/" + e.folder);
    CHECK_EQ(store.size(), e.tensors);
    if (e.total_bytes) CHECK_EQ(store.total_bytes(), e.total_bytes);
    for (const std::string& name : store.names()) {
      const TensorView& t = store.get(name);
      CHECK(t.dtype == e.dtype);
      tidal::check_finite(t);
    }
    CHECK_EQ(store.get("model.embed_tokens.weight", {512, 64}).numel(), 512 * 64);
  }
  // Spot values read independently from the files.
  WeightStore bf16 = WeightStore::open(models + "/llama2-mha-bf16");
  std::vector<float> q = to_f32(bf16.get("model.layers.0.self_attn.q_proj.weight", {64, 64}));
  CHECK_EQ(q[0], -0.1103515625f);
  CHECK_EQ(q[1], 0.0185546875f);
  CHECK_EQ(q[5], 0.2470703125f);
  WeightStore f16 = WeightStore::open(models + "/mistral-gqa-f16");
  q = to_f32(f16.get("model.layers.0.self_attn.q_proj.weight", {64, 64}));
  CHECK_EQ(q[0], 0.199462890625f);
  CHECK_EQ(q[1], -0.089599609375f);
  CHECK_EQ(q[5], 0.113525390625f);
  WeightStore f32 = WeightStore::open(models + "/llama3-gqa-f32");
  q = to_f32(f32.get("model.layers.0.self_attn.q_proj.weight", {64, 64}));
  CHECK_EQ(q[0], 0.18399940431118011f);
  CHECK_EQ(q[5], -0.17988692224025726f);
  CHECK_EQ(f32.get("model.layers.0.self_attn.k_proj.weight").shape[0], 32);  // 2 kv heads x 16

  WeightStore qwen2 = WeightStore::open(models + "/qwen2-tied-sharded-f32");
  CHECK(!qwen2.has("lm_head.weight"));  // tied to the embedding
  CHECK_EQ(qwen2.get("model.layers.5.self_attn.q_proj.bias", {64}).bytes, size_t(256));
  CHECK(!qwen2.has("model.layers.0.self_attn.o_proj.bias"));
  WeightStore qwen3 = WeightStore::open(models + "/qwen3-qknorm-f32");
  CHECK_EQ(qwen3.get("model.layers.0.self_attn.q_norm.weight", {32}).numel(), 32);
  CHECK_EQ(qwen3.get("model.layers.0.self_attn.q_proj.weight", {128, 64}).numel(), 128 * 64);
}

TIDAL_TEST(check_finite_reports_first_nan_or_inf) {
  TempDir dir;
  std::vector<float> clean(3000, 0.5f);
  std::vector<float> with_nan = clean;
  with_nan[1500] = std::nanf("");
  with_nan[2000] = INFINITY;
  std::vector<uint16_t> half_with_inf = {0x3C00, 0x0001, 0x7BFF, 0x7C00, 0x7E00};
  std::vector<uint16_t> bf16_with_neg_inf = {0x3F80, 0xFF80};
  std::vector<uint16_t> half_extremes = {0x7BFF, 0xFBFF, 0x0001, 0x8000};  // finite edge values
  tidal_test::write_safetensors(dir.file("model.safetensors"),
                                {{"clean", "F32", {3000}, tidal_test::f32_bytes(clean)},
                                 {"w", "F32", {3, 1000}, tidal_test::f32_bytes(with_nan)},
                                 {"h", "F16", {5}, tidal_test::u16_bytes(half_with_inf)},
                                 {"b", "BF16", {2}, tidal_test::u16_bytes(bf16_with_neg_inf)},
                                 {"edges", "F16", {4}, tidal_test::u16_bytes(half_extremes)}});
  WeightStore store = WeightStore::open(dir.path());
  tidal::check_finite(store.get("clean"));
  tidal::check_finite(store.get("edges"));
  CHECK_THROWS_WITH(tidal::check_finite(store.get("w")), "tensor 'w' contains NaN/Inf at element 1500 (NaN");
  CHECK_THROWS_WITH(tidal::check_finite(store.get("h")), "tensor 'h' contains NaN/Inf at element 3 (+Inf");
  CHECK_THROWS_WITH(tidal::check_finite(store.get("b")), "tensor 'b' contains NaN/Inf at element 1 (-Inf");
  bool is_model_error = false;
  try {
    tidal::check_finite(store.get("w"));
  } catch (const tidal::ModelError&) {
    is_model_error = true;
  }
  CHECK(is_model_error);
}
