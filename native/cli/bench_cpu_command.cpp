// `tidal bench-cpu`: decode speed of the CPU backend at several context lengths, for full,
// tidal and quest attention, with the memory bandwidth each step implies. Prints a Markdown
// table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_command.h"
#include "cpu/simd_support.h"
#include "engine/sampler.h"
#include "engine_setup.h"
#include "tidal/option_limits.h"

namespace tidal::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int run_bench_cpu(Arguments& arguments) {
  const std::vector<int64_t> contexts = arguments.integer_list("--contexts", {256, 1024, 4096}, 1, limits::kMaxContext);
  const int64_t decode_tokens = arguments.integer("--decode-tokens", 8, 1, limits::kMaxCount);
  const std::vector<std::string> modes = arguments.text_list("--modes", {"full", "tidal", "quest"});
  AttentionOptions base_attention = read_attention_options(arguments);
  OpenedEngine opened = open_engine(arguments, "qwen2.5-0.5b");
  arguments.reject_unused();

  Engine& engine = *opened.engine;
  const ModelInfo& info = engine.model_info();
  std::printf("model: %s (%s, %s, %lld layers, %lld heads / %lld kv heads x %lld, vocab %lld), %.2f GB of weights\n",
              opened.description.c_str(), info.architecture.c_str(), info.dtype.c_str(),
              static_cast<long long>(info.num_layers), static_cast<long long>(info.num_heads),
              static_cast<long long>(info.num_kv_heads), static_cast<long long>(info.head_dim),
              static_cast<long long>(info.vocab_size), static_cast<double>(info.weight_bytes) / 1e9);
  std::printf("cpu backend: %d threads, %s kernels; KV cache f32, %zu bytes/token; loaded in %.1f s\n\n", info.threads,
              cpu::simd_enabled() ? "avx2+fma" : "portable", info.kv_bytes_per_token, opened.load_seconds);
  std::printf("| context | mode  | budget | prefill tok/s | decode tok/s | ms/token | attended | GB/s  |\n");
  std::printf("|--------:|:------|-------:|--------------:|-------------:|---------:|---------:|------:|\n");

  SamplingRandom random(1);
  const SequenceId base = engine.create_sequence();
  int64_t filled = 0;
  for (int64_t context : contexts) {
    if (context <= filled || context + decode_tokens > info.max_context) continue;
    std::vector<int32_t> prompt(static_cast<size_t>(context - filled));
    for (int32_t& token : prompt) token = static_cast<int32_t>(random.next() % static_cast<uint64_t>(info.vocab_size));
    const auto prefill_started = Clock::now();
    std::vector<float> logits = engine.prefill(base, prompt);
    const double prefill_rate = static_cast<double>(prompt.size()) / seconds_since(prefill_started);
    filled = context;

    for (const std::string& mode_name : modes) {
      AttentionOptions attention = base_attention;
      attention.mode = parse_attention_mode(mode_name);
      const SequenceId run = engine.fork_sequence(base);
      std::vector<float> step_logits = logits;
      double seconds = 0.0, attended = 0.0;
      for (int64_t i = 0; i < decode_tokens; ++i) {
        const auto started = Clock::now();
        step_logits = engine.decode(run, argmax(step_logits), attention);
        seconds += seconds_since(started);
        attended += engine.usage().last_selection.attended_fraction;
      }
      engine.release_sequence(run);
      attended /= static_cast<double>(decode_tokens);
      const double per_token = seconds / static_cast<double>(decode_tokens);
      // Bytes one step reads: every weight once, and the attended share of the K/V cache.
      const double bytes = static_cast<double>(info.weight_bytes) +
                           attended * static_cast<double>(context) * static_cast<double>(info.kv_bytes_per_token);
      std::printf("| %7lld | %-5s | %6s | %13.1f | %12.2f | %8.2f | %7.1f%% | %5.1f |\n",
                  static_cast<long long>(context), mode_name.c_str(),
                  attention.mode == AttentionMode::Full ? "-" : std::to_string(attention.token_budget).c_str(),
                  prefill_rate, 1.0 / per_token, per_token * 1e3, attended * 100.0, bytes / per_token / 1e9);
    }
  }
  return 0;
}

}  // namespace

TIDAL_CLI_COMMAND(bench_cpu, "bench-cpu", "decode tokens/s of the CPU backend for full, tidal and quest attention",
                  std::string(kEngineOptionsUsage) +
                      " [--contexts 256,1024,4096] [--decode-tokens N] [--modes full,tidal,quest] " +
                      kAttentionOptionsUsage,
                  {}, run_bench_cpu);

}  // namespace tidal::cli
