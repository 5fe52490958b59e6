#include "model/model_inspect.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "core/platform_io.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/json.h"
#include "model/mapped_file.h"
#include "model/tensor_names.h"
#include "model/weight_store.h"
#include "tidal/error.h"

namespace tidal {

const char* model_problem_kind_name(ModelProblemKind kind) {
  switch (kind) {
    case ModelProblemKind::Missing:
      return "missing";
    case ModelProblemKind::Truncated:
      return "truncated";
    case ModelProblemKind::Malformed:
      return "malformed";
    case ModelProblemKind::Unsupported:
      return "unsupported";
    case ModelProblemKind::Mismatch:
      return "mismatch";
  }
  return "malformed";
}

namespace {

bool contains(const std::string& text, const char* fragment) { return text.find(fragment) != std::string::npos; }

// The kind of a parser's exception, from the words its messages use for each case.
ModelProblemKind classify(const std::string& message, ModelProblemKind fallback) {
  if (contains(message, "cannot open") || contains(message, "does not exist") ||
      contains(message, "no model weights") || contains(message, "missing from the folder"))
    return ModelProblemKind::Missing;
  if (contains(message, "truncated") || contains(message, "past the end") || contains(message, "runs past"))
    return ModelProblemKind::Truncated;
  if (contains(message, "not supported") || contains(message, "unsupported")) return ModelProblemKind::Unsupported;
  return fallback;
}

void add_problem(ModelInspection& out, ModelProblemKind kind, const std::string& message) {
  out.problems.push_back({kind, message});
}

// Records the exception in flight (call inside a catch block) as a problem.
void add_current_exception(ModelInspection& out, ModelProblemKind fallback) {
  try {
    throw;
  } catch (const std::exception& e) {
    add_problem(out, classify(e.what(), fallback), e.what());
  } catch (...) {
    add_problem(out, fallback, "an unknown error occurred while reading '" + out.path + "'");
  }
}

// Tensor names and shapes under Hugging Face names, and how to name them back for messages.
struct TensorTable {
  std::map<std::string, std::vector<int64_t>> shapes;
  std::string (*stored_name)(const std::string&) = nullptr;  // null: names are stored as they are
  std::string config_name;                                   // "config.json", "the GGUF metadata"
  std::string layer_count_name;                              // "num_hidden_layers", "llama.block_count"
  std::string source;                                        // the folder or file, for messages

  std::string shown(const std::string& name) const {
    if (!stored_name) return name;
    std::string stored = stored_name(name);
    return stored.empty() ? name : stored;
  }
};

std::string plural(size_t count, const char* what) {
  return std::to_string(count) + " " + what + (count == 1 ? "" : "s");
}

// The checks bind_model_weights makes while loading, on names and shapes alone: the first
// missing or misshapen tensor, and tensors the config leaves unused (layers past its layer
// count, biases or norms it does not have). Saved RoPE inverse frequencies and optional
// tensors (a tied model's stored lm_head.weight) are ignored, as the engine ignores them.
void check_tensors(const ModelConfig& config, const TensorTable& table, ModelInspection& out) {
  std::map<std::string, bool> used;
  for (const ExpectedTensor& expected : expected_tensors(config)) {
    used[expected.name] = true;
    if (expected.optional) continue;
    auto found = table.shapes.find(expected.name);
    if (found == table.shapes.end()) {
      add_problem(out, ModelProblemKind::Mismatch,
                  "missing tensor '" + table.shown(expected.name) + "' (expected shape " +
                      shape_string(expected.shape) + ") in " + table.source + "; the weights do not match " +
                      table.config_name);
      return;
    }
    if (found->second != expected.shape) {
      add_problem(out, ModelProblemKind::Mismatch,
                  "tensor '" + table.shown(expected.name) + "' has shape " + shape_string(found->second) +
                      ", expected " + shape_string(expected.shape) + " from " + table.config_name + " (" +
                      table.source + ")");
      return;
    }
  }
  std::map<int64_t, std::pair<std::string, size_t>> extra_layers;  // layer -> (first stored name, tensors)
  std::vector<std::string> others;
  for (const auto& [name, shape] : table.shapes) {
    if (used.count(name) || is_derived_tensor(name)) continue;
    const int64_t layer = layer_of(name);
    if (layer >= config.num_layers) {
      auto& extra = extra_layers[layer];
      if (extra.second++ == 0) extra.first = table.shown(name);
    } else {
      others.push_back(table.shown(name));
    }
  }
  const std::string mismatch = "; the config does not match the weights in '" + table.source + "'";
  if (!extra_layers.empty()) {
    std::string layers;
    size_t tensors = 0, shown = 0;
    for (const auto& [layer, extra] : extra_layers) {
      tensors += extra.second;
      if (shown < 3) layers += std::string(shown++ ? ", " : "") + layer_pattern(extra.first);
    }
    if (extra_layers.size() > 3) layers += " and " + plural(extra_layers.size() - 3, "more layer");
    add_problem(out, ModelProblemKind::Mismatch,
                layers + " (" + plural(tensors, "tensor") + ") " + (tensors == 1 ? "is" : "are") +
                    " in the weights but not used by " + table.config_name + "'s " +
                    plural(static_cast<size_t>(config.num_layers), "layer") + " (" + table.layer_count_name + " = " +
                    std::to_string(config.num_layers) + ")" + mismatch);
  }
  if (!others.empty()) {
    std::string listed;
    for (size_t i = 0; i < others.size() && i < 3; ++i) listed += std::string(i ? ", " : "") + "'" + others[i] + "'";
    if (others.size() > 3) listed += " and " + std::to_string(others.size() - 3) + " more";
    add_problem(
        out, ModelProblemKind::Mismatch,
        (others.size() == 1 ? "tensor " + listed + " is" : plural(others.size(), "tensor") + " (" + listed + ") are") +
            " in the weights but not used by the model " + table.config_name + " describes" + mismatch);
  }
}

// Storage types, most bytes first (ties by name).
std::vector<std::string> dtypes_by_bytes(const std::map<std::string, uint64_t>& bytes_by_type) {
  std::vector<std::pair<std::string, uint64_t>> sorted(bytes_by_type.begin(), bytes_by_type.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> out;
  for (const auto& entry : sorted) out.push_back(entry.first);
  return out;
}

// config.json's own name for the architecture (architectures[0], else model_type), read
// whether or not the engine supports it; "" when the file cannot be read.
std::string declared_architecture(const std::string& dir) {
  try {
    std::unique_ptr<MappedFile> file = MappedFile::open(dir + "/config.json");
    if (file->size() == 0 || file->size() > (16u << 20)) return "";
    json::Value root = json::parse(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()));
    if (const json::Value* list = root.find("architectures");
        list && list->is_array() && list->size() > 0 && (*list)[0].is_string())
      return (*list)[0].as_string();
    if (const json::Value* type = root.find("model_type"); type && type->is_string()) return type->as_string();
  } catch (const std::exception&) {
    // load_model_config reports what is wrong with the file.
  }
  return "";
}

void inspect_folder(const std::string& dir, ModelInspection& out) {
  out.format = "safetensors";
  out.architecture = declared_architecture(dir);
  try {
    out.config = load_model_config(dir);
    out.has_config = true;
  } catch (...) {
    add_current_exception(out, ModelProblemKind::Malformed);
  }
  std::optional<WeightStore> store;
  try {
    store.emplace(WeightStore::open(dir));
  } catch (...) {
    add_current_exception(out, ModelProblemKind::Malformed);
  }
  if (!store) return;
  TensorTable table;
  table.config_name = "config.json";
  table.layer_count_name = "num_hidden_layers";
  table.source = dir;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const std::string& name : store->names()) {
    const TensorView& view = store->get(name);
    table.shapes[name] = view.shape;
    bytes_by_type[dtype_name(view.dtype)] += view.bytes;
    out.parameters += view.numel();
    out.weight_bytes += view.bytes;
  }
  out.tensor_count = static_cast<int64_t>(store->size());
  out.loaded_weight_bytes = out.weight_bytes;
  out.gpu_weight_bytes = static_cast<uint64_t>(out.parameters) * 2;
  // An untied embedding stays in host memory on the CUDA backend.
  if (store->has("lm_head.weight") && store->has("model.embed_tokens.weight"))
    out.gpu_weight_bytes -= static_cast<uint64_t>(store->get("model.embed_tokens.weight").numel()) * 2;
  out.dtypes = dtypes_by_bytes(bytes_by_type);
  if (out.has_config) check_tensors(out.config, table, out);
}

std::string gguf_stored_name(const std::string& hf_name) { return hf_to_gguf_tensor_name(hf_name); }

void inspect_gguf(const std::string& path, ModelInspection& out) {
  out.format = "gguf";
  std::optional<GgufFile> file;
  try {
    file.emplace(GgufFile::open(path));
  } catch (...) {
    add_current_exception(out, ModelProblemKind::Malformed);
    return;
  }
  const GgufContents& gguf = file->contents();
  if (const GgufValue* v = gguf.find("general.architecture"); v && v->is_string()) out.architecture = v->text;
  if (const GgufValue* v = gguf.find("general.name"); v && v->is_string()) out.name = v->text;

  // Tensors: storage types, sizes, and types the engine cannot dequantise.
  std::map<std::string, uint64_t> bytes_by_type;
  std::vector<std::string> unreadable;
  // An untied embedding (the file has output.weight) stays in host memory on the CUDA backend
  // (CudaBackendOptions::embedding_on_host): it adds nothing on the GPU.
  const bool untied = std::any_of(gguf.tensors.begin(), gguf.tensors.end(),
                                  [](const GgufTensorInfo& t) { return t.name == "output.weight"; });
  for (const GgufTensorInfo& t : gguf.tensors) {
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(t.type));  // parse_gguf refused unknown ids
    const std::string type_name = info ? info->name : ggml_type_name(static_cast<uint32_t>(t.type));
    bytes_by_type[type_name] += t.bytes;
    out.parameters += t.numel;
    out.weight_bytes += t.bytes;
    const bool plain = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    const bool kept_quantised = info && info->dequantizable && t.ne.size() == 2;
    out.loaded_weight_bytes += plain || kept_quantised ? t.bytes : static_cast<uint64_t>(t.numel) * sizeof(float);
    // The CUDA backend keeps Q8_0 / Q4_K / Q6_K matrices (the embedding too) in their blocks
    // and converts everything else to bf16.
    const bool gpu_blocks =
        t.ne.size() == 2 && (t.type == GgmlType::Q8_0 || t.type == GgmlType::Q4_K || t.type == GgmlType::Q6_K);
    if (!(untied && t.name == "token_embd.weight"))
      out.gpu_weight_bytes += gpu_blocks ? t.bytes : static_cast<uint64_t>(t.numel) * 2;
    if ((!info || !info->dequantizable) &&
        std::find(unreadable.begin(), unreadable.end(), type_name) == unreadable.end())
      unreadable.push_back(type_name);
  }
  out.tensor_count = static_cast<int64_t>(gguf.tensors.size());
  out.dtypes = dtypes_by_bytes(bytes_by_type);
  if (!unreadable.empty()) {
    std::string types;
    for (size_t i = 0; i < unreadable.size(); ++i) types += (i ? ", " : "") + unreadable[i];
    add_problem(out, ModelProblemKind::Unsupported,
                "GGUF file '" + path + "' stores tensors as " + types +
                    ", which the engine does not dequantise (it reads " + ggml_dequantizable_types() +
                    "); pick a Q4_K_M, Q6_K or Q8_0 file instead");
  }

  try {
    out.config = gguf_model_config(gguf);
    out.has_config = true;
  } catch (...) {
    add_current_exception(out, ModelProblemKind::Malformed);
  }
  try {
    GgufTokenizerMetadata tokenizer = read_gguf_tokenizer(gguf);
    out.tokenizer_tokens = static_cast<int64_t>(tokenizer.tokens.size());
  } catch (...) {
    add_current_exception(out, ModelProblemKind::Malformed);
  }
  if (!out.has_config) return;
  if (const GgufTensorInfo* embedding = gguf.find_tensor("token_embd.weight");
      embedding && embedding->ne.size() == 2 && out.tokenizer_tokens > embedding->ne[1])
    add_problem(out, ModelProblemKind::Mismatch,
                "GGUF file '" + path + "': the tokenizer has " + std::to_string(out.tokenizer_tokens) +
                    " tokens but the embedding token_embd.weight only " + std::to_string(embedding->ne[1]) +
                    " rows, so the tokenizer and the model do not belong together");

  TensorTable table;
  table.stored_name = gguf_stored_name;
  table.config_name = "the GGUF metadata";
  table.layer_count_name = out.config.model_type + ".block_count";
  table.source = path;
  for (const GgufTensorInfo& t : gguf.tensors) {
    const std::string hf = gguf_to_hf_tensor_name(t.name);
    if (!hf.empty()) table.shapes[hf] = t.shape();  // unmapped names (rope_freqs.weight) are not weights
  }
  check_tensors(out.config, table, out);
}

}  // namespace

ModelInspection inspect_model(const std::string& path) {
  ModelInspection out;
  out.path = path;
  const platform::FileStatus info = platform::status(path);
  if (info.kind == platform::FileKind::kMissing) {
    add_problem(out, ModelProblemKind::Missing,
                "model path '" + path +
                    "' does not exist; give a model folder (config.json and *.safetensors) or a .gguf file");
    return out;
  }
  if (info.kind == platform::FileKind::kDirectory) {
    inspect_folder(path, out);
    return out;
  }
  if (info.kind != platform::FileKind::kRegular) {
    add_problem(out, ModelProblemKind::Unsupported,
                "'" + path + "' is neither a file nor a folder; give a model folder or a .gguf file");
    return out;
  }
  std::ifstream in = platform::open_input_stream(path);
  if (!in) {
    add_problem(out, ModelProblemKind::Missing, "cannot open '" + path + "': " + std::strerror(errno));
    return out;
  }
  uint8_t head[16] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const size_t size = static_cast<size_t>(in.gcount());
  if (size >= 4 && std::memcmp(head, "GGUF", 4) == 0) {
    inspect_gguf(path, out);
    return out;
  }
  const std::string found = size < 4 ? "it is " + std::to_string(info.size) + " bytes, too short for the magic"
                                     : "bad magic: " + describe_gguf_magic(head, size);
  add_problem(out, ModelProblemKind::Unsupported,
              "'" + path + "' is not a GGUF file (" + found +
                  ") nor a model folder; give a .gguf file, or the folder " +
                  "that holds config.json and the safetensors weights");
  return out;
}

}  // namespace tidal
