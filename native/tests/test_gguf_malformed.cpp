// Every defect a GGUF file can have should end in a tidal::ModelError that says what is
// wrong, never in a crash, an out-of-bounds read or an allocation sized by a corrupt count.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gguf_writer.h"
#include "harness.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "safetensors_writer.h"
#include "tidal/error.h"

using tidal_test::GgufTensorEntry;
using tidal_test::GgufWriter;

namespace {

// Parses an image (and, when it parses, builds the model config and tokenizer metadata and
// converts every convertible tensor); returns the error text, or "" on success. Any
// exception other than tidal::Error is a test failure.
std::string load_error(const std::vector<uint8_t>& image, bool* clean = nullptr) {
  std::vector<uint8_t> exact(image);  // a heap copy of exactly the image, so overreads leave it
  if (clean) *clean = true;
  try {
    tidal::GgufContents c = tidal::parse_gguf(exact.data(), exact.size(), "t.gguf");
    for (const tidal::GgufTensorInfo& t : c.tensors) {
      const tidal::GgmlTypeInfo* info = tidal::ggml_type_info(static_cast<uint32_t>(t.type));
      if (info->dequantizable && t.numel <= (1 << 20)) {
        std::vector<float> out(static_cast<size_t>(t.numel));
        tidal::gguf_tensor_to_f32(t, out.data());
      }
    }
    if (c.find("general.architecture")) {
      tidal::gguf_model_config(c);
      tidal::read_gguf_tokenizer(c);
    }
    return "";
  } catch (const tidal::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    if (clean) *clean = false;
    return std::string("unexpected exception: ") + e.what();
  }
}

bool contains(const std::string& text, const std::string& fragment) { return text.find(fragment) != std::string::npos; }

#define CHECK_LOAD_ERROR(image, fragment)                                                             \
  do {                                                                                                \
    std::string tidal_error_ = load_error(image);                                                     \
    if (!contains(tidal_error_, fragment))                                                            \
      ::tidal_test::record_failure(                                                                   \
          __FILE__, __LINE__,                                                                         \
          std::string("expected error containing '") + (fragment) + "', got '" + tidal_error_ + "'"); \
  } while (0)

std::vector<uint8_t> header(uint32_t version, uint64_t tensors, uint64_t metadata) {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  tidal_test::put_u32(out, version);
  tidal_test::put_u64(out, tensors);
  tidal_test::put_u64(out, metadata);
  return out;
}

std::vector<uint8_t> f32_tensor(size_t n) { return tidal_test::f32_bytes(std::vector<float>(n, 0.5f)); }

// A small but complete llama file with tokenizer metadata, for the corruption fuzzers.
std::vector<uint8_t> valid_model_image() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 1);
  w.add_u32("llama.embedding_length", 8);
  w.add_u32("llama.feed_forward_length", 16);
  w.add_u32("llama.attention.head_count", 2);
  w.add_u32("llama.attention.head_count_kv", 1);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_u32("llama.context_length", 128);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "d"});
  w.add_f32_array("tokenizer.ggml.scores", {0, -1, -2, -3});
  w.add_i32_array("tokenizer.ggml.token_type", {1, 1, 3, 3});
  w.add_string_array("tokenizer.ggml.merges", {"a b"});
  w.add_u32("tokenizer.ggml.bos_token_id", 2);
  w.add_u32("tokenizer.ggml.eos_token_id", 3);
  w.add_string("tokenizer.chat_template", "{{ messages }}");
  w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {8, 4}, f32_tensor(32));
  w.add_tensor("blk.0.attn_q.weight", tidal_test::kGgmlF32, {8, 8}, f32_tensor(64));
  w.add_tensor("blk.0.attn_k.weight", tidal_test::kGgmlF32, {8, 4}, f32_tensor(32));
  w.add_tensor("blk.0.ffn_down.weight", tidal_test::kGgmlQ8_0, {32, 1}, std::vector<uint8_t>(34, 0x11));
  w.add_tensor("blk.0.ffn_up.weight", tidal_test::kGgmlQ4_K, {256, 1}, std::vector<uint8_t>(144, 0x35));
  w.add_tensor("blk.0.ffn_gate.weight", tidal_test::kGgmlQ6_K, {256, 1}, std::vector<uint8_t>(210, 0x7A));
  w.add_tensor("output_norm.weight", tidal_test::kGgmlF16, {8}, tidal_test::f16_bytes(std::vector<float>(8, 1.0f)));
  return w.bytes();
}

}  // namespace

TIDAL_TEST(gguf_malformed_bad_magic_says_what_was_found) {
  CHECK_LOAD_ERROR(std::vector<uint8_t>({'G', 'G'}), "too short to hold the magic");
  CHECK_LOAD_ERROR(std::vector<uint8_t>({}), "0 bytes");
  CHECK_LOAD_ERROR(std::vector<uint8_t>({'A', 'B', 'C', 'D', 0, 0, 0, 0}), "found \"ABCD\"");
  CHECK_LOAD_ERROR(tidal_test::safetensors_bytes({{"x", "F32", {1}, f32_tensor(1)}}), "looks like a safetensors file");
  CHECK_LOAD_ERROR(std::vector<uint8_t>({'P', 'K', 3, 4, 20, 0}), "PyTorch checkpoint (zip archive)");
  CHECK_LOAD_ERROR(std::vector<uint8_t>({0x80, 0x02, 0x7d, 0x71}), "pickled PyTorch");
  CHECK_LOAD_ERROR(std::vector<uint8_t>({0x80, 0x02, 0x7d, 0x71}), "found 80 02 7d 71");
}

TIDAL_TEST(gguf_malformed_versions_and_counts) {
  CHECK_LOAD_ERROR(header(1, 0, 0), "unsupported GGUF version 1; supported: 2, 3");
  CHECK_LOAD_ERROR(header(4, 0, 0), "unsupported GGUF version 4");
  CHECK_LOAD_ERROR(header(0x03000000u, 0, 0), "big-endian");
  CHECK_LOAD_ERROR(header(3, 0, 0), "");  // empty but valid
  CHECK_LOAD_ERROR(std::vector<uint8_t>({'G', 'G', 'U', 'F', 3, 0}), "truncated: version needs 4 bytes");
  CHECK_LOAD_ERROR(header(3, uint64_t(1) << 60, 0), "tensor count 1152921504606846976 is absurdly large");
  CHECK_LOAD_ERROR(header(3, 900000, 0), "tensor count 900000 is larger than the file allows");
  CHECK_LOAD_ERROR(header(3, 0, uint64_t(1) << 62),
                   "metadata count 4611686018427387904 is larger than the file allows");
  CHECK_LOAD_ERROR(header(3, 0, ~uint64_t(0)), "metadata count");
}

TIDAL_TEST(gguf_malformed_metadata_values) {
  {
    std::vector<uint8_t> image = header(3, 0, 1);
    tidal_test::put_u64(image, 1000);  // key length past the end
    tidal_test::put_u64(image, 0);
    CHECK_LOAD_ERROR(image, "metadata key of 1000 bytes runs past the end of the file");
  }
  {
    std::vector<uint8_t> image = header(3, 0, 1);
    tidal_test::put_u64(image, uint64_t(1) << 40);
    tidal_test::put_u64(image, 0);
    CHECK_LOAD_ERROR(image, "metadata key claims a length of 1099511627776 bytes, over the 65536-byte limit");
  }
  {
    GgufWriter w;
    std::vector<uint8_t> value;
    tidal_test::put_u64(value, uint64_t(1) << 40);
    w.add_raw("s", tidal_test::kGgufString, value);
    CHECK_LOAD_ERROR(w.bytes(), "string value claims a length of 1099511627776 bytes, over the 1073741824-byte limit");
  }
  {
    GgufWriter w;
    w.add_tensor(std::string(70000, 'n'), 0, {1}, f32_tensor(1));
    CHECK_LOAD_ERROR(w.bytes(), "tensor name claims a length of 70000 bytes, over the 65536-byte limit");
  }
  {
    GgufWriter w;
    w.add_raw("k", 13, {0, 0, 0, 0});
    CHECK_LOAD_ERROR(w.bytes(), "metadata key 'k' has unknown value type 13");
  }
  {
    GgufWriter w;
    std::vector<uint8_t> value;
    tidal_test::put_u64(value, 50);
    value.push_back('x');
    w.add_raw("s", tidal_test::kGgufString, value);
    CHECK_LOAD_ERROR(w.bytes(), "string value of 50 bytes runs past the end");
  }
  {
    GgufWriter w;
    w.add_raw("arr", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufU64, uint64_t(1) << 61, {}));
    CHECK_LOAD_ERROR(w.bytes(), "metadata key 'arr': array count 2305843009213693952 is larger than the file allows");
  }
  {
    GgufWriter w;
    w.add_raw("arr", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufString, 1000000, {}));
    CHECK_LOAD_ERROR(w.bytes(), "array count 1000000 is larger than the file allows");
  }
  {
    std::vector<uint8_t> deepest = GgufWriter::array_value(tidal_test::kGgufU8, 0, {});
    for (int i = 0; i < 9; ++i) deepest = GgufWriter::array_value(tidal_test::kGgufArray, 1, deepest);
    GgufWriter w;
    w.add_raw("deep", tidal_test::kGgufArray, deepest);
    CHECK_LOAD_ERROR(w.bytes(), "nests arrays more than 8 deep");
  }
  {
    GgufWriter w;
    w.add_raw("b", tidal_test::kGgufBool, {2});
    CHECK_LOAD_ERROR(w.bytes(), "holds bool byte 2");
  }
  {
    GgufWriter w;
    w.add_raw("bools", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufBool, 2, {0, 7}));
    CHECK_LOAD_ERROR(w.bytes(), "metadata key 'bools' holds bool byte 7");
  }
  {
    // 70000 empty nested arrays: each would be an object in memory, so their number is capped.
    std::vector<uint8_t> elements;
    const std::vector<uint8_t> empty = GgufWriter::array_value(tidal_test::kGgufU8, 0, {});
    for (int i = 0; i < 70000; ++i) elements.insert(elements.end(), empty.begin(), empty.end());
    GgufWriter w;
    w.add_raw("many", tidal_test::kGgufArray, GgufWriter::array_value(tidal_test::kGgufArray, 70000, elements));
    CHECK_LOAD_ERROR(w.bytes(), "holds more than 65536 nested arrays");
  }
  {
    GgufWriter w;
    w.add_u32("k", 1);
    w.add_u32("k", 2);
    CHECK_LOAD_ERROR(w.bytes(), "duplicate metadata key 'k'");
  }
  {
    GgufWriter w;
    w.add_u64("general.alignment", 32);
    CHECK_LOAD_ERROR(w.bytes(), "general.alignment must be a u32, found u64 32");
  }
  {
    GgufWriter w;
    w.add_u32("general.alignment", 24);
    CHECK_LOAD_ERROR(w.bytes(), "general.alignment = 24 is not a power of two");
  }
  {
    GgufWriter w;
    w.add_u32("general.alignment", 0);
    CHECK_LOAD_ERROR(w.bytes(), "general.alignment = 0 is not a power of two");
  }
}

TIDAL_TEST(gguf_malformed_tensor_infos) {
  auto one = [](GgufTensorEntry t) {
    GgufWriter w;
    w.add_tensor(std::move(t));
    return w.bytes();
  };
  CHECK_LOAD_ERROR(one({"t", 99, {4}, f32_tensor(4), {}, {}}),
                   "tensor 't' has ggml type id 99 (type 99), which is unknown");
  CHECK_LOAD_ERROR(one({"t", 16, {256}, std::vector<uint8_t>(66), {}, {}}), "ggml type id 16 (IQ2_XXS)");
  CHECK_LOAD_ERROR(one({"t", 0, {1, 1, 1, 1, 1}, f32_tensor(1), {}, {}}),
                   "tensor 't' has 5 dimensions (expected 1 to 4)");
  CHECK_LOAD_ERROR(one({"t", 0, {}, f32_tensor(1), {}, {}}), "tensor 't' has 0 dimensions");
  CHECK_LOAD_ERROR(one({"t", 0, {uint64_t(1) << 32, uint64_t(1) << 32}, {}, {}, {}}),
                   "the product of its dimensions overflows");
  CHECK_LOAD_ERROR(one({"t", 0, {~uint64_t(0)}, {}, {}, {}}), "the product of its dimensions overflows");
  CHECK_LOAD_ERROR(one({"t", 0, {uint64_t(1) << 62}, {}, {}, {}}), "its byte size overflows");
  CHECK_LOAD_ERROR(one({"t", 8, {30}, std::vector<uint8_t>(34), {}, {}}),
                   "rows of 30 values, not a multiple of its block size 32");
  CHECK_LOAD_ERROR(one({"t", 0, {4}, f32_tensor(4), uint64_t(8), {}}),
                   "data offset 8, not a multiple of the alignment 32");
  CHECK_LOAD_ERROR(one({"t", 0, {1000}, f32_tensor(4), {}, {}}),
                   "tensor 't' (4000 bytes at data offset 0) runs past the end of the file");
  CHECK_LOAD_ERROR(one({"t", 0, {4}, f32_tensor(4), uint64_t(1) << 40, {}}), "runs past the end of the file");
  CHECK_LOAD_ERROR(one({"t", 0, {4}, f32_tensor(4), ~uint64_t(0) & ~uint64_t(31), {}}),
                   "runs past the end of the file");
  {
    GgufWriter w;
    w.add_tensor("a.tensor.with.a.long.name", 0, {4}, f32_tensor(4));
    std::vector<uint8_t> full = w.bytes();
    full.resize(w.header_end() - 3);  // cut inside the offset field
    CHECK_LOAD_ERROR(full, "truncated: tensor offset needs 8 bytes");
  }
  {
    GgufWriter w;
    w.add_tensor("a", 0, {16}, f32_tensor(16));
    w.add_tensor({"b", 0, {8}, f32_tensor(8), uint64_t(32), {}});
    CHECK_LOAD_ERROR(w.bytes(), "tensors 'a' and 'b' overlap in the data section (bytes 0..64 and 32..64)");
  }
  {
    GgufWriter w;
    w.add_tensor("a", 0, {64}, f32_tensor(64));
    w.add_tensor({"e", 0, {0}, {}, uint64_t(32), {}});             // empty: overlaps nothing
    w.add_tensor({"b", 0, {8}, f32_tensor(8), uint64_t(64), {}});  // inside a, after an empty one
    CHECK_LOAD_ERROR(w.bytes(), "tensors 'a' and 'b' overlap");
  }
  {
    GgufWriter w;
    w.add_tensor("same", 0, {4}, f32_tensor(4));
    w.add_tensor("same", 0, {4}, f32_tensor(4));
    CHECK_LOAD_ERROR(w.bytes(), "duplicate tensor name 'same'");
  }
}

TIDAL_TEST(gguf_malformed_truncation_at_every_byte_is_clean) {
  const std::vector<uint8_t> image = valid_model_image();
  CHECK_EQ(load_error(image), "");
  size_t failures = 0, cases = 0;
  for (size_t cut = 0; cut < image.size(); ++cut) {
    bool clean = true;
    std::string error = load_error(std::vector<uint8_t>(image.begin(), image.begin() + cut), &clean);
    ++cases;
    if (!clean || (error.empty() && cut + 32 < image.size())) {
      if (++failures < 5)
        ::tidal_test::record_failure(__FILE__, __LINE__, "cut at " + std::to_string(cut) + ": '" + error + "'");
    }
  }
  CHECK(cases > 1000);
  CHECK_EQ(failures, 0u);
}

TIDAL_TEST(gguf_malformed_random_header_corruption_is_clean) {
  const std::vector<uint8_t> image = valid_model_image();
  std::mt19937 rng(12345);
  // The header is everything before the first tensor's data; find it by parsing.
  tidal::GgufContents c = tidal::parse_gguf(image.data(), image.size(), "t.gguf");
  const size_t header_bytes = c.data_offset;
  size_t failures = 0, rejected = 0;
  const int kCases = 6000;
  for (int trial = 0; trial < kCases; ++trial) {
    std::vector<uint8_t> corrupt(image);
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % header_bytes;
      switch (rng() % 4) {
        case 0:
          corrupt[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          corrupt[at] = 0xFF;
          break;
        case 2:
          corrupt[at] = 0x00;
          break;
        default:
          corrupt[at] = static_cast<uint8_t>(rng());
          break;
      }
    }
    bool clean = true;
    std::string error = load_error(corrupt, &clean);
    if (!error.empty()) ++rejected;
    if (!clean && ++failures < 5)
      ::tidal_test::record_failure(__FILE__, __LINE__, "trial " + std::to_string(trial) + ": " + error);
  }
  CHECK_EQ(failures, 0u);
  CHECK(rejected > kCases / 4);  // most corruptions are caught, the rest hit names or values
}
