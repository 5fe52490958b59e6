#include "model/safetensors.h"

#include <algorithm>
#include <cstring>

#include "model/json.h"
#include "tidal/error.h"

namespace tidal {

bool parse_dtype_name(std::string_view name, DType* dtype) {
  if (name == "F32")
    *dtype = DType::F32;
  else if (name == "F16")
    *dtype = DType::F16;
  else if (name == "BF16")
    *dtype = DType::BF16;
  else
    return false;
  return true;
}

namespace {

bool starts_with(const uint8_t* bytes, size_t size, std::string_view prefix) {
  return size >= prefix.size() && std::memcmp(bytes, prefix.data(), prefix.size()) == 0;
}

// Recognises files that are commonly mistaken for safetensors, for a message that says
// what to do instead of "header length 5e18 is too large".
void reject_foreign_formats(const uint8_t* bytes, size_t size, const std::string& label) {
  if (starts_with(bytes, size, "version https://git-lfs"))
    throw ModelError("'" + label + "' is a Git LFS pointer, not the weights: run 'git lfs pull' in the model folder " +
                     "(or download the file again)");
  if (starts_with(bytes, size, "GGUF"))
    throw ModelError("'" + label + "' is a GGUF file, not safetensors: GGUF checkpoints are not supported, " +
                     "use the model's Hugging Face safetensors release");
  if (starts_with(bytes, size, "PK\x03\x04"))
    throw ModelError("'" + label +
                     "' is a zip archive (a PyTorch checkpoint?), not safetensors: " + "convert it to safetensors");
}

class HeaderValidator {
 public:
  HeaderValidator(const std::string& label, size_t data_size) : label_(label), data_size_(data_size) {}

  [[noreturn]] void fail(const std::string& message) const { throw ModelError("'" + label_ + "': " + message); }
  [[noreturn]] void fail_tensor(const std::string& name, const std::string& message) const {
    fail("tensor '" + name + "' " + message);
  }

  void read_metadata(const json::Value& value, std::map<std::string, std::string>& metadata) const {
    if (!value.is_object()) fail("__metadata__ must be an object of strings, found " + value.describe());
    for (size_t i = 0; i < value.size(); ++i) {
      const json::Value& entry = value[i];
      if (!entry.is_string())
        fail("__metadata__ entry '" + value.key(i) + "' must be a string, found " + entry.describe());
      metadata.emplace(value.key(i), entry.as_string());
    }
  }

  // Validates one tensor entry; `view.data` is left as the begin offset for the caller.
  TensorView read_tensor(const std::string& name, const json::Value& entry, uint64_t* begin_out) const {
    if (!entry.is_object()) fail_tensor(name, "entry must be an object, found " + entry.describe());
    TensorView view;
    view.name = name;

    const json::Value* dtype = entry.find("dtype");
    if (!dtype) fail_tensor(name, "has no 'dtype'");
    if (!dtype->is_string()) fail_tensor(name, "has a 'dtype' that is not a string: " + dtype->describe());
    if (!parse_dtype_name(dtype->as_string(), &view.dtype))
      fail_tensor(name,
                  "has dtype '" + dtype->as_string() + "', which is not supported; supported dtypes: F32, F16, BF16");

    const json::Value* shape = entry.find("shape");
    if (!shape) fail_tensor(name, "has no 'shape'");
    if (!shape->is_array()) fail_tensor(name, "has a 'shape' that is not an array: " + shape->describe());
    if (shape->size() > kMaxTensorRank)
      fail_tensor(name, "has " + std::to_string(shape->size()) + " dimensions; at most " +
                            std::to_string(kMaxTensorRank) + " are supported");
    uint64_t numel = 1;
    for (const json::Value& dim : shape->items()) {
      if (!dim.is_int()) fail_tensor(name, "has a shape entry that is not an integer: " + dim.describe());
      if (dim.as_int() < 0) fail_tensor(name, "has a negative shape entry " + std::to_string(dim.as_int()));
      view.shape.push_back(dim.as_int());
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dim.as_int()), &numel))
        fail_tensor(name, "has shape " + shape_string(view.shape) + "..., whose element count overflows 64 bits");
    }
    uint64_t expected_bytes;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(view.dtype)), &expected_bytes) ||
        expected_bytes > data_size_)
      // Also catches shapes whose byte count cannot fit the data section at all.
      fail_tensor(name, "has shape " + shape_string(view.shape) + " x " + dtype_name(view.dtype) +
                            ", which needs more bytes than the data section holds (" + std::to_string(data_size_) +
                            ")");

    const json::Value* offsets = entry.find("data_offsets");
    if (!offsets) fail_tensor(name, "has no 'data_offsets'");
    if (!offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_int() || !(*offsets)[1].is_int() ||
        (*offsets)[0].as_int() < 0 || (*offsets)[1].as_int() < 0)
      fail_tensor(name, "has 'data_offsets' that are not [begin, end] with non-negative integers");
    uint64_t begin = static_cast<uint64_t>((*offsets)[0].as_int());
    uint64_t end = static_cast<uint64_t>((*offsets)[1].as_int());
    std::string range = "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (end < begin) fail_tensor(name, "has data_offsets " + range + " with end before begin");
    if (end > data_size_)
      fail_tensor(name, "has data_offsets " + range + " past the end of the data section (" +
                            std::to_string(data_size_) + " bytes); the file is truncated or corrupt");
    if (end - begin != expected_bytes)
      fail_tensor(name, "has data_offsets " + range + " spanning " + std::to_string(end - begin) +
                            " bytes, but shape " + shape_string(view.shape) + " x " + dtype_name(view.dtype) +
                            " needs " + std::to_string(expected_bytes) + " bytes");
    view.bytes = static_cast<size_t>(expected_bytes);
    *begin_out = begin;
    return view;
  }

 private:
  const std::string& label_;
  size_t data_size_;
};

}  // namespace

SafetensorsContents parse_safetensors(const uint8_t* bytes, size_t size, const std::string& label) {
  reject_foreign_formats(bytes, size, label);
  if (size < 8)
    throw ModelError("'" + label + "' is " + std::to_string(size) +
                     " bytes long, too short for a safetensors file (which starts with an 8-byte header length)");
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[i];  // little-endian
  if (header_length > kMaxSafetensorsHeaderBytes)
    throw ModelError("'" + label + "': header length " + std::to_string(header_length) + " exceeds the " +
                     std::to_string(kMaxSafetensorsHeaderBytes) +
                     "-byte limit; the file is corrupt or not a safetensors file");
  if (header_length > size - 8)
    throw ModelError("'" + label + "': header length " + std::to_string(header_length) +
                     " runs past the end of the file (" + std::to_string(size) +
                     " bytes); the file is truncated or corrupt");

  SafetensorsContents contents;
  contents.data_offset = static_cast<size_t>(8 + header_length);
  const size_t data_size = size - contents.data_offset;

  json::Value header;
  try {
    json::ParseOptions options;
    options.max_depth = 8;                 // header objects nest three deep
    options.max_values = size_t(1) << 21;  // ~9 values per tensor: room for 200k tensors
    header = json::parse(std::string_view(reinterpret_cast<const char*>(bytes) + 8, header_length), options);
  } catch (const json::ParseError& e) {
    // Positions in the message count from the start of the header, which is file byte 8.
    throw ModelError("'" + label + "': the safetensors header is not valid JSON: " + e.what());
  }
  HeaderValidator validator(label, data_size);
  if (!header.is_object()) validator.fail("the safetensors header must be a JSON object, found " + header.describe());

  struct Extent {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Extent> extents;
  contents.tensors.reserve(header.size());
  extents.reserve(header.size());
  const uint8_t* data_section = bytes + contents.data_offset;
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string& name = header.key(i);
    if (name == "__metadata__") {
      validator.read_metadata(header[i], contents.metadata);
      continue;
    }
    uint64_t begin = 0;
    TensorView view = validator.read_tensor(name, header[i], &begin);
    view.data = data_section + begin;
    if (view.bytes > 0) extents.push_back({begin, begin + view.bytes, contents.tensors.size()});
    contents.tensors.push_back(std::move(view));
  }
  // Non-empty tensors must occupy disjoint byte ranges: sort by start, compare neighbours.
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < extents.size(); ++i) {
    const Extent& previous = extents[i - 1];
    const Extent& current = extents[i];
    if (current.begin < previous.end)
      validator.fail("tensors '" + contents.tensors[previous.index].name + "' [" + std::to_string(previous.begin) +
                     ", " + std::to_string(previous.end) + ") and '" + contents.tensors[current.index].name + "' [" +
                     std::to_string(current.begin) + ", " + std::to_string(current.end) +
                     ") overlap in the data section");
  }
  return contents;
}

}  // namespace tidal
