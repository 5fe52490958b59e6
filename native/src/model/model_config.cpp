#include "model/model_config.h"

#include <cmath>
#include <cstdio>

#include "model/json.h"
#include "model/mapped_file.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"

namespace tidal {

const char* architecture_name(Architecture arch) {
  switch (arch) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
    case Architecture::Qwen3:
      return "qwen3";
  }
  return "?";
}

namespace {

using namespace config_limits;
constexpr size_t kMaxTokenIdList = 64;
constexpr size_t kMaxConfigBytes = 16u << 20;

constexpr const char* kSupported = "llama, mistral, qwen2, qwen3";

std::string format_number(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

[[noreturn]] void fail(const std::string& message) { throw ModelError("config.json: " + message); }

// Typed field access on one JSON object, with messages that name the field. A field that is
// absent or null takes its default.
class FieldReader {
 public:
  FieldReader(const json::Value& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  const json::Value* get(const char* key) const {
    const json::Value* v = object_.find(key);
    return v && !v->is_null() ? v : nullptr;
  }
  bool has(const char* key) const { return get(key) != nullptr; }
  std::string field(const char* key) const { return prefix_ + key; }

  int64_t integer(const char* key, const json::Value& v) const {
    if (v.is_int()) return v.as_int();
    if (v.is_number()) {
      double d = v.as_double();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
    }
    fail("field '" + field(key) + "' must be an integer, found " + v.describe());
  }

  int64_t in_range(const char* key, int64_t value, int64_t lo, int64_t hi) const {
    if (value < lo || value > hi)
      fail(field(key) + " = " + std::to_string(value) + " is out of range (expected " + std::to_string(lo) + " to " +
           std::to_string(hi) + ")");
    return value;
  }

  int64_t required_int(const char* key, int64_t lo, int64_t hi) const {
    const json::Value* v = get(key);
    if (!v) fail("required field '" + field(key) + "' is missing");
    return in_range(key, integer(key, *v), lo, hi);
  }

  int64_t int_or(const char* key, int64_t fallback, int64_t lo, int64_t hi) const {
    const json::Value* v = get(key);
    return v ? in_range(key, integer(key, *v), lo, hi) : fallback;
  }

  double number(const char* key, const json::Value& v) const {
    if (!v.is_number()) fail("field '" + field(key) + "' must be a number, found " + v.describe());
    return v.as_double();
  }

  // A finite number in [lo, hi] (or (lo, hi] when lo_exclusive).
  double number_or(const char* key, double fallback, double lo, double hi, bool lo_exclusive) const {
    const json::Value* v = get(key);
    if (!v) return fallback;
    double d = number(key, *v);
    bool ok = std::isfinite(d) && (lo_exclusive ? d > lo : d >= lo) && d <= hi;
    if (!ok)
      fail(field(key) + " = " + format_number(d) + " is out of range (expected " +
           (lo_exclusive ? "above " : "at least ") + format_number(lo) + " and at most " + format_number(hi) + ")");
    return d;
  }

  double required_number(const char* key, double lo, double hi, bool lo_exclusive) const {
    if (!has(key)) fail("required field '" + field(key) + "' is missing");
    return number_or(key, 0.0, lo, hi, lo_exclusive);
  }

  bool bool_or(const char* key, bool fallback) const {
    const json::Value* v = get(key);
    if (!v) return fallback;
    if (!v->is_bool()) fail("field '" + field(key) + "' must be true or false, found " + v->describe());
    return v->as_bool();
  }

  std::string string_or(const char* key, const std::string& fallback) const {
    const json::Value* v = get(key);
    if (!v) return fallback;
    if (!v->is_string()) fail("field '" + field(key) + "' must be a string, found " + v->describe());
    return v->as_string();
  }

  // An int, a list of ints, or null/absent (empty).
  std::vector<int64_t> token_ids(const char* key, int64_t vocab_size) const {
    std::vector<int64_t> ids;
    const json::Value* v = get(key);
    if (!v) return ids;
    auto add = [&](const json::Value& item) {
      int64_t id = integer(key, item);
      if (id < 0 || id >= vocab_size)
        fail(field(key) + " = " + std::to_string(id) + " is not a token id of the vocabulary (0 to " +
             std::to_string(vocab_size - 1) + ")");
      ids.push_back(id);
    };
    if (v->is_array()) {
      if (v->size() > kMaxTokenIdList)
        fail("field '" + field(key) + "' lists " + std::to_string(v->size()) + " ids, more than " +
             std::to_string(kMaxTokenIdList));
      for (const json::Value& item : v->items()) add(item);
    } else {
      add(*v);
    }
    return ids;
  }

 private:
  const json::Value& object_;
  std::string prefix_;
};

struct ArchitectureEntry {
  const char* model_type;
  const char* causal_lm_class;
  Architecture architecture;
};

constexpr ArchitectureEntry kArchitectures[] = {
    {"llama", "LlamaForCausalLM", Architecture::Llama},
    {"mistral", "MistralForCausalLM", Architecture::Mistral},
    {"qwen2", "Qwen2ForCausalLM", Architecture::Qwen2},
    {"qwen3", "Qwen3ForCausalLM", Architecture::Qwen3},
};

// model_type decides the family; architectures[0] (the head class) must be that family's
// causal-LM class when present, since other heads (classification, reward) have no lm_head.
Architecture resolve_architecture(const FieldReader& fields, std::string* model_type_out) {
  std::string model_type = fields.string_or("model_type", "");
  std::string head_class;
  if (const json::Value* list = fields.get("architectures")) {
    if (!list->is_array()) fail("field 'architectures' must be a list of class names, found " + list->describe());
    if (list->size() > 0) {
      if (!(*list)[0].is_string()) fail("field 'architectures' must hold class names, found " + (*list)[0].describe());
      head_class = (*list)[0].as_string();
    }
  }
  if (model_type.empty() && head_class.empty())
    fail("neither 'model_type' nor 'architectures' is given, so the model family is unknown; supported: " +
         std::string(kSupported));

  auto unsupported = [&]() {
    std::string shown = head_class.empty() ? model_type : head_class;
    std::string type_note = model_type.empty() ? "no model_type" : "model_type '" + model_type + "'";
    throw ModelError("unsupported model architecture '" + shown + "' (" + type_note + "); supported: " + kSupported);
  };

  const ArchitectureEntry* by_type = nullptr;
  const ArchitectureEntry* by_class = nullptr;
  for (const auto& entry : kArchitectures) {
    if (model_type == entry.model_type) by_type = &entry;
    if (head_class == entry.causal_lm_class) by_class = &entry;
  }
  if (!model_type.empty() && !by_type) unsupported();
  if (!head_class.empty() && !by_class) unsupported();
  if (by_type && by_class && by_type != by_class)
    fail("architectures[0] '" + head_class + "' does not match model_type '" + model_type + "'");
  const ArchitectureEntry* entry = by_type ? by_type : by_class;
  *model_type_out = entry->model_type;
  return entry->architecture;
}

// RoPE settings come in two spellings:
//   transformers <= 4.x: top-level "rope_theta" and "rope_scaling": {"rope_type"|"type": ..., factor...} or null
//   transformers >= 5:   "rope_parameters": {"rope_type": ..., "rope_theta": ..., factor...}
// rope_parameters wins when both are present.
void parse_rope(const FieldReader& fields, int64_t max_positions, ModelConfig& config) {
  config.rope_theta = fields.number_or("rope_theta", 10000.0, 1.0, 1e12, true);

  const json::Value* rope = nullptr;
  std::string name;
  if (const json::Value* parameters = fields.get("rope_parameters")) {
    if (!parameters->is_object()) fail("field 'rope_parameters' must be an object, found " + parameters->describe());
    rope = parameters;
    name = "rope_parameters";
  } else if (const json::Value* scaling = fields.get("rope_scaling")) {
    if (!scaling->is_object()) fail("field 'rope_scaling' must be an object or null, found " + scaling->describe());
    rope = scaling;
    name = "rope_scaling";
  }
  config.rope_scaling = RopeScaling{};
  if (!rope) return;

  FieldReader rope_fields(*rope, name + ".");
  config.rope_theta = rope_fields.number_or("rope_theta", config.rope_theta, 1.0, 1e12, true);
  std::string type = rope_fields.string_or("rope_type", rope_fields.string_or("type", ""));
  if (type.empty()) {
    // rope_parameters without a type is the default rotation; per-layer-type tables
    // ({"full_attention": {...}, "sliding_attention": {...}}) belong to other families.
    for (size_t i = 0; i < rope->size(); ++i)
      if ((*rope)[i].is_object())
        fail("'" + name + "' holds per-layer-type entries ('" + rope->key(i) +
             "'), which these model families do not use");
    if (name == "rope_scaling") fail("'rope_scaling' has no 'rope_type' (or 'type')");
    type = "default";
  }
  if (rope_fields.has("partial_rotary_factor") &&
      rope_fields.number_or("partial_rotary_factor", 1.0, 0.0, 1.0, true) != 1.0)
    fail(name + ".partial_rotary_factor other than 1 (partial rotary embeddings) is not supported");

  if (type == "default") return;
  if (type != "llama3") fail("unsupported " + name + " type '" + type + "'; supported: default, llama3");

  // Llama 3.1 frequency-dependent scaling: wavelengths longer than
  // original_max_position_embeddings / low_freq_factor are divided by `factor`, shorter than
  // .../high_freq_factor kept, and those between interpolated smoothly.
  RopeScaling& s = config.rope_scaling;
  s.type = "llama3";
  s.factor = rope_fields.required_number("factor", 1.0, 1024.0, false);
  s.low_freq_factor = rope_fields.required_number("low_freq_factor", 0.0, 1e6, true);
  s.high_freq_factor = rope_fields.required_number("high_freq_factor", 0.0, 1e6, true);
  if (!rope_fields.has("original_max_position_embeddings"))
    fail("required field '" + name + ".original_max_position_embeddings' is missing");
  s.original_max_position_embeddings = rope_fields.int_or("original_max_position_embeddings", 0, 1, max_positions);
  if (!(s.high_freq_factor > s.low_freq_factor))
    fail(name + ".high_freq_factor = " + format_number(s.high_freq_factor) +
         " must be greater than low_freq_factor = " + format_number(s.low_freq_factor));
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text) {
  json::Value root;
  try {
    root = json::parse(json_text);
  } catch (const json::ParseError& e) {
    throw ModelError(std::string("config.json is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) fail("the top level must be an object, found " + root.describe());
  FieldReader fields(root, "");

  ModelConfig config;
  config.architecture = resolve_architecture(fields, &config.model_type);
  const Architecture arch = config.architecture;

  if (const json::Value* quantization = fields.get("quantization_config")) {
    std::string method = "unknown";
    if (const json::Value* m = quantization->find("quant_method"); m && m->is_string()) method = m->as_string();
    fail("quantized checkpoints are not supported (quantization_config method '" + method +
         "'); use the F32/F16/BF16 release of the model");
  }
  std::string activation = fields.string_or("hidden_act", "silu");
  if (activation != "silu" && activation != "swish")
    fail("hidden_act '" + activation + "' is not supported; supported: silu");

  config.vocab_size = fields.required_int("vocab_size", 1, kMaxVocab);
  config.hidden_size = fields.required_int("hidden_size", 1, kMaxHidden);
  config.intermediate_size = fields.required_int("intermediate_size", 1, kMaxIntermediate);
  config.num_layers = fields.required_int("num_hidden_layers", 1, kMaxLayers);
  config.num_heads = fields.required_int("num_attention_heads", 1, kMaxHeads);
  config.num_kv_heads = fields.int_or("num_key_value_heads", config.num_heads, 1, config.num_heads);
  if (config.num_heads % config.num_kv_heads != 0)
    fail("num_attention_heads = " + std::to_string(config.num_heads) +
         " is not a multiple of num_key_value_heads = " + std::to_string(config.num_kv_heads));

  if (fields.has("head_dim")) {
    config.head_dim = fields.int_or("head_dim", 0, 1, kMaxHeadDim);
  } else if (arch == Architecture::Qwen3) {
    config.head_dim = 128;  // Qwen3's own default, independent of hidden_size
  } else {
    if (config.hidden_size % config.num_heads != 0)
      fail("hidden_size = " + std::to_string(config.hidden_size) + " is not divisible by num_attention_heads = " +
           std::to_string(config.num_heads) + " and no head_dim is given");
    config.head_dim = fields.in_range("head_dim", config.hidden_size / config.num_heads, 1, kMaxHeadDim);
  }
  if (config.head_dim % 2 != 0)
    fail("head_dim = " + std::to_string(config.head_dim) + " is odd; rotary embeddings rotate pairs of dimensions");

  int64_t default_positions = 2048;
  if (arch == Architecture::Mistral) default_positions = 4096 * 32;
  if (arch == Architecture::Qwen2 || arch == Architecture::Qwen3) default_positions = 32768;
  config.max_position_embeddings = fields.int_or("max_position_embeddings", default_positions, 1, kMaxPositions);
  config.rms_norm_eps = fields.number_or("rms_norm_eps", 1e-6, 0.0, 0.1, true);
  parse_rope(fields, kMaxPositions, config);
  resolve_rope_frequencies(config);

  config.tie_word_embeddings = fields.bool_or("tie_word_embeddings", false);
  bool attention_bias = fields.bool_or("attention_bias", false);
  switch (arch) {
    case Architecture::Llama:
      // LlamaAttention gives q, k, v and o the same bias setting.
      config.attention_bias = attention_bias;
      config.o_proj_bias = attention_bias;
      if (fields.bool_or("mlp_bias", false)) fail("mlp_bias = true (MLP projections with biases) is not supported");
      break;
    case Architecture::Mistral:
      break;  // no biases anywhere
    case Architecture::Qwen2:
      config.attention_bias = true;  // q/k/v always biased, o_proj never
      break;
    case Architecture::Qwen3:
      config.attention_bias = attention_bias;
      config.o_proj_bias = attention_bias;
      config.qk_norm = true;
      break;
  }

  // Sliding window: recorded only. Mistral's default is 4096 when the key is absent; Qwen
  // configs carry a value that applies only with use_sliding_window.
  const json::Value* window = root.find("sliding_window");
  if (window && !window->is_null()) {
    config.sliding_window = fields.int_or("sliding_window", 0, 0, kMaxPositions);
  } else if (!window && arch == Architecture::Mistral) {
    config.sliding_window = 4096;
  }
  if ((arch == Architecture::Qwen2 || arch == Architecture::Qwen3) && !fields.bool_or("use_sliding_window", false))
    config.sliding_window = 0;

  // transformers 5 writes "dtype"; earlier versions "torch_dtype".
  config.torch_dtype = fields.string_or("dtype", fields.string_or("torch_dtype", ""));
  config.bos_token_ids = fields.token_ids("bos_token_id", config.vocab_size);
  config.eos_token_ids = fields.token_ids("eos_token_id", config.vocab_size);
  return config;
}

ModelConfig load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::unique_ptr<MappedFile> file;
  try {
    file = MappedFile::open(path);
  } catch (const ModelError& e) {
    throw ModelError("cannot read the model's config.json: " + std::string(e.what()) +
                     "; a Hugging Face model folder holds config.json next to the weights");
  }
  if (file->size() > kMaxConfigBytes)
    throw ModelError("'" + path + "' is " + std::to_string(file->size()) + " bytes, over the " +
                     std::to_string(kMaxConfigBytes) + "-byte limit for config.json");
  std::string text;
  if (file->size() > 0) text.assign(reinterpret_cast<const char*>(file->data()), file->size());
  try {
    return parse_model_config(text);
  } catch (const ModelError& e) {
    // Name the file the user has to look at.
    throw ModelError(std::string(e.what()) + " (in '" + path + "')");
  }
}

}  // namespace tidal
