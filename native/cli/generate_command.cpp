// `tidal generate`: prefill a prompt given as token ids and stream the generated ids.
#include <cstdio>
#include <string>

#include "cli_command.h"
#include "engine_setup.h"
#include "tidal/option_limits.h"

namespace tidal::cli {

namespace {

int run_generate(Arguments& arguments) {
  const std::vector<int64_t> prompt_ids =
      parse_integer_list(arguments.required_text("--prompt-tokens"), "--prompt-tokens", 0, limits::kMaxTokenId);
  GenerateOptions options;
  options.max_tokens = arguments.integer("--max-tokens", 32, 0, limits::kMaxNewTokens);
  options.attention = read_attention_options(arguments);
  options.sampling.temperature =
      static_cast<float>(arguments.number("--temperature", 0.0, 0.0, limits::kMaxTemperature));
  options.sampling.top_k = arguments.integer("--top-k", 0, 0, limits::kMaxTopK);
  options.sampling.top_p = static_cast<float>(arguments.number("--top-p", 1.0, 0.0, 1.0));
  options.sampling.seed = static_cast<uint64_t>(arguments.integer("--seed", 0, 0, limits::kMaxSeed));
  for (int64_t id : arguments.integer_list("--stop-tokens", {}, 0, limits::kMaxTokenId))
    options.stop_tokens.push_back(static_cast<int32_t>(id));
  options.stop_at_eos = !arguments.flag("--no-eos-stop");
  OpenedEngine opened = open_engine(arguments, "");
  arguments.reject_unused();

  std::vector<int32_t> prompt(prompt_ids.begin(), prompt_ids.end());
  Engine& engine = *opened.engine;
  const SequenceId sequence = engine.create_sequence();
  bool first = true;
  const GenerateResult result = engine.generate(sequence, prompt, options, [&](int32_t token) {
    std::printf(first ? "%d" : ",%d", token);
    first = false;
    std::fflush(stdout);
    return true;
  });
  std::printf("\n");
  std::fflush(stdout);
  const UsageStats usage = engine.usage();
  const double decode_rate = result.decode_seconds > 0 && result.tokens.size() > 1
                                 ? static_cast<double>(result.tokens.size() - 1) / result.decode_seconds
                                 : 0.0;
  std::fprintf(stderr,
               "model %s (%s, %s, %lld layers), %d threads, attention %s\n"
               "prefill %lld tokens in %.3f s (%.1f tokens/s); decode %zu tokens in %.3f s (%.2f tokens/s); "
               "finish: %s; attended %.1f%% of the cache in the last step\n",
               opened.description.c_str(), engine.model_info().architecture.c_str(), engine.model_info().dtype.c_str(),
               static_cast<long long>(engine.model_info().num_layers), engine.model_info().threads,
               attention_mode_name(options.attention.mode), static_cast<long long>(result.prompt_tokens),
               result.prefill_seconds,
               result.prefill_seconds > 0 ? static_cast<double>(result.prompt_tokens) / result.prefill_seconds : 0.0,
               result.tokens.size(), result.decode_seconds, decode_rate, finish_reason_name(result.finish_reason),
               100.0 * usage.last_selection.attended_fraction);
  return 0;
}

}  // namespace

TIDAL_CLI_COMMAND(generate, "generate", "generate token ids from a prompt of token ids",
                  std::string("--prompt-tokens 1,2,3 [--max-tokens N] ") + kEngineOptionsUsage + " " +
                      kAttentionOptionsUsage +
                      " [--temperature T] [--top-k K] [--top-p P] [--seed S] [--stop-tokens 2,3] [--no-eos-stop]",
                  {"--no-eos-stop"}, run_generate);

}  // namespace tidal::cli
