#include "model/gguf_model.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "model/half.h"
#include "model/rope_frequencies.h"

#include "tidal/error.h"

namespace tidal {

namespace {

// The same bounds parse_model_config applies to config.json.
using namespace config_limits;

constexpr const char* kSupportedArchitectures = "llama, qwen2";

[[noreturn]] void fail(const std::string& message) { throw ModelError("GGUF: " + message); }

// Per-layer tensor suffixes: GGUF "blk.N.<gguf>" <-> Hugging Face "model.layers.N.<hf>".
struct LayerName {
  const char* gguf;
  const char* hf;
};
constexpr LayerName kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},          {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},          {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},          {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},     {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},       {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
constexpr LayerName kModelNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// Splits "<prefix><digits>.<rest>" into the layer number and rest; false otherwise.
bool split_layer(const std::string& name, const std::string& prefix, std::string* layer, std::string* rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size();
  size_t digits_begin = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == digits_begin || i - digits_begin > 6 || i >= name.size() || name[i] != '.') return false;
  if (name[digits_begin] == '0' && i - digits_begin > 1) return false;  // "blk.01" is not a layer number
  *layer = name.substr(digits_begin, i - digits_begin);
  *rest = name.substr(i + 1);
  return true;
}

int64_t required_int(const GgufContents& gguf, const std::string& key, int64_t lo, int64_t hi) {
  const GgufValue* v = gguf.find(key);
  if (!v) fail("required metadata '" + key + "' is missing");
  int64_t value = v->as_int(key);
  if (value < lo || value > hi)
    fail("metadata '" + key + "' = " + std::to_string(value) + " is out of range (expected " + std::to_string(lo) +
         " to " + std::to_string(hi) + ")");
  return value;
}

int64_t int_or(const GgufContents& gguf, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  return gguf.find(key) ? required_int(gguf, key, lo, hi) : fallback;
}

std::string format_number(double value) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

double number_or(const GgufContents& gguf, const std::string& key, double fallback, double lo, double hi) {
  const GgufValue* v = gguf.find(key);
  if (!v) return fallback;
  double value = v->as_double(key);
  if (!std::isfinite(value) || value <= lo || value > hi)
    fail("metadata '" + key + "' = " + format_number(value) + " is out of range (expected above " + format_number(lo) +
         " and at most " + format_number(hi) + ")");
  return value;
}

std::vector<std::string> string_array(const GgufContents& gguf, const std::string& key) {
  std::vector<std::string> out;
  const GgufValue* v = gguf.find(key);
  if (!v) return out;
  if (!v->is_array() || v->element_type != GgufValueType::String)
    fail("metadata '" + key + "' must be an array of strings, found " + v->describe());
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) out.emplace_back(v->string_item(i));
  return out;
}

std::optional<int64_t> token_id(const GgufContents& gguf, const std::string& key, size_t vocab) {
  const GgufValue* v = gguf.find(key);
  if (!v) return std::nullopt;
  int64_t id = v->as_int(key);
  // Some converters write -1 (as a signed or wrapped unsigned value) for "none".
  if (id == -1 || (v->type == GgufValueType::U32 && v->unsigned_value == 0xFFFFFFFFu)) return std::nullopt;
  if (id < 0 || (vocab > 0 && static_cast<size_t>(id) >= vocab))
    fail("metadata '" + key + "' = " + std::to_string(id) + " is not a token id of the vocabulary (0 to " +
         std::to_string(static_cast<int64_t>(vocab) - 1) + ")");
  return id;
}

void check_permutable(int64_t rows, int64_t heads) {
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
    fail(std::to_string(rows) + " rows do not split into " + std::to_string(heads) + " heads of an even size");
}

}  // namespace

namespace {

// Moves whole rows of `row_bytes` bytes between the two orders. Within a head of D rows,
// Hugging Face row i * D/2 + j is converter row 2j + i.
void reorder_rows(const uint8_t* src, uint8_t* dst, int64_t rows, size_t row_bytes, int64_t heads, bool to_hf) {
  check_permutable(rows, heads);
  const int64_t head_rows = rows / heads, half = head_rows / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t hf_row = h * head_rows + i * half + j;
        const int64_t gguf_row = h * head_rows + 2 * j + i;
        const int64_t from = to_hf ? gguf_row : hf_row, to = to_hf ? hf_row : gguf_row;
        if (row_bytes) std::memcpy(dst + to * row_bytes, src + from * row_bytes, row_bytes);
      }
}

}  // namespace

void gguf_permute_qk_rows(const float* hf_rows, float* gguf_rows, int64_t rows, int64_t row_elements, int64_t heads) {
  reorder_rows(reinterpret_cast<const uint8_t*>(hf_rows), reinterpret_cast<uint8_t*>(gguf_rows), rows,
               static_cast<size_t>(row_elements) * sizeof(float), heads, false);
}

void gguf_unpermute_qk_rows(const float* gguf_rows, float* hf_rows, int64_t rows, int64_t row_elements, int64_t heads) {
  reorder_rows(reinterpret_cast<const uint8_t*>(gguf_rows), reinterpret_cast<uint8_t*>(hf_rows), rows,
               static_cast<size_t>(row_elements) * sizeof(float), heads, true);
}

std::string gguf_to_hf_tensor_name(const std::string& gguf_name) {
  for (const LayerName& n : kModelNames)
    if (gguf_name == n.gguf) return n.hf;
  std::string layer, rest;
  if (!split_layer(gguf_name, "blk.", &layer, &rest)) return "";
  for (const LayerName& n : kLayerNames)
    if (rest == n.gguf) return "model.layers." + layer + "." + n.hf;
  return "";
}

std::string hf_to_gguf_tensor_name(const std::string& hf_name) {
  for (const LayerName& n : kModelNames)
    if (hf_name == n.hf) return n.gguf;
  std::string layer, rest;
  if (!split_layer(hf_name, "model.layers.", &layer, &rest)) return "";
  for (const LayerName& n : kLayerNames)
    if (rest == n.hf) return "blk." + layer + "." + n.gguf;
  return "";
}

GgufTokenizerMetadata read_gguf_tokenizer(const GgufContents& gguf) {
  GgufTokenizerMetadata t;
  if (const GgufValue* v = gguf.find("tokenizer.ggml.model")) t.model = v->as_string("tokenizer.ggml.model");
  if (const GgufValue* v = gguf.find("tokenizer.ggml.pre")) t.pre = v->as_string("tokenizer.ggml.pre");
  t.tokens = string_array(gguf, "tokenizer.ggml.tokens");
  t.merges = string_array(gguf, "tokenizer.ggml.merges");
  if (const GgufValue* v = gguf.find("tokenizer.ggml.scores")) {
    if (!v->is_array() || !(v->element_type == GgufValueType::F32 || v->element_type == GgufValueType::F64))
      fail("metadata 'tokenizer.ggml.scores' must be an array of f32, found " + v->describe());
    if (v->size() != t.tokens.size())
      fail("tokenizer.ggml.scores has " + std::to_string(v->size()) + " entries but tokenizer.ggml.tokens has " +
           std::to_string(t.tokens.size()));
    t.scores.reserve(v->size());
    for (size_t i = 0; i < v->size(); ++i) t.scores.push_back(static_cast<float>(v->item(i).float_value));
  }
  if (const GgufValue* v = gguf.find("tokenizer.ggml.token_type")) {
    if (!v->is_array() || !(v->element_type == GgufValueType::I32 || v->element_type == GgufValueType::U32))
      fail("metadata 'tokenizer.ggml.token_type' must be an array of i32, found " + v->describe());
    if (v->size() != t.tokens.size())
      fail("tokenizer.ggml.token_type has " + std::to_string(v->size()) + " entries but tokenizer.ggml.tokens has " +
           std::to_string(t.tokens.size()));
    t.token_types.reserve(v->size());
    for (size_t i = 0; i < v->size(); ++i)
      t.token_types.push_back(static_cast<int32_t>(v->item(i).as_int("tokenizer.ggml.token_type")));
  }
  const size_t vocab = t.tokens.size();
  t.bos_id = token_id(gguf, "tokenizer.ggml.bos_token_id", vocab);
  t.eos_id = token_id(gguf, "tokenizer.ggml.eos_token_id", vocab);
  t.eot_id = token_id(gguf, "tokenizer.ggml.eot_token_id", vocab);
  t.unknown_id = token_id(gguf, "tokenizer.ggml.unknown_token_id", vocab);
  t.padding_id = token_id(gguf, "tokenizer.ggml.padding_token_id", vocab);
  if (const GgufValue* v = gguf.find("tokenizer.ggml.add_bos_token"))
    t.add_bos = v->as_bool("tokenizer.ggml.add_bos_token");
  if (const GgufValue* v = gguf.find("tokenizer.ggml.add_eos_token"))
    t.add_eos = v->as_bool("tokenizer.ggml.add_eos_token");
  if (const GgufValue* v = gguf.find("tokenizer.ggml.add_space_prefix"))
    t.add_space_prefix = v->as_bool("tokenizer.ggml.add_space_prefix");
  const std::string template_key = "tokenizer.chat_template";
  for (const auto& [key, value] : gguf.metadata) {
    if (key == template_key) {
      t.chat_template = value.as_string(key);
    } else if (key.size() > template_key.size() + 1 &&
               key.compare(0, template_key.size() + 1, template_key + ".") == 0) {
      t.named_chat_templates[key.substr(template_key.size() + 1)] = value.as_string(key);
    }
  }
  return t;
}

ModelConfig gguf_model_config(const GgufContents& gguf) {
  const GgufValue* arch_value = gguf.find("general.architecture");
  if (!arch_value)
    fail("required metadata 'general.architecture' is missing; supported architectures: " +
         std::string(kSupportedArchitectures));
  const std::string arch = arch_value->as_string("general.architecture");
  ModelConfig c;
  if (arch == "llama") {
    c.architecture = Architecture::Llama;
  } else if (arch == "qwen2") {
    c.architecture = Architecture::Qwen2;
  } else {
    fail("unsupported architecture '" + arch + "' (general.architecture); supported: " + kSupportedArchitectures);
  }
  c.model_type = arch;
  const std::string p = arch + ".";

  c.num_layers = required_int(gguf, p + "block_count", 1, kMaxLayers);
  c.hidden_size = required_int(gguf, p + "embedding_length", 1, kMaxHidden);
  c.intermediate_size = required_int(gguf, p + "feed_forward_length", 1, kMaxIntermediate);
  c.num_heads = required_int(gguf, p + "attention.head_count", 1, kMaxHeads);
  c.num_kv_heads = int_or(gguf, p + "attention.head_count_kv", c.num_heads, 1, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    fail(p + "attention.head_count = " + std::to_string(c.num_heads) + " is not a multiple of " + p +
         "attention.head_count_kv = " + std::to_string(c.num_kv_heads));
  if (gguf.find(p + "attention.key_length")) {
    c.head_dim = required_int(gguf, p + "attention.key_length", 1, kMaxHeadDim);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail(p + "embedding_length = " + std::to_string(c.hidden_size) + " is not divisible by " + p +
           "attention.head_count = " + std::to_string(c.num_heads) + " and no key_length is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0 || c.head_dim > kMaxHeadDim)
    fail("head dimension " + std::to_string(c.head_dim) + " is odd or too large; rotary embeddings rotate pairs");
  if (const GgufValue* v = gguf.find(p + "attention.value_length");
      v && v->as_int(p + "attention.value_length") != c.head_dim)
    fail(p + "attention.value_length differs from the key length; not supported");
  if (gguf.find(p + "rope.dimension_count") &&
      required_int(gguf, p + "rope.dimension_count", 1, kMaxHeadDim) != c.head_dim)
    fail(p +
         "rope.dimension_count = " + std::to_string(required_int(gguf, p + "rope.dimension_count", 1, kMaxHeadDim)) +
         " differs from the head dimension " + std::to_string(c.head_dim) +
         "; partial rotary embeddings are not supported");
  c.max_position_embeddings = int_or(gguf, p + "context_length", arch == "qwen2" ? 32768 : 2048, 1, kMaxPositions);
  c.rms_norm_eps = number_or(gguf, p + "attention.layer_norm_rms_epsilon", 1e-6, 0.0, 0.1);
  c.rope_theta = number_or(gguf, p + "rope.freq_base", 10000.0, 1.0, 1e12);

  // Vocabulary: the embedding's rows, else the token list.
  const GgufTensorInfo* embedding = gguf.find_tensor("token_embd.weight");
  const GgufValue* tokens = gguf.find("tokenizer.ggml.tokens");
  if (embedding && embedding->ne.size() == 2) {
    c.vocab_size = embedding->ne[1];
  } else if (tokens && tokens->is_array()) {
    c.vocab_size = static_cast<int64_t>(tokens->size());
  } else {
    c.vocab_size = int_or(gguf, p + "vocab_size", 0, 1, kMaxVocab);
  }
  if (c.vocab_size < 1 || c.vocab_size > kMaxVocab)
    fail("vocabulary size " + std::to_string(c.vocab_size) + " is out of range (expected 1 to " +
         std::to_string(kMaxVocab) + "); no token_embd.weight or tokenizer.ggml.tokens gives it");

  c.tie_word_embeddings = gguf.find_tensor("output.weight") == nullptr;
  if (c.architecture == Architecture::Qwen2) {
    c.attention_bias = true;
  } else {
    c.attention_bias = gguf.find_tensor("blk.0.attn_q.bias") != nullptr;
    c.o_proj_bias = gguf.find_tensor("blk.0.attn_output.bias") != nullptr;
  }

  // RoPE: explicit scaling metadata (linear, yarn: not supported), or per-pair divisors in
  // rope_freqs.weight (how the llama.cpp converter stores Llama 3 scaling), used as given.
  if (const GgufValue* v = gguf.find(p + "rope.scaling.type")) {
    const std::string type = v->as_string(p + "rope.scaling.type");
    if (type != "none")
      fail("unsupported RoPE scaling '" + type + "' (" + p + "rope.scaling.type); supported: none, or per-pair " +
           "divisors in rope_freqs.weight");
  }
  if (const GgufTensorInfo* freqs = gguf.find_tensor("rope_freqs.weight")) {
    if (freqs->ne.size() != 1 || freqs->ne[0] != c.head_dim / 2)
      fail("rope_freqs.weight has shape " + shape_string(freqs->shape()) + "; expected [" +
           std::to_string(c.head_dim / 2) + "], one divisor per rotated pair");
    std::vector<float> divisors(static_cast<size_t>(freqs->numel));
    gguf_tensor_to_f32(*freqs, divisors.data());
    c.rope_scaling.type = "per-pair";
    try {
      c.rope_frequencies = rope_frequencies_from_divisors(c.head_dim, c.rope_theta, divisors);
    } catch (const ModelError& e) {
      fail(e.what());
    }
  } else {
    c.rope_frequencies = rope_frequencies_from_parameters(c.head_dim, c.rope_theta, c.rope_scaling);
  }

  GgufTokenizerMetadata tokenizer = read_gguf_tokenizer(gguf);
  const size_t ids_limit = static_cast<size_t>(c.vocab_size);
  auto in_vocab = [&](const std::optional<int64_t>& id) { return id && static_cast<size_t>(*id) < ids_limit; };
  if (in_vocab(tokenizer.bos_id)) c.bos_token_ids.push_back(*tokenizer.bos_id);
  if (in_vocab(tokenizer.eos_id)) c.eos_token_ids.push_back(*tokenizer.eos_id);
  if (in_vocab(tokenizer.eot_id) && tokenizer.eot_id != tokenizer.eos_id) c.eos_token_ids.push_back(*tokenizer.eot_id);
  return c;
}

struct GgufModel::State {
  std::unique_ptr<GgufFile> file;
  GgufLoadOptions options;
  ModelConfig config;
  GgufTokenizerMetadata tokenizer;
  std::vector<float> rope_freq_factors;
  std::vector<std::string> unmapped;
  struct Entry {
    const GgufTensorInfo* info = nullptr;
    int64_t permute_heads = 0;  // > 0: llama Q/K rows to put back in Hugging Face order
    bool converted = false;
    TensorView view;
    std::vector<uint8_t> bytes;  // a reordered or dequantised copy, when one was needed
  };
  std::map<std::string, Entry> entries;
  std::mutex mutex;  // guards conversion of entries
};

GgufModel::GgufModel() : state_(std::make_unique<State>()) {}
GgufModel::GgufModel(GgufModel&&) noexcept = default;
GgufModel& GgufModel::operator=(GgufModel&&) noexcept = default;
GgufModel::~GgufModel() = default;

GgufModel GgufModel::open(const std::string& path, const GgufLoadOptions& options) {
  GgufModel model;
  State& s = *model.state_;
  s.options = options;
  s.file = std::make_unique<GgufFile>(GgufFile::open(path));
  const GgufContents& gguf = s.file->contents();
  try {
    s.config = gguf_model_config(gguf);
    s.tokenizer = read_gguf_tokenizer(gguf);
  } catch (const ModelError& e) {
    throw ModelError(std::string(e.what()) + " (in '" + path + "')");
  }
  const bool llama = s.config.architecture == Architecture::Llama;
  for (const GgufTensorInfo& info : gguf.tensors) {
    std::string hf = gguf_to_hf_tensor_name(info.name);
    if (hf.empty()) {
      s.unmapped.push_back(info.name);
      continue;
    }
    State::Entry& entry = s.entries[hf];
    entry.info = &info;
    std::string layer, rest;
    if (llama && split_layer(info.name, "blk.", &layer, &rest)) {
      if (rest == "attn_q.weight" || rest == "attn_q.bias") entry.permute_heads = s.config.num_heads;
      if (rest == "attn_k.weight" || rest == "attn_k.bias") entry.permute_heads = s.config.num_kv_heads;
    }
    if (entry.permute_heads > 0) {
      const int64_t rows = info.ne.back();
      if (rows % entry.permute_heads != 0 || (rows / entry.permute_heads) % 2 != 0)
        throw ModelError("GGUF: tensor '" + info.name + "' has " + std::to_string(rows) +
                         " rows, which do not split into " + std::to_string(entry.permute_heads) +
                         " heads of an even size (in '" + path + "')");
    }
    entry.view.name = hf;
    entry.view.shape = info.shape();
  }
  if (const GgufTensorInfo* freqs = gguf.find_tensor("rope_freqs.weight")) {
    s.rope_freq_factors.resize(static_cast<size_t>(freqs->numel));
    gguf_tensor_to_f32(*freqs, s.rope_freq_factors.data());
  }
  return model;
}

const ModelConfig& GgufModel::config() const { return state_->config; }
const GgufTokenizerMetadata& GgufModel::tokenizer() const { return state_->tokenizer; }
const GgufFile& GgufModel::file() const { return *state_->file; }
const std::vector<float>& GgufModel::rope_freq_factors() const { return state_->rope_freq_factors; }
std::vector<std::string> GgufModel::unmapped_names() const { return state_->unmapped; }

std::vector<std::string> GgufModel::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : state_->entries) out.push_back(name);
  return out;
}

const TensorView* GgufModel::find(const std::string& hf_name) const {
  auto it = state_->entries.find(hf_name);
  if (it == state_->entries.end()) return nullptr;
  std::lock_guard<std::mutex> lock(state_->mutex);
  State::Entry& entry = it->second;
  if (entry.converted) return &entry.view;
  const GgufTensorInfo& info = *entry.info;
  const std::optional<DType> stored = dtype_of_ggml(info.type);
  const bool plain = info.type == GgmlType::F32 || info.type == GgmlType::F16 || info.type == GgmlType::BF16;
  // Quantised matrices stay in their blocks (rows are whole blocks, so Q/K rows move intact);
  // quantised vectors are dequantised.
  const bool kept = plain || (stored && state_->options.keep_quantized && info.ne.size() == 2);
  const int64_t rows = info.ne.back();
  if (kept) {
    entry.view.dtype = *stored;
    entry.view.bytes = info.bytes;
    entry.view.data = info.data;
    if (entry.permute_heads > 0) {
      // Same type, rows moved: exact for every element.
      entry.bytes.resize(info.bytes);
      reorder_rows(info.data, entry.bytes.data(), rows, rows > 0 ? info.bytes / static_cast<size_t>(rows) : 0,
                   entry.permute_heads, true);
      entry.view.data = entry.bytes.data();
    }
  } else {
    const size_t count = static_cast<size_t>(info.numel);
    std::vector<float> values(count);
    gguf_tensor_to_f32(info, values.data());
    if (entry.permute_heads > 0) {
      std::vector<float> reordered(count);
      gguf_unpermute_qk_rows(values.data(), reordered.data(), rows, rows > 0 ? info.numel / rows : 0,
                             entry.permute_heads);
      values.swap(reordered);
    }
    const DType target = state_->options.dequantized_dtype;
    entry.bytes.resize(count * dtype_size(target));
    if (target == DType::F32) {
      if (count) std::memcpy(entry.bytes.data(), values.data(), count * sizeof(float));
    } else {
      for (size_t i = 0; i < count; ++i) {
        const uint16_t h = target == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
        std::memcpy(entry.bytes.data() + 2 * i, &h, 2);
      }
    }
    entry.view.dtype = target;
    entry.view.data = entry.bytes.data();
    entry.view.bytes = entry.bytes.size();
  }
  entry.converted = true;
  return &entry.view;
}

}  // namespace tidal
