#include "model/weight_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "core/platform_io.h"
#include "model/half.h"
#include "model/json.h"
#include "model/mapped_file.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "tidal/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TIDAL_HAVE_F16C_PATH 1
#endif

namespace tidal {

// ---- dtypes ---------------------------------------------------------------------------

GgmlType ggml_type_of(DType dtype) {
  switch (dtype) {
    case DType::Q4_0:
      return GgmlType::Q4_0;
    case DType::Q4_1:
      return GgmlType::Q4_1;
    case DType::Q5_0:
      return GgmlType::Q5_0;
    case DType::Q5_1:
      return GgmlType::Q5_1;
    case DType::Q8_0:
      return GgmlType::Q8_0;
    case DType::Q4_K:
      return GgmlType::Q4_K;
    case DType::Q5_K:
      return GgmlType::Q5_K;
    case DType::Q6_K:
      return GgmlType::Q6_K;
    case DType::F32:
      return GgmlType::F32;
    case DType::F16:
      return GgmlType::F16;
    case DType::BF16:
      return GgmlType::BF16;
  }
  return GgmlType::F32;
}

std::optional<DType> dtype_of_ggml(GgmlType type) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                      DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    if (ggml_type_of(dtype) == type) return dtype;
  return std::nullopt;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    default:
      return ggml_type_info(static_cast<uint32_t>(ggml_type_of(dtype)))->name;
  }
}

bool is_quantized(DType dtype) { return dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16; }

int64_t dtype_block_elements(DType dtype) {
  return is_quantized(dtype) ? ggml_type_info(static_cast<uint32_t>(ggml_type_of(dtype)))->block_elements : 1;
}

size_t dtype_bytes(DType dtype, int64_t count) {
  if (!is_quantized(dtype)) return static_cast<size_t>(count) * dtype_size(dtype);
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(ggml_type_of(dtype)));
  return static_cast<size_t>(count / info->block_elements) * info->block_bytes;
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return 4;
    case DType::F16:
    case DType::BF16:
      return 2;
    default:
      return 0;
  }
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at load time not to overflow
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// ---- conversion -----------------------------------------------------------------------

namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// bf16 is the upper half of a float32, so widening is a 16-bit shift; the loop vectorizes.
void bf16_to_f32_bulk(const uint8_t* src, float* out, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits = static_cast<uint32_t>(load_u16(src + 2 * i)) << 16;
    std::memcpy(out + i, &bits, sizeof bits);
  }
}

void f16_to_f32_portable(const uint8_t* src, float* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = f16_to_f32(load_u16(src + 2 * i));
}

#ifdef TIDAL_HAVE_F16C_PATH
__attribute__((target("avx,f16c"))) void f16_to_f32_f16c(const uint8_t* src, float* out, size_t count) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(halves));
  }
  for (; i < count; ++i) out[i] = f16_to_f32(load_u16(src + 2 * i));
}

bool cpu_has_f16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}
#endif

}  // namespace

void convert_to_f32(DType dtype, const void* src, float* out, size_t count) {
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  if (is_quantized(dtype)) {
    dequantize_to_f32(ggml_type_of(dtype), src, count, out);
    return;
  }
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, bytes, count * sizeof(float));
      return;
    case DType::BF16:
      bf16_to_f32_bulk(bytes, out, count);
      return;
    case DType::F16:
#ifdef TIDAL_HAVE_F16C_PATH
      if (cpu_has_f16c()) {
        f16_to_f32_f16c(bytes, out, count);
        return;
      }
#endif
      f16_to_f32_portable(bytes, out, count);
      return;
    default:
      return;  // quantised: above
  }
}

void convert_to_f32(const TensorView& tensor, float* out) {
  convert_to_f32(tensor.dtype, tensor.data, out, static_cast<size_t>(tensor.numel()));
}

void convert_to_f32(const TensorView& tensor, size_t first, size_t count, float* out) {
  size_t numel = static_cast<size_t>(tensor.numel());
  if (first > numel || count > numel - first)
    throw Error("convert_to_f32: elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") are outside tensor '" + tensor.name + "' of " + std::to_string(numel) + " elements");
  const size_t block = static_cast<size_t>(dtype_block_elements(tensor.dtype));
  if (first % block != 0 || count % block != 0)
    throw Error("convert_to_f32: elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") of tensor '" + tensor.name + "' are not whole " + std::to_string(block) + "-value blocks of " +
                dtype_name(tensor.dtype));
  const uint8_t* src =
      static_cast<const uint8_t*>(tensor.data) + dtype_bytes(tensor.dtype, static_cast<int64_t>(first));
  convert_to_f32(tensor.dtype, src, out, count);
}

// ---- finiteness -----------------------------------------------------------------------

namespace {

// Index of the first element whose exponent field is all ones (Inf or NaN), or `count`.
// Scans in blocks with a branch-free reduction, then pinpoints inside the offending block.
template <typename Bits>
size_t first_non_finite(const uint8_t* src, size_t count, Bits exponent_mask) {
  constexpr size_t kBlock = 1024;
  for (size_t start = 0; start < count; start += kBlock) {
    size_t end = std::min(count, start + kBlock);
    unsigned any = 0;
    for (size_t i = start; i < end; ++i) {
      Bits b;
      std::memcpy(&b, src + i * sizeof(Bits), sizeof b);
      any |= static_cast<unsigned>((b & exponent_mask) == exponent_mask);
    }
    if (!any) continue;
    for (size_t i = start; i < end; ++i) {
      Bits b;
      std::memcpy(&b, src + i * sizeof(Bits), sizeof b);
      if ((b & exponent_mask) == exponent_mask) return i;
    }
  }
  return count;
}

}  // namespace

void check_finite(const TensorView& tensor) {
  const uint8_t* src = static_cast<const uint8_t*>(tensor.data);
  size_t count = static_cast<size_t>(tensor.numel());
  size_t index = count;
  switch (tensor.dtype) {
    case DType::F32:
      index = first_non_finite<uint32_t>(src, count, 0x7F800000u);
      break;
    case DType::F16:
      index = first_non_finite<uint16_t>(src, count, 0x7C00u);
      break;
    case DType::BF16:
      index = first_non_finite<uint16_t>(src, count, 0x7F80u);
      break;
    default: {
      const size_t block = static_cast<size_t>(dtype_block_elements(tensor.dtype));
      const size_t bad = first_non_finite_block(ggml_type_of(tensor.dtype), src, count / block);
      if (bad == count / block) return;
      throw ModelError("tensor '" + tensor.name + "' has a NaN/Inf scale in its " + dtype_name(tensor.dtype) +
                       " block at element " + std::to_string(bad * block) + " (of " + std::to_string(count) +
                       " elements): the file is corrupt; download it again or use another file");
    }
  }
  if (index == count) return;
  float value;
  convert_to_f32(tensor, index, 1, &value);
  const char* what = std::isnan(value) ? "NaN" : (value > 0 ? "+Inf" : "-Inf");
  throw ModelError("tensor '" + tensor.name + "' contains NaN/Inf at element " + std::to_string(index) + " (" + what +
                   ", of " + std::to_string(count) + " elements): the checkpoint is corrupt or was saved from a " +
                   "diverged run; download it again or use another checkpoint");
}

// ---- WeightStore ----------------------------------------------------------------------

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr size_t kMaxIndexBytes = 64u << 20;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join_names(const std::vector<std::string>& names) {
  constexpr size_t kShown = 4;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kShown) s += " and " + std::to_string(names.size() - kShown) + " more";
  return s;
}

// Explains an empty-handed search: what was looked for and which weight-like files exist.
[[noreturn]] void throw_no_weights(const std::string& dir) {
  std::vector<std::string> safetensors, pickles, gguf, other_frameworks;
  for (const std::string& name : platform::list_folder(dir)) {
    if (ends_with(name, ".safetensors"))
      safetensors.push_back(name);
    else if (ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth") || ends_with(name, ".ckpt"))
      pickles.push_back(name);
    else if (ends_with(name, ".gguf"))
      gguf.push_back(name);
    else if (ends_with(name, ".h5") || ends_with(name, ".msgpack"))
      other_frameworks.push_back(name);
  }
  for (auto* list : {&safetensors, &pickles, &gguf, &other_frameworks}) std::sort(list->begin(), list->end());

  std::string message = "no model weights in '" + dir + "': looked for " + kSingleFile + " and " + kIndexFile;
  if (!safetensors.empty())
    message += "; found " + join_names(safetensors) + ": safetensors files under other names are loaded only when " +
               kIndexFile + " lists them (rename a single-file checkpoint to " + kSingleFile + ")";
  if (!pickles.empty())
    message +=
        "; found " + join_names(pickles) + ": PyTorch pickle checkpoints are not supported, convert to safetensors";
  if (!gguf.empty())
    message += "; found " + join_names(gguf) + ": GGUF files are not supported, use the model's Hugging Face " +
               "safetensors release";
  if (!other_frameworks.empty())
    message += "; found " + join_names(other_frameworks) + ": TensorFlow/Flax checkpoints are not supported, " +
               "convert to safetensors";
  if (safetensors.empty() && pickles.empty() && gguf.empty() && other_frameworks.empty())
    message += "; the folder holds no *.safetensors, *.bin or *.gguf files";
  throw ModelError(message);
}

// A shard name from the index must name a file inside the model folder, nothing else.
void check_shard_name(const std::string& name, const std::string& index_path) {
  bool bad = name.empty() || name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
             name.find("..") != std::string::npos || name.find('\0') != std::string::npos;
  if (bad)
    throw ModelError("'" + index_path + "' names shard file '" + name +
                     "', which is not a plain file name inside the model folder (no '/', '\\' or '..' allowed)");
}

}  // namespace

WeightStore::WeightStore() = default;
WeightStore::WeightStore(WeightStore&&) noexcept = default;
WeightStore& WeightStore::operator=(WeightStore&&) noexcept = default;
WeightStore::~WeightStore() = default;

void WeightStore::add_file(std::unique_ptr<MappedFile> file, const std::string& label) {
  SafetensorsContents contents = parse_safetensors(file->data(), file->size(), label);
  for (TensorView& view : contents.tensors) {
    auto [it, inserted] = tensor_files_.emplace(view.name, label);
    if (!inserted)
      throw ModelError("tensor '" + view.name + "' appears in both '" + it->second + "' and '" + label +
                       "'; the checkpoint is inconsistent");
    std::string name = view.name;
    tensors_.emplace(std::move(name), std::move(view));
  }
  metadata_.insert(contents.metadata.begin(), contents.metadata.end());
  files_.push_back(std::move(file));
}

WeightStore WeightStore::open_file(const std::string& path) {
  WeightStore store;
  store.source_ = path;
  store.add_file(MappedFile::open(path), path);
  return store;
}

WeightStore WeightStore::open(const std::string& model_dir) {
  const platform::FileStatus info = platform::status(model_dir);
  if (info.kind == platform::FileKind::kMissing) throw ModelError("model folder '" + model_dir + "' does not exist");
  if (info.kind != platform::FileKind::kDirectory)
    throw ModelError("'" + model_dir + "' is not a folder; give the model folder");

  const std::string single_path = model_dir + "/" + kSingleFile;
  const std::string index_path = model_dir + "/" + kIndexFile;
  if (platform::present(single_path)) {
    WeightStore store = open_file(single_path);
    store.source_ = model_dir;
    return store;
  }
  if (!platform::present(index_path)) throw_no_weights(model_dir);

  // Sharded checkpoint: {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...}}.
  std::unique_ptr<MappedFile> index_file = MappedFile::open(index_path);
  if (index_file->size() > kMaxIndexBytes)
    throw ModelError("'" + index_path + "' is " + std::to_string(index_file->size()) + " bytes, over the " +
                     std::to_string(kMaxIndexBytes) + "-byte limit for a shard index");
  json::Value index;
  try {
    index = json::parse(std::string_view(reinterpret_cast<const char*>(index_file->data()), index_file->size()));
  } catch (const json::ParseError& e) {
    throw ModelError("'" + index_path + "' is not valid JSON: " + e.what());
  }
  const json::Value* weight_map = index.find("weight_map");
  if (!weight_map || !weight_map->is_object())
    throw ModelError("'" + index_path + "' has no \"weight_map\" object mapping tensor names to shard files");
  if (weight_map->size() == 0) throw ModelError("'" + index_path + "' has an empty \"weight_map\"");

  // Open each distinct shard once, in order of first mention.
  std::vector<std::string> shard_order;
  std::set<std::string> seen;
  for (size_t i = 0; i < weight_map->size(); ++i) {
    const json::Value& file = (*weight_map)[i];
    if (!file.is_string())
      throw ModelError("'" + index_path + "': weight_map entry for tensor '" + weight_map->key(i) +
                       "' must be a file name, found " + file.describe());
    check_shard_name(file.as_string(), index_path);
    if (seen.insert(file.as_string()).second) shard_order.push_back(file.as_string());
  }

  WeightStore store;
  store.source_ = model_dir;
  for (const std::string& shard : shard_order) {
    std::string shard_path = model_dir + "/" + shard;
    if (!platform::present(shard_path))
      throw ModelError("shard '" + shard + "' listed in '" + index_path + "' is missing from the folder; " +
                       "the download is incomplete");
    store.add_file(MappedFile::open(shard_path), shard_path);
  }
  for (size_t i = 0; i < weight_map->size(); ++i) {
    const std::string& tensor = weight_map->key(i);
    const std::string shard_path = model_dir + "/" + (*weight_map)[i].as_string();
    auto found = store.tensor_files_.find(tensor);
    if (found == store.tensor_files_.end())
      throw ModelError("tensor '" + tensor + "' is listed in '" + index_path + "' under '" +
                       (*weight_map)[i].as_string() + "', but that file does not contain it");
    if (found->second != shard_path)
      throw ModelError("tensor '" + tensor + "' is listed in '" + index_path + "' under '" +
                       (*weight_map)[i].as_string() + "', but it is stored in '" + found->second + "'");
  }
  return store;
}

bool WeightStore::has(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorView& WeightStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return it->second;
  // A near miss is usually a prefix difference ("model." or a wrapper module's name).
  std::string hint;
  for (const auto& [candidate, view] : tensors_) {
    if (ends_with(candidate, "." + name) || ends_with(name, "." + candidate)) {
      hint = "; did you mean '" + candidate + "'?";
      break;
    }
  }
  throw ModelError("missing tensor '" + name + "' in '" + source_ + "' (" + std::to_string(tensors_.size()) +
                   " tensors present)" + hint);
}

const TensorView& WeightStore::get(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const TensorView& view = get(name);
  if (view.shape != expected_shape)
    throw ModelError("tensor '" + name + "' in '" + source_ + "' has shape " + shape_string(view.shape) +
                     ", expected " + shape_string(expected_shape) + "; config.json does not match the weights");
  return view;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& entry : tensors_) out.push_back(entry.first);
  return out;
}

size_t WeightStore::total_bytes() const {
  size_t total = 0;
  for (const auto& entry : tensors_) total += entry.second.bytes;
  return total;
}

}  // namespace tidal
