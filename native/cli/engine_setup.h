// What the commands share: opening an engine from a model folder or a synthetic model, and
// reading attention options.
#pragma once
#include <memory>
#include <string>

#include "cli_arguments.h"
#include "tidal/engine.h"

namespace tidal::cli {

// Usage text of the options read by open_engine and read_attention_options.
extern const char* const kEngineOptionsUsage;
extern const char* const kAttentionOptionsUsage;

struct OpenedEngine {
  std::unique_ptr<Engine> engine;
  std::string description;  // "DIR" or "synthetic qwen2.5-0.5b"
  double load_seconds = 0.0;
};

// --model DIR | --synthetic NAME, --threads N, --max-context N. When neither model option
// is given, `default_synthetic` is used (empty: --model is required).
OpenedEngine open_engine(Arguments& arguments, const std::string& default_synthetic);

// --mode full|tidal|quest, --budget N, --dense-layers N, --selection-layers 2,13,
// --selection-policy query|kv-max|kv-sum, --correction N.
AttentionOptions read_attention_options(Arguments& arguments);

AttentionMode parse_attention_mode(const std::string& text);
const char* attention_mode_name(AttentionMode mode);

}  // namespace tidal::cli
