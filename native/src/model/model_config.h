// The architecture-independent description of a decoder-only transformer, parsed from a
// Hugging Face `config.json`. Every field the forward pass needs is resolved here (defaults
// applied, head_dim derived), so the compute code never reads JSON.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tidal {

enum class Architecture { Llama, Mistral, Qwen2, Qwen3 };

const char* architecture_name(Architecture arch);

// Bounds far beyond any released model of these families, applied to config.json and GGUF
// metadata alike; larger values mean a corrupt or hostile file and would otherwise turn into
// absurd allocations later.
namespace config_limits {
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxVocab = 16'777'216;
constexpr int64_t kMaxHidden = 131'072;
constexpr int64_t kMaxIntermediate = 1'048'576;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxPositions = int64_t(1) << 26;
}  // namespace config_limits

// How a model's RoPE frequencies were derived, as its files state it; kept for display. What
// the forward pass reads is ModelConfig::rope_frequencies.
struct RopeScaling {
  // "none", "llama3" (Llama 3.1/3.2 frequency-dependent scaling, from config.json), or
  // "per-pair" (a GGUF file's rope_freqs.weight gave one divisor per pair; the parameters
  // below are then unused). "linear" and "dynamic" are rejected by the parser with a clear
  // error until implemented.
  std::string type = "none";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  std::string model_type;  // as written in config.json ("llama", "qwen2", ...)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;     // query heads
  int64_t num_kv_heads = 0;  // key/value heads (GQA when < num_heads)
  int64_t head_dim = 0;      // explicit in Qwen3 configs, else hidden_size / num_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // Inverse frequency of each rotated pair (head_dim / 2 entries), resolved by the loader
  // from the settings above or the GGUF file (see model/rope_frequencies.h).
  std::vector<float> rope_frequencies;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2: always true)
  bool o_proj_bias = false;     // o_proj carries a bias too (Llama/Qwen3 attention_bias; never Qwen2)
  bool qk_norm = false;         // per-head RMSNorm of q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;   // 0 = none; recorded, not applied (see notes)
  std::string torch_dtype;      // "bfloat16", "float16", "float32" or empty
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;  // config.json's eos_token_id (int or list)
};

// Parses config.json text. Throws tidal::ModelError naming the field and the value found
// for: unsupported architecture/model_type (listing the supported ones), missing or
// non-positive sizes, num_heads not a multiple of num_kv_heads, absurd values (e.g. more
// than 4096 layers or a vocabulary over 16M entries), unknown rope_scaling types. The
// result's rope_frequencies are resolved.
ModelConfig parse_model_config(const std::string& json_text);

// Reads and parses `<dir>/config.json`.
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace tidal
