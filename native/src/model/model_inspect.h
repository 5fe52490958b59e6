// What a model path holds, read from headers only: a Hugging Face folder's config.json and
// safetensors headers, or a GGUF file's header (metadata and tensor infos). The parsers are
// the ones the engine loads with (parse_model_config, parse_safetensors via WeightStore,
// parse_gguf, gguf_model_config, read_gguf_tokenizer); inspection adds the header-only checks
// the engine otherwise makes while binding weights (every tensor of expected_tensors, with
// its shape; none the config leaves unused) and collects every problem instead of stopping
// at the first exception.
//
// No weight bytes are read: files are memory-mapped and only the header pages are touched,
// so a 16 GB file costs what a small one does. The one exception is a GGUF file's
// rope_freqs.weight (head_dim / 2 floats), which is how GGUF stores Llama 3 RoPE scaling.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/tensor_names.h"  // expected_tensors: the list the checks below share with the engine

namespace tidal {

enum class ModelProblemKind {
  Missing,      // the path, config.json or the weight files are not there
  Truncated,    // a file ends before what its header describes
  Malformed,    // a header, config.json or metadata value that cannot be read
  Unsupported,  // a valid file of an architecture, dtype or feature the engine does not run
  Mismatch,     // parts that do not belong together (config vs tensors, tokenizer vs embedding)
};

// "missing", "truncated", "malformed", "unsupported", "mismatch".
const char* model_problem_kind_name(ModelProblemKind kind);

struct ModelProblem {
  ModelProblemKind kind;
  std::string message;
};

struct ModelInspection {
  std::string path;
  std::string format;        // "safetensors" (a model folder), "gguf", or "" when neither
  std::string architecture;  // as the files name it: config.json's architectures[0] (else
                             // model_type), GGUF general.architecture; "" when unread
  std::string name;          // GGUF general.name; "" otherwise
  bool has_config = false;   // `config` was resolved: a supported architecture, valid fields
  ModelConfig config;
  std::vector<std::string> dtypes;  // storage types ("BF16", "Q4_K"), most bytes first
  int64_t tensor_count = 0;
  int64_t parameters = 0;     // elements of every tensor
  uint64_t weight_bytes = 0;  // tensor bytes as stored
  // Once loaded on the CPU: block-quantised GGUF matrices stay in their blocks, quantised
  // vectors become f32. On the GPU: Q8_0 / Q4_K / Q6_K matrices (a tied embedding too) in their
  // blocks, the rest bf16, 2 bytes a value (f32 vectors counted at 2 too: they are a rounding
  // error next to the matrices); an untied embedding stays in host memory, none of it there.
  uint64_t loaded_weight_bytes = 0;
  uint64_t gpu_weight_bytes = 0;
  int64_t tokenizer_tokens = 0;        // GGUF tokenizer.ggml.tokens entries; 0 for a folder
  std::vector<ModelProblem> problems;  // empty: the engine can load the model
};

// Inspects a model folder or a .gguf file. Problems of the model never throw: they are
// returned in `problems`, each with a message that names the file and the field.
ModelInspection inspect_model(const std::string& path);

}  // namespace tidal
