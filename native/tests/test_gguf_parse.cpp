// Well-formed GGUF files: every metadata value type, tensors of every readable ggml type,
// alignment, and the values that come back.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gguf_writer.h"
#include "harness.h"
#include "model/gguf.h"
#include "model/half.h"
#include "model/weight_store.h"
#include "safetensors_writer.h"
#include "tidal/error.h"

using tidal::GgufContents;
using tidal::GgufValueType;
using tidal_test::GgufWriter;

namespace {

GgufContents parse(const std::vector<uint8_t>& image) {
  return tidal::parse_gguf(image.data(), image.size(), "t.gguf");
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

}  // namespace

TIDAL_TEST(gguf_parse_reads_every_metadata_type) {
  GgufWriter w;
  w.add_u8("a.u8", 200);
  w.add_i8("a.i8", -100);
  w.add_u16("a.u16", 60000);
  w.add_i16("a.i16", -30000);
  w.add_u32("a.u32", 4000000000u);
  w.add_i32("a.i32", -2000000000);
  w.add_u64("a.u64", 18000000000000000000ull);
  w.add_i64("a.i64", -9000000000000000000ll);
  w.add_f32("a.f32", 0.15625f);
  w.add_f64("a.f64", -1e-300);
  w.add_bool("a.true", true);
  w.add_bool("a.false", false);
  w.add_string("a.string", std::string("h\0llo", 5));
  w.add_string("a.empty", "");
  w.add_string_array("a.strings", {"x", "", "yz"});
  w.add_f32_array("a.floats", {1.5f, -2.0f});
  w.add_i32_array("a.empty_array", {});
  // An array of two arrays of u16: [[1, 2], [3]].
  std::vector<uint8_t> inner1 = GgufWriter::array_value(tidal_test::kGgufU16, 2, {1, 0, 2, 0});
  std::vector<uint8_t> inner2 = GgufWriter::array_value(tidal_test::kGgufU16, 1, {3, 0});
  std::vector<uint8_t> both(inner1);
  both.insert(both.end(), inner2.begin(), inner2.end());
  w.add_raw("a.nested", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufArray, 2, both));

  for (uint32_t version : {2u, 3u}) {
    w.version = version;
    GgufContents c = parse(w.bytes());
    CHECK_EQ(c.version, version);
    CHECK_EQ(c.metadata.size(), 18u);
    CHECK_EQ(c.metadata_keys.front(), "a.u8");
    CHECK_EQ(c.metadata_keys.back(), "a.nested");
    CHECK_EQ(c.find("a.u8")->as_int("k"), 200);
    CHECK(c.find("a.u8")->type == GgufValueType::U8);
    CHECK_EQ(c.find("a.i8")->as_int("k"), -100);
    CHECK_EQ(c.find("a.u16")->as_int("k"), 60000);
    CHECK_EQ(c.find("a.i16")->as_int("k"), -30000);
    CHECK_EQ(c.find("a.u32")->as_int("k"), 4000000000ll);
    CHECK_EQ(c.find("a.i32")->as_int("k"), -2000000000);
    CHECK_EQ(c.find("a.u64")->unsigned_value, 18000000000000000000ull);
    CHECK_THROWS_WITH(c.find("a.u64")->as_int("a.u64"), "too large");
    CHECK_EQ(c.find("a.i64")->as_int("k"), -9000000000000000000ll);
    CHECK_EQ(c.find("a.f32")->as_double("k"), 0.15625);
    CHECK_EQ(c.find("a.f64")->as_double("k"), -1e-300);
    CHECK_EQ(c.find("a.true")->as_bool("k"), true);
    CHECK_EQ(c.find("a.false")->as_bool("k"), false);
    CHECK_EQ(c.find("a.string")->as_string("k"), std::string("h\0llo", 5));
    CHECK_EQ(c.find("a.empty")->as_string("k"), "");
    const tidal::GgufValue* strings = c.find("a.strings");
    CHECK(strings->is_array() && strings->element_type == GgufValueType::String);
    CHECK_EQ(strings->size(), 3u);
    CHECK_EQ(strings->item(2).text, "yz");
    CHECK_EQ(strings->string_item(1), "");
    CHECK_EQ(strings->string_item(0), "x");
    CHECK_EQ(c.find("a.floats")->item(1).float_value, -2.0);
    CHECK(c.find("a.floats")->item(0).type == GgufValueType::F32);
    CHECK_EQ(c.find("a.empty_array")->size(), 0u);
    CHECK_THROWS_WITH(c.find("a.floats")->item(2), "out of range");
    const tidal::GgufValue* nested = c.find("a.nested");
    CHECK_EQ(nested->size(), 2u);
    CHECK_EQ(nested->item(0).item(1).unsigned_value, 2u);
    CHECK_EQ(nested->item(1).item(0).unsigned_value, 3u);
    CHECK(nested->item(1).item(0).type == GgufValueType::U16);
    CHECK_EQ(nested->describe(), "array of 2 array");
    CHECK_THROWS_WITH(c.find("a.string")->as_int("a.string"), "'a.string' must be an integer");
    CHECK(c.tensors.empty());
  }
}

TIDAL_TEST(gguf_parse_reads_tensors_of_every_readable_type) {
  const std::vector<float> f32 = random_values(2 * 64, 1);
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_tensor("t.f32", tidal_test::kGgmlF32, {64, 2}, tidal_test::f32_bytes(f32));
  w.add_tensor("t.f16", tidal_test::kGgmlF16, {64, 2}, tidal_test::f16_bytes(f32));
  w.add_tensor("t.bf16", tidal_test::kGgmlBF16, {64, 2}, tidal_test::bf16_bytes(f32));
  w.add_tensor("t.q8_0", tidal_test::kGgmlQ8_0, {64, 3}, random_bytes(6 * 34, 2));
  w.add_tensor("t.q4_k", tidal_test::kGgmlQ4_K, {256, 1, 2}, random_bytes(2 * 144, 3));
  w.add_tensor("t.q6_k", tidal_test::kGgmlQ6_K, {512, 1, 1, 2}, random_bytes(4 * 210, 4));
  w.add_tensor("t.q2_k", tidal_test::kGgmlQ2_K, {256}, random_bytes(84, 5));
  w.add_tensor("t.empty", tidal_test::kGgmlF32, {0, 4}, {});
  const std::vector<uint8_t> image = w.bytes();
  GgufContents c = parse(image);
  CHECK_EQ(c.alignment, 32u);
  CHECK_EQ(c.data_offset % 32, 0u);
  CHECK(c.data_offset >= w.header_end());
  CHECK_EQ(c.tensors.size(), 8u);
  CHECK_EQ(c.tensors[0].name, "t.f32");

  const tidal::GgufTensorInfo* q4k = c.find_tensor("t.q4_k");
  CHECK(q4k->type == tidal::GgmlType::Q4_K);
  CHECK_EQ(q4k->ne.size(), 3u);
  CHECK_EQ(tidal::shape_string(q4k->shape()), "[2, 1, 256]");
  CHECK_EQ(q4k->numel, 512);
  CHECK_EQ(q4k->bytes, 288u);
  CHECK_EQ(q4k->data - image.data(), static_cast<std::ptrdiff_t>(c.data_offset + q4k->offset));
  CHECK_EQ(std::memcmp(q4k->data, random_bytes(288, 3).data(), 288), 0);
  CHECK_EQ(c.find_tensor("t.q6_k")->bytes, 840u);
  CHECK_EQ(c.find_tensor("t.q8_0")->bytes, 204u);
  CHECK_EQ(c.find_tensor("t.empty")->bytes, 0u);
  CHECK(c.find_tensor("missing") == nullptr);
  for (const tidal::GgufTensorInfo& t : c.tensors) CHECK_EQ(t.offset % 32, 0u);

  std::vector<float> out(128);
  for (const char* name : {"t.f32", "t.f16", "t.bf16"}) {
    tidal::gguf_tensor_to_f32(*c.find_tensor(name), out.data());
    for (size_t i = 0; i < f32.size(); ++i) {
      float expected = f32[i];
      if (std::string(name) == "t.f16") expected = tidal::f16_to_f32(tidal::f32_to_f16(f32[i]));
      if (std::string(name) == "t.bf16") expected = tidal::bf16_to_f32(tidal::f32_to_bf16(f32[i]));
      CHECK_EQ(out[i], expected);
    }
  }
  std::vector<float> big(1024);
  tidal::gguf_tensor_to_f32(*c.find_tensor("t.q6_k"), big.data());  // any bytes decode to finite values
  for (size_t i = 0; i < 1024; ++i) CHECK(std::isfinite(big[i]));
  CHECK_THROWS_WITH(tidal::gguf_tensor_to_f32(*c.find_tensor("t.q2_k"), big.data()), "tensor 't.q2_k': cannot convert");
}

TIDAL_TEST(gguf_parse_honours_general_alignment) {
  GgufWriter w;
  w.set_alignment(64);
  w.add_tensor("a", tidal_test::kGgmlF32, {3}, tidal_test::f32_bytes({1, 2, 3}));
  w.add_tensor("b", tidal_test::kGgmlF32, {1}, tidal_test::f32_bytes({4}));
  const std::vector<uint8_t> image = w.bytes();  // tensor data points into it
  GgufContents c = parse(image);
  CHECK_EQ(c.alignment, 64u);
  CHECK_EQ(c.data_offset % 64, 0u);
  CHECK_EQ(c.find_tensor("b")->offset, 64u);
  float b;
  std::memcpy(&b, c.find_tensor("b")->data, 4);
  CHECK_EQ(b, 4.0f);
}

TIDAL_TEST(gguf_file_opens_from_disk) {
  tidal_test::TempDir dir;
  GgufWriter w;
  w.add_string("general.name", "tiny");
  w.add_tensor("x", tidal_test::kGgmlF32, {2}, tidal_test::f32_bytes({5, 6}));
  tidal_test::write_bytes(dir.file("m.gguf"), w.bytes());
  tidal::GgufFile file = tidal::GgufFile::open(dir.file("m.gguf"));
  CHECK_EQ(file.find("general.name")->as_string("general.name"), "tiny");
  float x[2];
  tidal::gguf_tensor_to_f32(*file.find_tensor("x"), x);
  CHECK_EQ(x[1], 6.0f);
  CHECK_THROWS_WITH(tidal::GgufFile::open(dir.file("absent.gguf")), "cannot open");
}

TIDAL_TEST(gguf_parse_reads_scalar_arrays_of_every_type) {
  GgufWriter w;
  w.add_raw("i8", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufI8, 2, {0xFF, 0x7F}));
  w.add_raw("i16", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufI16, 1, {0x00, 0x80}));
  w.add_raw("i64", tidal_test::kGgufArray,
            GgufWriter::array_value(tidal_test::kGgufI64, 1, {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
  w.add_raw("u64", tidal_test::kGgufArray,
            GgufWriter::array_value(tidal_test::kGgufU64, 1, {1, 0, 0, 0, 0, 0, 0, 0x80}));
  w.add_raw("bool", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufBool, 3, {1, 0, 1}));
  std::vector<uint8_t> f64;
  tidal_test::put_f64(f64, 2.5);
  w.add_raw("f64", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufF64, 1, f64));
  w.add_i32_array("i32", {-7, 2147483647});
  const std::vector<uint8_t> image = w.bytes();
  GgufContents c = parse(image);
  CHECK_EQ(c.find("i8")->item(0).as_int("k"), -1);
  CHECK_EQ(c.find("i8")->item(1).as_int("k"), 127);
  CHECK_EQ(c.find("i16")->item(0).as_int("k"), -32768);
  CHECK_EQ(c.find("i64")->item(0).as_int("k"), -2);
  CHECK_EQ(c.find("u64")->item(0).unsigned_value, 0x8000000000000001ull);
  CHECK_EQ(c.find("bool")->item(1).as_bool("k"), false);
  CHECK_EQ(c.find("bool")->item(2).as_bool("k"), true);
  CHECK_EQ(c.find("f64")->item(0).as_double("k"), 2.5);
  CHECK_EQ(c.find("i32")->item(0).as_int("k"), -7);
  CHECK_EQ(c.find("i32")->item(1).as_int("k"), 2147483647);
  CHECK_EQ(c.find("i32")->describe(), "array of 2 i32");
}
