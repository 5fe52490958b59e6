// `tidal info`: what the engine makes of a model folder.
#include <cstdio>

#include "cli_command.h"
#include "engine_setup.h"

namespace tidal::cli {

namespace {

int run_info(Arguments& arguments) {
  OpenedEngine opened = open_engine(arguments, "");
  arguments.reject_unused();
  const ModelInfo& info = opened.engine->model_info();
  std::printf("model            %s\n", opened.description.c_str());
  std::printf("architecture     %s\n", info.architecture.c_str());
  std::printf("layers           %lld\n", static_cast<long long>(info.num_layers));
  std::printf("heads            %lld query, %lld key/value, head_dim %lld\n", static_cast<long long>(info.num_heads),
              static_cast<long long>(info.num_kv_heads), static_cast<long long>(info.head_dim));
  std::printf("hidden           %lld (mlp %lld)\n", static_cast<long long>(info.hidden_size),
              static_cast<long long>(info.intermediate_size));
  std::printf("vocabulary       %lld\n", static_cast<long long>(info.vocab_size));
  std::printf("context          %lld (model maximum %lld)\n", static_cast<long long>(info.max_context),
              static_cast<long long>(info.max_position_embeddings));
  std::printf("weights          %s, %.3f GB\n", info.dtype.c_str(), static_cast<double>(info.weight_bytes) / 1e9);
  std::printf("kv cache         %zu bytes per token\n", info.kv_bytes_per_token);
  std::printf("backend          %s, %d threads\n", info.backend.c_str(), info.threads);
  std::printf("loaded in        %.2f s\n", opened.load_seconds);
  return 0;
}

}  // namespace

TIDAL_CLI_COMMAND(info, "info", "describe a model as the engine loads it", kEngineOptionsUsage, {}, run_info);

}  // namespace tidal::cli
