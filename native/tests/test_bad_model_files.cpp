// Every defect a downloaded or hand-edited model folder can have should end in a
// tidal::ModelError that says what is wrong, never in a crash or an out-of-bounds read.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "model/safetensors.h"
#include "model/weight_store.h"
#include "safetensors_writer.h"
#include "tidal/error.h"

using tidal::WeightStore;
using tidal_test::TempDir;

namespace {

// Parses a header + data image; returns the error text, or "" when it loads.
std::string load_error(const std::vector<uint8_t>& image) {
  // A heap copy of exactly image.size() bytes, so an overread would leave the allocation.
  std::vector<uint8_t> exact(image);
  try {
    tidal::parse_safetensors(exact.data(), exact.size(), "t.safetensors");
    return "";
  } catch (const tidal::Error& e) {
    return e.what();
  }
}

std::vector<uint8_t> raw(const std::string& header, size_t data_bytes) {
  return tidal_test::raw_safetensors_bytes(header, std::vector<uint8_t>(data_bytes, 0));
}

std::vector<uint8_t> with_length(uint64_t n, const std::string& rest) {
  std::vector<uint8_t> out(8 + rest.size());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  if (!rest.empty()) std::memcpy(out.data() + 8, rest.data(), rest.size());
  return out;
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

// A valid image with metadata and tensors of every dtype, for the corruption fuzzers.
std::vector<uint8_t> valid_image() {
  return tidal_test::safetensors_bytes(
      {{"model.embed_tokens.weight", "BF16", {4, 3}, tidal_test::bf16_bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})},
       {"model.norm.weight", "F32", {3}, tidal_test::f32_bytes({0.5f, 1.5f, 2.5f})},
       {"lm_head.weight", "F16", {2, 3}, tidal_test::f16_bytes({-1, -2, -3, 4, 5, 6})},
       {"empty", "F32", {0}, {}}},
      {{"format", "pt"}});
}

}  // namespace

TIDAL_TEST(bad_safetensors_length_prefix) {
  CHECK_LOAD_ERROR(std::vector<uint8_t>{}, "'t.safetensors' is 0 bytes long, too short for a safetensors file");
  CHECK_LOAD_ERROR(std::vector<uint8_t>(7, 0), "is 7 bytes long, too short");
  CHECK_LOAD_ERROR(with_length(100000001, "{}"), "header length 100000001 exceeds the 100000000-byte limit");
  CHECK_LOAD_ERROR(with_length(UINT64_MAX, "{}"), "header length 18446744073709551615 exceeds");
  CHECK_LOAD_ERROR(with_length(1000, std::string(92, ' ')),
                   "header length 1000 runs past the end of the file (100 bytes); the file is truncated or corrupt");
  CHECK_LOAD_ERROR(with_length(3, "{}"), "runs past the end of the file (10 bytes)");
  CHECK_LOAD_ERROR(
      with_length(0, ""),
      "the safetensors header is not valid JSON: invalid JSON at line 1, column 1 (byte 0): expected a value");
  // An empty header object is a valid, empty file.
  CHECK_EQ(load_error(with_length(2, "{}")), std::string(""));
  // Well-known impostors get a message of their own.
  std::string lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n";
  CHECK_LOAD_ERROR(std::vector<uint8_t>(lfs.begin(), lfs.end()),
                   "is a Git LFS pointer, not the weights: run 'git lfs pull'");
  std::string gguf = std::string("GGUF\x03\0\0\0", 8) + std::string(64, '\0');
  CHECK_LOAD_ERROR(std::vector<uint8_t>(gguf.begin(), gguf.end()), "is a GGUF file, not safetensors");
  std::string zip = std::string("PK\x03\x04", 4) + std::string(64, '\0');
  CHECK_LOAD_ERROR(std::vector<uint8_t>(zip.begin(), zip.end()), "is a zip archive (a PyTorch checkpoint?)");
}

TIDAL_TEST(bad_safetensors_header_json) {
  CHECK_LOAD_ERROR(raw("{\"w\": {\"dtype\": \"F32\",", 0), "the safetensors header is not valid JSON");
  CHECK_LOAD_ERROR(raw("[1, 2]", 0), "the safetensors header must be a JSON object, found an array");
  CHECK_LOAD_ERROR(raw("{\"w\": 5}", 0), "tensor 'w' entry must be an object, found integer 5");
  CHECK_LOAD_ERROR(raw(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4), "tensor 'w' has no 'dtype'");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": 1, "shape": [1], "data_offsets": [0, 4]}})", 4),
                   "'dtype' that is not a string");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), "tensor 'w' has no 'shape'");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1]}})", 4), "tensor 'w' has no 'data_offsets'");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4),
                   "'shape' that is not an array");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
                   "'data_offsets' that are not [begin, end] with non-negative integers");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4),
                   "non-negative integers");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}})", 4),
                   "non-negative integers");
  CHECK_LOAD_ERROR(raw(R"({"__metadata__": {"format": 1}})", 0),
                   "__metadata__ entry 'format' must be a string, found integer 1");
  CHECK_LOAD_ERROR(raw(R"({"__metadata__": []})", 0), "__metadata__ must be an object of strings");
  // Two entries of one name: the JSON reader refuses duplicate keys.
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                          "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                       8),
                   "duplicate key \"w\"");
  CHECK_LOAD_ERROR(
      raw(std::string("{\"w\":{\"dtype\":\"F32\",\"shape\":") + std::string(20, '[') + std::string(20, ']') + "}}", 0),
      "nested deeper than 8 levels");
}

TIDAL_TEST(bad_safetensors_dtype_shape_offsets) {
  CHECK_LOAD_ERROR(
      raw(R"({"model.layers.0.mlp.up_proj.qweight": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8),
      "'t.safetensors': tensor 'model.layers.0.mlp.up_proj.qweight' has dtype 'I64', which is not supported; "
      "supported dtypes: F32, F16, BF16");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", 1), "dtype 'F8_E4M3'");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4), "dtype 'f32'");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 0]}})", 0),
                   "tensor 'w' has a negative shape entry -2");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [2, 1.5], "data_offsets": [0, 0]}})", 0),
                   "shape entry that is not an integer: number 1.5");
  CHECK_LOAD_ERROR(
      raw(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 0]}})", 0),
      "tensor 'w' has shape [4294967296, 4294967296]..., whose element count overflows 64 bits");
  // Element count fits 64 bits but times 4 bytes it does not.
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 2], "data_offsets": [0, 0]}})", 0),
                   "needs more bytes than the data section holds (0)");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}})", 16),
                   "has shape [1000000] x F32, which needs more bytes than the data section holds (16)");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]}})", 4),
                   "has 9 dimensions; at most 8 are supported");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 16),
                   "tensor 'w' has data_offsets [8, 4] with end before begin");
  CHECK_LOAD_ERROR(
      raw(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}})", 16),
      "tensor 'w' has data_offsets [12, 20] past the end of the data section (16 bytes); the file is truncated");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 16),
                   "tensor 'w' has data_offsets [0, 8] spanning 8 bytes, but shape [3] x F32 needs 12 bytes");
  CHECK_LOAD_ERROR(raw(R"({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 12]}})", 16),
                   "spanning 12 bytes, but shape [3] x BF16 needs 6 bytes");
  CHECK_LOAD_ERROR(raw(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                       16),
                   "tensors 'a' [0, 8) and 'b' [4, 12) overlap in the data section");
  // Order in the header does not matter for the overlap check.
  CHECK_LOAD_ERROR(raw(R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]},
                          "c": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                          "a": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]}})",
                       20),
                   "tensors 'c' [0, 16) and 'b' [12, 16) overlap");
  // Empty tensors take no bytes, so they overlap nothing; gaps between tensors are allowed.
  CHECK_EQ(load_error(raw(R"({"e1": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
                            "e2": {"dtype": "F16", "shape": [0, 5], "data_offsets": [4, 4]},
                            "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                          12)),
           std::string(""));
}

TIDAL_TEST(bad_model_folders) {
  CHECK_THROWS_WITH(WeightStore::open("/nonexistent-tidal-model-folder"),
                    "model folder '/nonexistent-tidal-model-folder' does not exist");
  TempDir dir;
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "no model weights in '" + dir.path() +
                        "': looked for model.safetensors and model.safetensors.index.json; the folder holds no "
                        "*.safetensors, *.bin or *.gguf files");
  tidal_test::write_text(dir.file("config.json"), "{}");
  CHECK_THROWS_WITH(WeightStore::open(dir.file("config.json")), "is not a folder");
  tidal_test::write_text(dir.file("pytorch_model.bin"), "pickle");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "found pytorch_model.bin: PyTorch pickle checkpoints are not supported, convert to safetensors");
  tidal_test::write_text(dir.file("model-q4_k_m.gguf"), "GGUF");
  tidal_test::write_text(dir.file("consolidated.safetensors"), "x");
  std::string message;
  try {
    WeightStore::open(dir.path());
  } catch (const tidal::ModelError& e) {
    message = e.what();
  }
  CHECK(contains(message, "found model-q4_k_m.gguf: GGUF files are not supported"));
  CHECK(contains(message,
                 "found consolidated.safetensors: safetensors files under other names are loaded only when "
                 "model.safetensors.index.json lists them"));
  CHECK(contains(message, "found pytorch_model.bin: PyTorch pickle"));

  // Files that exist but are broken.
  tidal_test::write_bytes(dir.file("model.safetensors"), {});
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "model.safetensors' is 0 bytes long, too short for a safetensors file");
  CHECK_THROWS_WITH(WeightStore::open_file(dir.file("missing.safetensors")),
                    "cannot open '" + dir.file("missing.safetensors") + "'");
  CHECK_THROWS_WITH(WeightStore::open_file(dir.path()), "is not a regular file");
  // The header cap holds even for a file larger than the cap (sparse, so no disk is used).
  std::vector<uint8_t> big = with_length(150000000, "{}");
  tidal_test::write_bytes(dir.file("model.safetensors"), big);
  CHECK_EQ(::truncate(dir.file("model.safetensors").c_str(), 160000000), 0);
  CHECK_THROWS_WITH(WeightStore::open(dir.path()), "header length 150000000 exceeds the 100000000-byte limit");
}

TIDAL_TEST(bad_sharded_checkpoints) {
  auto shard = [](const std::string& name) {
    return std::vector<tidal_test::TensorSpec>{{name, "F32", {2}, tidal_test::f32_bytes({1, 2})}};
  };
  TempDir dir;
  tidal_test::write_safetensors(dir.file("a.safetensors"), shard("x"));
  tidal_test::write_safetensors(dir.file("b.safetensors"), shard("y"));
  const std::string index = dir.file("model.safetensors.index.json");

  // Path traversal and sub-folders are refused before anything is opened.
  for (const char* evil :
       {"../a.safetensors", "sub/a.safetensors", "/etc/passwd", "..", "a..safetensors", "x\\\\y", ""}) {
    tidal_test::write_text(index, std::string(R"({"weight_map": {"x": ")") + evil + R"("}})");
    CHECK_THROWS_WITH(WeightStore::open(dir.path()), "which is not a plain file name inside the model folder");
  }
  tidal_test::write_text(index,
                         R"({"weight_map": {"x": "a.safetensors", "y": "b.safetensors", "z": "b.safetensors"}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "tensor 'z' is listed in '" + index + "' under 'b.safetensors', but that file does not contain it");
  tidal_test::write_text(index,
                         R"({"weight_map": {"x": "b.safetensors", "y": "b.safetensors", "q": "a.safetensors"}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()), "tensor 'x' is listed in '" + index +
                                                       "' under 'b.safetensors', but it is stored in '" +
                                                       dir.file("a.safetensors") + "'");
  tidal_test::write_text(index, R"({"weight_map": {"x": "a.safetensors", "y": "c.safetensors"}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "shard 'c.safetensors' listed in '" + index + "' is missing from the folder");
  tidal_test::write_safetensors(dir.file("c.safetensors"), shard("x"));
  tidal_test::write_text(index, R"({"weight_map": {"x": "a.safetensors", "y": "c.safetensors"}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()), "tensor 'x' appears in both '" + dir.file("a.safetensors") +
                                                       "' and '" + dir.file("c.safetensors") + "'");
  tidal_test::write_text(index, R"({"weight_map": {"x": "a.safetensors", "x": "a.safetensors"}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "is not valid JSON: invalid JSON at line 1, column 16 (byte 15): duplicate key \"x\"");
  tidal_test::write_text(index, R"({"weight_map": ["a.safetensors"]})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()), "has no \"weight_map\" object");
  tidal_test::write_text(index, R"({"weight_map": {}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()), "has an empty \"weight_map\"");
  tidal_test::write_text(index, R"({"weight_map": {"x": 3}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "weight_map entry for tensor 'x' must be a file name, found integer 3");
  tidal_test::write_text(index, R"({"weight_map": {"x": "a.safetensors")");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()), "is not valid JSON");
  // A corrupt shard is reported with its own path.
  tidal_test::write_bytes(dir.file("b.safetensors"), with_length(500, "{}"));
  tidal_test::write_text(index, R"({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})");
  CHECK_THROWS_WITH(WeightStore::open(dir.path()),
                    "'" + dir.file("b.safetensors") + "': header length 500 runs past the end");
  // And a good index loads, each shard once.
  tidal_test::write_safetensors(dir.file("b.safetensors"), shard("y"));
  WeightStore store = WeightStore::open(dir.path());
  CHECK_EQ(store.size(), size_t(2));
}

TIDAL_TEST(safetensors_truncation_at_every_offset_fails_cleanly) {
  const std::vector<uint8_t> image = valid_image();
  CHECK_EQ(load_error(image), std::string(""));
  int rejected = 0;
  for (size_t length = 0; length < image.size(); ++length) {
    std::vector<uint8_t> cut(image.begin(), image.begin() + static_cast<long>(length));
    if (!load_error(cut).empty()) ++rejected;
  }
  // The last tensor ends at the last byte, so every shorter file is defective.
  CHECK_EQ(rejected, static_cast<int>(image.size()));

  // The same through real files, every 7th length.
  TempDir dir;
  for (size_t length = 0; length < image.size(); length += 7) {
    tidal_test::write_bytes(dir.file("model.safetensors"),
                            std::vector<uint8_t>(image.begin(), image.begin() + static_cast<long>(length)));
    bool threw = false;
    try {
      WeightStore::open(dir.path());
    } catch (const tidal::ModelError&) {
      threw = true;
    }
    CHECK(threw);
  }
}

TIDAL_TEST(safetensors_header_corruption_never_crashes) {
  const std::vector<uint8_t> image = valid_image();
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | image[i];
  const size_t header_end = 8 + static_cast<size_t>(header_length);

  // Any successful load must describe tensors inside the buffer with consistent sizes.
  auto check_consistent = [](const std::vector<uint8_t>& bytes) -> bool {
    try {
      auto contents = tidal::parse_safetensors(bytes.data(), bytes.size(), "fuzz");
      for (const auto& t : contents.tensors) {
        const uint8_t* p = static_cast<const uint8_t*>(t.data);
        if (p < bytes.data() + contents.data_offset || p + t.bytes > bytes.data() + bytes.size()) return false;
        if (static_cast<size_t>(t.numel()) * tidal::dtype_size(t.dtype) != t.bytes) return false;
      }
      return true;
    } catch (const tidal::Error&) {
      return true;
    } catch (...) {
      return false;
    }
  };

  int inconsistent = 0;
  // Every header byte (length prefix included) set to several values.
  const uint8_t replacements[] = {0x00, 0x01, 0x20, 0x22, 0x2C, 0x30, 0x39, 0x5B, 0x5D, 0x7B, 0x7D, 0x80, 0xFF};
  for (size_t at = 0; at < header_end; ++at) {
    for (uint8_t value : replacements) {
      std::vector<uint8_t> bytes = image;
      bytes[at] = value;
      if (!check_consistent(bytes)) ++inconsistent;
    }
    std::vector<uint8_t> flipped = image;
    flipped[at] ^= 0x08;  // turns digits into other digits or punctuation
    if (!check_consistent(flipped)) ++inconsistent;
  }
  // Random multi-byte corruption, header and data.
  std::mt19937 rng(77);
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> bytes = image;
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (round % 2 ? header_end : bytes.size());
      bytes[at] = static_cast<uint8_t>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    if (!check_consistent(bytes)) ++inconsistent;
  }
  CHECK_EQ(inconsistent, 0);
}
