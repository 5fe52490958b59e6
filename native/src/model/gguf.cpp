#include "model/gguf.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>

#include "model/mapped_file.h"
#include "tidal/error.h"

namespace tidal {

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
      return "u8";
    case GgufValueType::I8:
      return "i8";
    case GgufValueType::U16:
      return "u16";
    case GgufValueType::I16:
      return "i16";
    case GgufValueType::U32:
      return "u32";
    case GgufValueType::I32:
      return "i32";
    case GgufValueType::F32:
      return "f32";
    case GgufValueType::Bool:
      return "bool";
    case GgufValueType::String:
      return "string";
    case GgufValueType::Array:
      return "array";
    case GgufValueType::U64:
      return "u64";
    case GgufValueType::I64:
      return "i64";
    case GgufValueType::F64:
      return "f64";
  }
  return "?";
}

namespace {

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::U8 || t == GgufValueType::U16 || t == GgufValueType::U32 || t == GgufValueType::U64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 || t == GgufValueType::I64;
}

// Bytes a scalar of `type` takes; 0 for strings and arrays (variable).
size_t scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::Bool:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
    case GgufValueType::String:
    case GgufValueType::Array:
      return 0;
  }
  return 0;
}

// The fewest bytes one value of `type` can occupy in the file: what a count of them is
// checked against before anything is reserved.
size_t minimum_size(GgufValueType type) {
  if (type == GgufValueType::String) return 8;
  if (type == GgufValueType::Array) return 12;
  return scalar_size(type);
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

// Sequential little-endian reads with bounds checks; every failure names the file and the
// byte offset where the problem was found.
class Reader {
 public:
  Reader(const uint8_t* bytes, size_t size, const std::string& label) : bytes_(bytes), size_(size), label_(label) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw ModelError("GGUF file '" + label_ + "': " + message);
  }
  [[noreturn]] void fail_at(size_t offset, const std::string& message) const {
    fail(message + " (at byte " + std::to_string(offset) + " of " + std::to_string(size_) + ")");
  }

  size_t position() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  size_t size() const { return size_; }

  void need(size_t n, const char* what) const {
    if (n > remaining())
      fail_at(pos_, std::string("truncated: ") + what + " needs " + std::to_string(n) + " bytes but only " +
                        std::to_string(remaining()) + " remain");
  }

  uint64_t read_uint(size_t n, const char* what) {
    need(n, what);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  uint32_t u32(const char* what) { return static_cast<uint32_t>(read_uint(4, what)); }
  uint64_t u64(const char* what) { return read_uint(8, what); }

  std::string string(const char* what, uint64_t limit = kMaxGgufStringBytes) {
    const size_t at = pos_;
    uint64_t length = u64(what);
    if (length > limit)
      fail_at(at, std::string(what) + " claims a length of " + std::to_string(length) + " bytes, over the " +
                      std::to_string(limit) + "-byte limit");
    if (length > remaining())
      fail_at(at, std::string(what) + " of " + std::to_string(length) + " bytes runs past the end of the file (" +
                      std::to_string(remaining()) + " bytes remain)");
    std::string out(reinterpret_cast<const char*>(bytes_ + pos_), static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return out;
  }

  // Checks that `count` items of at least `each` bytes can still fit.
  void check_count(uint64_t count, size_t each, size_t at, const std::string& what) const {
    uint64_t total;
    if (!checked_mul(count, each, &total) || total > remaining())
      fail_at(at, what + " count " + std::to_string(count) + " is larger than the file allows (" +
                      std::to_string(remaining()) + " bytes remain, each entry takes at least " + std::to_string(each) +
                      ")");
  }

  GgufValueType value_type(const std::string& key) {
    const size_t at = pos_;
    uint32_t raw = u32("metadata value type");
    if (raw > static_cast<uint32_t>(GgufValueType::F64))
      fail_at(at, "metadata key '" + key + "' has unknown value type " + std::to_string(raw) + " (known: 0 to 12)");
    return static_cast<GgufValueType>(raw);
  }

  GgufValue value(GgufValueType type, const std::string& key, size_t depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
      case GgufValueType::String:
        v.text = string("string value");
        return v;
      case GgufValueType::Array: {
        if (depth >= kMaxGgufArrayDepth)
          fail_at(pos_,
                  "metadata key '" + key + "' nests arrays more than " + std::to_string(kMaxGgufArrayDepth) + " deep");
        v.element_type = value_type(key);
        const size_t at = pos_;
        uint64_t count = u64("array length");
        check_count(count, minimum_size(v.element_type), at, "metadata key '" + key + "': array");
        v.count = static_cast<size_t>(count);
        if (v.element_type == GgufValueType::String) {
          v.string_ends.reserve(v.count);
          for (size_t i = 0; i < v.count; ++i) {
            v.string_bytes += string("string element");
            v.string_ends.push_back(v.string_bytes.size());
          }
        } else if (v.element_type == GgufValueType::Array) {
          if (count > kMaxGgufNestedArrays - nested_arrays_)
            fail_at(at, "metadata key '" + key + "' holds more than " + std::to_string(kMaxGgufNestedArrays) +
                            " nested arrays");
          nested_arrays_ += v.count;
          v.nested.reserve(v.count);
          for (size_t i = 0; i < v.count; ++i) v.nested.push_back(value(GgufValueType::Array, key, depth + 1));
        } else {
          const size_t bytes = v.count * scalar_size(v.element_type);  // checked by check_count
          v.scalar_bytes.assign(bytes_ + pos_, bytes_ + pos_ + bytes);
          for (size_t i = 0; i < v.count; ++i) element_check(v, i, key);
          pos_ += bytes;
        }
        return v;
      }
      default:
        break;
    }
    uint64_t raw = read_uint(scalar_size(type), "metadata value");
    switch (type) {
      case GgufValueType::U8:
      case GgufValueType::U16:
      case GgufValueType::U32:
      case GgufValueType::U64:
        v.unsigned_value = raw;
        break;
      case GgufValueType::Bool:
        if (raw > 1)
          fail_at(pos_ - 1, "metadata key '" + key + "' holds bool byte " + std::to_string(raw) + " (expected 0 or 1)");
        v.unsigned_value = raw;
        break;
      case GgufValueType::I8:
        v.signed_value = static_cast<int8_t>(raw);
        break;
      case GgufValueType::I16:
        v.signed_value = static_cast<int16_t>(raw);
        break;
      case GgufValueType::I32:
        v.signed_value = static_cast<int32_t>(raw);
        break;
      case GgufValueType::I64:
        v.signed_value = static_cast<int64_t>(raw);
        break;
      case GgufValueType::F32: {
        uint32_t bits = static_cast<uint32_t>(raw);
        float f;
        std::memcpy(&f, &bits, 4);
        v.float_value = f;
        break;
      }
      case GgufValueType::F64:
        std::memcpy(&v.float_value, &raw, 8);
        break;
      default:
        break;
    }
    return v;
  }

  void skip_to(size_t offset) { pos_ = offset; }

 private:
  // Bool elements must be 0 or 1 like bool scalars.
  void element_check(const GgufValue& v, size_t i, const std::string& key) const {
    if (v.element_type == GgufValueType::Bool && v.scalar_bytes[i] > 1)
      fail_at(pos_ + i,
              "metadata key '" + key + "' holds bool byte " + std::to_string(v.scalar_bytes[i]) + " (expected 0 or 1)");
  }

  size_t nested_arrays_ = 0;
  const uint8_t* bytes_;
  size_t size_;
  const std::string& label_;
  size_t pos_ = 0;
};

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

bool GgufValue::is_integer() const { return is_unsigned(type) || is_signed(type); }

int64_t GgufValue::as_int(const std::string& key) const {
  if (is_unsigned(type)) {
    if (unsigned_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw ModelError("GGUF metadata '" + key + "' = " + std::to_string(unsigned_value) + " is too large");
    return static_cast<int64_t>(unsigned_value);
  }
  if (is_signed(type)) return signed_value;
  throw ModelError("GGUF metadata '" + key + "' must be an integer, found " + describe());
}

double GgufValue::as_double(const std::string& key) const {
  if (is_float()) return float_value;
  if (is_unsigned(type)) return static_cast<double>(unsigned_value);
  if (is_signed(type)) return static_cast<double>(signed_value);
  throw ModelError("GGUF metadata '" + key + "' must be a number, found " + describe());
}

bool GgufValue::as_bool(const std::string& key) const {
  if (type != GgufValueType::Bool) throw ModelError("GGUF metadata '" + key + "' must be a bool, found " + describe());
  return unsigned_value != 0;
}

const std::string& GgufValue::as_string(const std::string& key) const {
  if (type != GgufValueType::String)
    throw ModelError("GGUF metadata '" + key + "' must be a string, found " + describe());
  return text;
}

std::string GgufValue::describe() const {
  std::string name = gguf_value_type_name(type);
  if (is_unsigned(type) || type == GgufValueType::Bool) return name + " " + std::to_string(unsigned_value);
  if (is_signed(type)) return name + " " + std::to_string(signed_value);
  if (is_float()) {
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%.9g", float_value);
    return name + " " + buffer;
  }
  if (type == GgufValueType::String) return "string \"" + (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "\"";
  return "array of " + std::to_string(count) + " " + gguf_value_type_name(element_type);
}

GgufValue GgufValue::item(size_t i) const {
  if (type != GgufValueType::Array || i >= count)
    throw Error("GGUF array element " + std::to_string(i) + " is out of range (" + std::to_string(size()) +
                " elements)");
  if (element_type == GgufValueType::Array) return nested[i];
  GgufValue out;
  out.type = element_type;
  if (element_type == GgufValueType::String) {
    out.text = std::string(string_item(i));
    return out;
  }
  const size_t n = scalar_size(element_type);
  uint64_t raw = 0;
  for (size_t b = 0; b < n; ++b) raw |= static_cast<uint64_t>(scalar_bytes[i * n + b]) << (8 * b);
  switch (element_type) {
    case GgufValueType::I8:
      out.signed_value = static_cast<int8_t>(raw);
      break;
    case GgufValueType::I16:
      out.signed_value = static_cast<int16_t>(raw);
      break;
    case GgufValueType::I32:
      out.signed_value = static_cast<int32_t>(raw);
      break;
    case GgufValueType::I64:
      out.signed_value = static_cast<int64_t>(raw);
      break;
    case GgufValueType::F32: {
      uint32_t bits = static_cast<uint32_t>(raw);
      float f;
      std::memcpy(&f, &bits, 4);
      out.float_value = f;
      break;
    }
    case GgufValueType::F64:
      std::memcpy(&out.float_value, &raw, 8);
      break;
    default:
      out.unsigned_value = raw;
      break;
  }
  return out;
}

std::string_view GgufValue::string_item(size_t i) const {
  if (type != GgufValueType::Array || element_type != GgufValueType::String || i >= count)
    throw Error("GGUF string array element " + std::to_string(i) + " is out of range or not a string");
  const size_t begin = i == 0 ? 0 : string_ends[i - 1];
  return std::string_view(string_bytes).substr(begin, string_ends[i] - begin);
}

const GgufValue* GgufContents::find(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufContents::find_tensor(const std::string& name) const {
  auto it = tensor_index.find(name);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

// The first bytes are shown as text when printable, else in hex, with a guess at the format.
std::string describe_gguf_magic(const uint8_t* bytes, size_t size) {
  const size_t n = std::min<size_t>(size, 4);
  bool printable = true;
  for (size_t i = 0; i < n; ++i) printable = printable && std::isprint(bytes[i]);
  std::string shown;
  if (printable) {
    shown = "\"" + std::string(reinterpret_cast<const char*>(bytes), n) + "\"";
  } else {
    for (size_t i = 0; i < n; ++i) {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%02x", bytes[i]);
      shown += (i ? " " : "") + std::string(hex);
    }
  }
  std::string message = "expected the magic \"GGUF\", found " + shown;
  if (size >= 9 && bytes[8] == '{')
    message += "; this looks like a safetensors file, which is opened as part of a Hugging Face model folder";
  else if (size >= 4 && bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4)
    message +=
        "; this looks like a PyTorch checkpoint (zip archive), which is not supported: convert it to "
        "safetensors or GGUF";
  else if (size >= 2 && bytes[0] == 0x80 && bytes[1] <= 5)
    message +=
        "; this looks like a pickled PyTorch checkpoint, which is not supported: convert it to safetensors "
        "or GGUF";
  return message;
}

GgufContents parse_gguf(const uint8_t* bytes, size_t size, const std::string& label) {
  Reader in(bytes, size, label);
  if (size < 4 || std::memcmp(bytes, "GGUF", 4) != 0) {
    if (size < 4)
      in.fail("not a GGUF file: it is " + std::to_string(size) + " bytes, too short to hold the magic \"GGUF\"");
    in.fail("not a GGUF file: " + describe_gguf_magic(bytes, size));
  }
  in.skip_to(4);

  GgufContents out;
  out.version = in.u32("version");
  if (out.version != 2 && out.version != 3) {
    std::string hint;
    if (out.version == 1) hint = " (version 1 is the early format; re-convert the model with a current converter)";
    if (out.version == 0x02000000u || out.version == 0x03000000u)
      hint = " (this looks like a big-endian GGUF file; only little-endian files are supported)";
    in.fail("unsupported GGUF version " + std::to_string(out.version) + "; supported: 2, 3" + hint);
  }
  const uint64_t tensor_count = in.u64("tensor count");
  const uint64_t metadata_count = in.u64("metadata count");
  if (tensor_count > kMaxGgufTensors)
    in.fail("tensor count " + std::to_string(tensor_count) + " is absurdly large (limit " +
            std::to_string(kMaxGgufTensors) + ")");
  // A key is at least 8 (length) + 4 (type) + 1 (value) bytes.
  in.check_count(metadata_count, 13, in.position(), "metadata");

  for (uint64_t i = 0; i < metadata_count; ++i) {
    const size_t at = in.position();
    std::string key = in.string("metadata key", kMaxGgufNameBytes);
    GgufValueType type = in.value_type(key);
    GgufValue value = in.value(type, key, 0);
    if (out.metadata.count(key)) in.fail_at(at, "duplicate metadata key '" + key + "'");
    out.metadata_keys.push_back(key);
    out.metadata.emplace(std::move(key), std::move(value));
  }

  if (const GgufValue* alignment = out.find("general.alignment")) {
    if (alignment->type != GgufValueType::U32)
      in.fail("general.alignment must be a u32, found " + alignment->describe());
    if (!is_power_of_two(alignment->unsigned_value) || alignment->unsigned_value > (1u << 20))
      in.fail("general.alignment = " + std::to_string(alignment->unsigned_value) +
              " is not a power of two between 1 and 1048576");
    out.alignment = static_cast<size_t>(alignment->unsigned_value);
  }

  // A tensor info is at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
  in.check_count(tensor_count, 32, in.position(), "tensor");
  out.tensors.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const size_t at = in.position();
    GgufTensorInfo t;
    t.name = in.string("tensor name", kMaxGgufNameBytes);
    const std::string what = "tensor '" + t.name + "'";
    uint32_t n_dims = in.u32("tensor dimension count");
    if (n_dims < 1 || n_dims > kMaxGgufDims)
      in.fail_at(at, what + " has " + std::to_string(n_dims) + " dimensions (expected 1 to " +
                         std::to_string(kMaxGgufDims) + ")");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t extent = in.u64("tensor dimension");
      if (extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || !checked_mul(numel, extent, &numel) ||
          numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        in.fail_at(at, what + ": the product of its dimensions overflows");
      t.ne.push_back(static_cast<int64_t>(extent));
    }
    const size_t type_at = in.position();
    uint32_t type_id = in.u32("tensor type");
    const GgmlTypeInfo* info = ggml_type_info(type_id);
    if (!info)
      in.fail_at(type_at, what + " has ggml type id " + std::to_string(type_id) + " (" + ggml_type_name(type_id) +
                              "), which is unknown or not supported");
    t.type = info->type;
    t.offset = in.u64("tensor offset");
    t.numel = static_cast<int64_t>(numel);
    if (t.ne[0] % info->block_elements != 0)
      in.fail_at(at, what + " of type " + info->name + " has rows of " + std::to_string(t.ne[0]) +
                         " values, not a multiple of its block size " + std::to_string(info->block_elements));
    uint64_t bytes_needed;
    if (!checked_mul(numel / static_cast<uint64_t>(info->block_elements), info->block_bytes, &bytes_needed))
      in.fail_at(at, what + ": its byte size overflows");
    t.bytes = static_cast<size_t>(bytes_needed);
    if (t.offset % out.alignment != 0)
      in.fail_at(at, what + " has data offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
                         std::to_string(out.alignment));
    if (out.tensor_index.count(t.name)) in.fail_at(at, "duplicate tensor name '" + t.name + "'");
    out.tensor_index.emplace(t.name, out.tensors.size());
    out.tensors.push_back(std::move(t));
  }

  const size_t header_end = in.position();
  out.data_offset = header_end + (out.alignment - header_end % out.alignment) % out.alignment;
  if (out.data_offset > size) {
    if (!out.tensors.empty())
      in.fail("truncated: the data section would start at byte " + std::to_string(out.data_offset) +
              ", past the end of the file (" + std::to_string(size) + " bytes)");
    out.data_offset = size;
  }

  const uint64_t data_size = size - out.data_offset;
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(out.tensors.size());
  for (GgufTensorInfo& t : out.tensors) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      in.fail("tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at data offset " +
              std::to_string(t.offset) + ") runs past the end of the file; the data section holds " +
              std::to_string(data_size) + " bytes, so the file is truncated or corrupt");
    t.data = bytes + out.data_offset + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  // Sorted by offset, a tensor overlaps an earlier one exactly when it starts before the
  // furthest end reached so far (empty tensors take no bytes and overlap nothing).
  const GgufTensorInfo* furthest = nullptr;
  for (const GgufTensorInfo* current : by_offset) {
    if (current->bytes == 0) continue;
    if (furthest && furthest->offset + furthest->bytes > current->offset)
      in.fail("tensors '" + furthest->name + "' and '" + current->name + "' overlap in the data section (bytes " +
              std::to_string(furthest->offset) + ".." + std::to_string(furthest->offset + furthest->bytes) + " and " +
              std::to_string(current->offset) + ".." + std::to_string(current->offset + current->bytes) + ")");
    if (!furthest || current->offset + current->bytes > furthest->offset + furthest->bytes) furthest = current;
  }
  return out;
}

GgufFile::GgufFile() = default;
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path) {
  GgufFile file;
  file.file_ = MappedFile::open(path);
  file.path_ = path;
  file.contents_ = parse_gguf(file.file_->data(), file.file_->size(), path);
  return file;
}

void gguf_tensor_to_f32(const GgufTensorInfo& tensor, float* out) {
  try {
    dequantize_to_f32(tensor.type, tensor.data, static_cast<size_t>(tensor.numel), out);
  } catch (const ModelError& e) {
    throw ModelError("tensor '" + tensor.name + "': " + e.what());
  }
}

}  // namespace tidal
