// The GGUF container (versions 2 and 3, little-endian):
//
//   "GGUF" | u32 version | u64 tensor_count | u64 metadata_count
//   metadata_count x { string key | u32 value_type | value }
//   tensor_count   x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32)
//   data section: each tensor at data_start + offset, offsets multiples of the alignment
//
// A string is u64 length + bytes (no terminator). An array is u32 element_type + u64
// count + elements; arrays may nest. Dimensions are listed innermost first: ne[0] is the
// length of a row, so a Hugging Face [rows, cols] matrix is ne = {cols, rows}.
//
// parse_gguf checks every count, length and offset against the bytes that remain before
// using it, so a corrupt or hostile file ends in tidal::ModelError, never in a huge
// allocation or an out-of-bounds read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/quant.h"

namespace tidal {

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

// One metadata value. Scalars keep their type; the accessors convert where no information
// is lost and throw tidal::ModelError (naming `key`) otherwise.
//
// Array elements are stored compactly, so memory stays proportional to the file's bytes
// (a vocabulary of 150k tokens is one buffer, not 150k objects): scalar elements as their
// little-endian bytes, strings in one buffer with end offsets, nested arrays as values.
// Read them through size(), item() and string_item().
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType element_type = GgufValueType::U8;  // arrays only
  uint64_t unsigned_value = 0;                     // U8..U64, Bool
  int64_t signed_value = 0;                        // I8..I64
  double float_value = 0.0;                        // F32, F64
  std::string text;                                // String

  // Array storage (see above); `count` elements of element_type.
  size_t count = 0;
  std::vector<uint8_t> scalar_bytes;  // scalar elements, back to back
  std::string string_bytes;           // string elements, concatenated
  std::vector<size_t> string_ends;    // end of each string element in string_bytes
  std::vector<GgufValue> nested;      // array elements

  // Number of elements of an array; 0 for a scalar.
  size_t size() const { return type == GgufValueType::Array ? count : 0; }
  // Element i of an array as a value of element_type. Throws tidal::Error when out of range.
  GgufValue item(size_t i) const;
  // Element i of an array of strings, without a copy.
  std::string_view string_item(size_t i) const;

  bool is_array() const { return type == GgufValueType::Array; }
  bool is_string() const { return type == GgufValueType::String; }
  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }

  // An integer value (any integer type) that fits int64; `key` names it in errors.
  int64_t as_int(const std::string& key) const;
  // A number of any integer or float type.
  double as_double(const std::string& key) const;
  bool as_bool(const std::string& key) const;
  const std::string& as_string(const std::string& key) const;
  // "u32 7", "string \"llama\"", "array of 3 string" — for messages.
  std::string describe() const;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // dimensions, innermost first
  uint64_t offset = 0;      // from the start of the data section
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  int64_t numel = 0;
  // The row-major (Hugging Face) shape: ne reversed.
  std::vector<int64_t> shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }
};

struct GgufContents {
  uint32_t version = 0;
  size_t alignment = 32;
  size_t data_offset = 0;                  // where the data section starts
  std::vector<std::string> metadata_keys;  // in file order
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensorInfo> tensors;         // in file order
  std::map<std::string, size_t> tensor_index;  // name -> index in `tensors`

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
};

// Bounds beyond any real file; larger values are rejected as corrupt.
constexpr uint64_t kMaxGgufTensors = 1'000'000;
constexpr uint64_t kMaxGgufStringBytes = 1ull << 30;
constexpr uint64_t kMaxGgufNameBytes = 65536;  // metadata keys and tensor names
constexpr size_t kMaxGgufArrayDepth = 8;
// Arrays nested in arrays, counted over the whole file: each takes an object in memory.
constexpr size_t kMaxGgufNestedArrays = 65536;
constexpr size_t kMaxGgufDims = 4;

// Parses and validates the GGUF image [bytes, bytes + size). `label` names the file in
// error messages. Tensor `data` pointers point into `bytes`. Throws tidal::ModelError.
GgufContents parse_gguf(const uint8_t* bytes, size_t size, const std::string& label);

// What the first bytes of a file that is not GGUF are instead: 'expected the magic "GGUF",
// found "PK\x03\x04"; this looks like a PyTorch checkpoint ...'. Reads at most 9 bytes.
std::string describe_gguf_magic(const uint8_t* bytes, size_t size);

class MappedFile;

// A memory-mapped GGUF file and its parsed header.
class GgufFile {
 public:
  // Throws tidal::ModelError for a missing, unreadable or malformed file.
  static GgufFile open(const std::string& path);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const GgufContents& contents() const { return contents_; }
  const std::string& path() const { return path_; }
  const GgufValue* find(const std::string& key) const { return contents_.find(key); }
  const GgufTensorInfo* find_tensor(const std::string& name) const { return contents_.find_tensor(name); }

 private:
  GgufFile();
  std::unique_ptr<MappedFile> file_;
  GgufContents contents_;
  std::string path_;
};

// Converts a whole tensor to float32 (numel values, row-major). Throws tidal::ModelError
// for types that cannot be dequantised or rows that are not whole blocks.
void gguf_tensor_to_f32(const GgufTensorInfo& tensor, float* out);

}  // namespace tidal
