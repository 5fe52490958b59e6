#include "engine_setup.h"

#include <chrono>
#include <utility>

#include "engine/synthetic_model.h"
#include "tidal/option_limits.h"

namespace tidal::cli {

const char* const kEngineOptionsUsage =
    "(--model DIR | --synthetic tiny|qwen2.5-0.5b|qwen2.5-1.5b|llama-3.2-1b [--weights f32|bf16|f16|q8_0|q4_k|q6_k]) "
    "[--threads N] [--max-context N]";
const char* const kAttentionOptionsUsage =
    "[--mode full|tidal|quest] [--budget TOKENS] [--dense-layers N] [--selection-layers 2,13] "
    "[--selection-policy query|kv-max|kv-sum] [--correction N]";

namespace {

DType parse_weight_dtype(const std::string& text) {
  const std::pair<const char*, DType> known[] = {{"f32", DType::F32},   {"bf16", DType::BF16}, {"f16", DType::F16},
                                                 {"q8_0", DType::Q8_0}, {"q4_k", DType::Q4_K}, {"q6_k", DType::Q6_K}};
  for (const auto& [name, dtype] : known)
    if (text == name) return dtype;
  throw UsageError("--weights '" + text + "' is not one of f32, bf16, f16, q8_0, q4_k, q6_k");
}

}  // namespace

OpenedEngine open_engine(Arguments& arguments, const std::string& default_synthetic) {
  EngineOptions options;
  options.threads = static_cast<int>(arguments.integer("--threads", 0, 0, limits::kMaxThreads));
  options.max_context = arguments.integer("--max-context", 0, 0, limits::kMaxContext);
  const std::string model_dir = arguments.text("--model", "");
  std::string synthetic = arguments.text("--synthetic", "");
  const std::string weights = arguments.text("--weights", "");
  if (!weights.empty() && !model_dir.empty()) throw UsageError("--weights applies to --synthetic models only");
  if (!model_dir.empty() && !synthetic.empty()) throw UsageError("give --model or --synthetic, not both");
  if (model_dir.empty() && synthetic.empty()) {
    if (default_synthetic.empty()) throw UsageError("missing option --model");
    synthetic = default_synthetic;
  }
  OpenedEngine opened;
  const auto started = std::chrono::steady_clock::now();
  if (!model_dir.empty()) {
    opened.engine = Engine::load(model_dir, options);
    opened.description = model_dir;
  } else {
    SyntheticModelSpec spec = synthetic_model_preset(synthetic);
    if (!weights.empty()) spec.dtype = parse_weight_dtype(weights);
    SyntheticModel model = make_synthetic_model(spec);
    opened.engine = Engine::from_tensors(model.config, model.tensors, options);
    opened.description = "synthetic " + synthetic;
  }
  opened.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return opened;
}

AttentionMode parse_attention_mode(const std::string& text) {
  if (text == "full") return AttentionMode::Full;
  if (text == "tidal") return AttentionMode::Tidal;
  if (text == "quest") return AttentionMode::Quest;
  throw UsageError("attention mode '" + text + "' is not one of full, tidal, quest");
}

const char* attention_mode_name(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::Full:
      return "full";
    case AttentionMode::Tidal:
      return "tidal";
    case AttentionMode::Quest:
      return "quest";
  }
  return "?";
}

AttentionOptions read_attention_options(Arguments& arguments) {
  AttentionOptions options;
  options.mode = parse_attention_mode(arguments.text("--mode", "full"));
  options.token_budget = arguments.integer("--budget", options.token_budget, 1, limits::kMaxTokenBudget);
  options.dense_layers = arguments.integer("--dense-layers", options.dense_layers, 0, limits::kMaxDenseLayers);
  options.selection_layers = arguments.integer_list("--selection-layers", {}, 0, limits::kMaxLayerIndex);
  const std::string policy = arguments.text("--selection-policy", "query");
  if (policy == "query")
    options.selection_policy = SelectionPolicy::PerQueryHead;
  else if (policy == "kv-max")
    options.selection_policy = SelectionPolicy::PerKvHeadMax;
  else if (policy == "kv-sum")
    options.selection_policy = SelectionPolicy::PerKvHeadSum;
  else
    throw UsageError("selection policy '" + policy + "' is not one of query, kv-max, kv-sum");
  options.correction_interval = arguments.integer("--correction", 0, 0, limits::kMaxCorrectionInterval);
  return options;
}

}  // namespace tidal::cli
