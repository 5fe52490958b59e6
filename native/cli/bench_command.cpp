// `tidal bench`: the CUDA backend on a random-weight model of a public checkpoint's shape
// (no checkpoint, no Node needed): per-token decode latency for full / tidal / quest
// attention at several contexts, attention-only time per layer, prefill tokens/s, and each
// result against its floor (the bytes that must move over the device-to-device copy
// bandwidth measured in the same run). Prints Markdown tables; with --sdpa-peer, PyTorch
// SDPA's decode attention on the same shapes (native/gpu_bench/sdpa_peer.py) as a peer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli_command.h"
#include "engine_setup.h"
#include "tidal/error.h"
#include "tidal/option_limits.h"

#ifdef TIDAL_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "bench/device_bandwidth.h"
#include "bench/op_timing.h"
#include "bench/shapes.h"
#include "cuda/cuda_backend.h"
#include "engine/attention_plan.h"
#include "engine/sampler.h"
#endif

namespace tidal::cli {

namespace {

#ifdef TIDAL_HAVE_CUDA

using Clock = std::chrono::steady_clock;

void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(error));
}

AttentionPlan plan_for(AttentionMode mode, const AttentionOptions& base, int64_t layers) {
  AttentionOptions options = base;
  options.mode = mode;
  return make_attention_plan(options, layers);
}

// Bytes one decode step's attention must read in every layer, by role.
struct StepBytes {
  double weights = 0, kv = 0;
};
// K + V of one KV head and position: bf16, or FP8 codes and their scale pair.
double kv_row_bytes(const ModelConfig& c, bool fp8) {
  return fp8 ? 2.0 * double(c.head_dim) + 4.0 : 4.0 * double(c.head_dim);
}

// The floor of a `tokens`-token chunk after `context` cached positions: its products take the
// longer of reading the weights once and their flops at `peak_flops` (at 256 tokens a product
// sits near the ridge of both, and its reads overlap its work), then attention's flops at
// `peak_flops`. Attention per layer and query head:
// Q K^T and P V over the positions each token sees (on average context + tokens / 2), and a
// sparse prefill's selection layer the pass scores' Q K^T once more, its sparse layers the
// budget's positions instead of the context.
double chunk_floor_ms(const ModelConfig& c, const AttentionPlan* plan, int64_t context, int64_t tokens,
                      double weight_bytes, double bandwidth, double peak_flops) {
  const double q_size = double(c.num_heads * c.head_dim), kv_size = double(c.num_kv_heads * c.head_dim);
  const double hidden = double(c.hidden_size), inner = double(c.intermediate_size), n = double(tokens);
  const double parameters = double(c.num_layers) * (hidden * (2.0 * q_size + 2.0 * kv_size) + 3.0 * inner * hidden);
  const double products = 2.0 * parameters * n + 2.0 * double(c.vocab_size) * hidden;  // logits of the last token
  double attention_flops = 0.0;
  const double seen = double(context) + n / 2.0;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerAttention role = plan ? plan->layers[size_t(l)] : LayerAttention::Dense;
    double attended = seen, extra = 0.0;
    if (role == LayerAttention::Selected)
      attended = double(std::min<int64_t>(plan->token_budget - 1, context)) + n / 2.0;
    if (role == LayerAttention::DenseAndSelect) extra = double(context);
    attention_flops += q_size * n * (4.0 * attended + 2.0 * extra);
  }
  return (std::max(weight_bytes / bandwidth, products / peak_flops) + attention_flops / peak_flops) * 1e3;
}

StepBytes step_bytes(const ModelConfig& c, const AttentionPlan& plan, int64_t positions, double weight_bytes,
                     bool fp8) {
  const double d = double(c.head_dim), row = kv_row_bytes(c, fp8);
  StepBytes bytes;
  bytes.weights = weight_bytes;
  for (LayerAttention role : plan.layers) {
    switch (role) {
      case LayerAttention::Dense:
        bytes.kv += double(c.num_kv_heads) * double(positions) * row;
        break;
      case LayerAttention::DenseAndSelect:
        bytes.kv += double(c.num_kv_heads) * double(positions) * row + 2.0 * double(c.num_heads * positions) * 4.0;
        break;
      case LayerAttention::Selected: {
        const double lists =
            plan.selection_policy == SelectionPolicy::PerQueryHead ? double(c.num_heads) : double(c.num_kv_heads);
        bytes.kv += lists * double(std::min(plan.token_budget, positions)) * row;
        break;
      }
      case LayerAttention::QuestPages: {
        const double pages = double((positions + 15) / 16);
        bytes.kv += double(c.num_kv_heads) * pages * 2.0 * d * 2.0 +
                    double(c.num_heads) * double(std::min(plan.token_budget, positions)) * row;
        break;
      }
    }
  }
  return bytes;
}

const char* mode_label(AttentionMode mode) {
  return mode == AttentionMode::Full ? "full" : mode == AttentionMode::Tidal ? "tidal" : "quest";
}

int run_bench(Arguments& arguments) {
  const std::vector<std::string> shapes = arguments.text_list("--shapes", {"llama-3.1-8b", "llama-2-7b"});
  const std::vector<int64_t> contexts =
      arguments.integer_list("--contexts", {10000, 32000, 100000}, 1, limits::kMaxContext);
  const int64_t steps = arguments.integer("--decode-tokens", 10, 2, limits::kMaxCount);
  const int64_t prefill_tokens = arguments.integer("--prefill", 0, 0, limits::kMaxContext);
  const int64_t prefill_chunk = arguments.integer("--prefill-chunk", 8192, 64, limits::kMaxPrefillChunk);
  const std::string sdpa = arguments.text("--sdpa-peer", "");
  // The dense bf16 matrix rate the chunk floors assume (measured on the H200, bench/NOTES.md).
  const double peak_tflops = double(arguments.integer("--peak-tflops", 790, 1, 100000));
  const std::string weights = arguments.text("--weights", "bf16");
  if (weights != "bf16" && weights != "q8_0" && weights != "q4_k_m")
    throw UsageError("--weights '" + weights + "' is not one of bf16, q8_0, q4_k_m");
  const std::string kv_cache = arguments.text("--kv-cache", "bf16");
  if (kv_cache != "bf16" && kv_cache != "fp8") throw UsageError("--kv-cache '" + kv_cache + "' is not bf16 or fp8");
  const bool fp8 = kv_cache == "fp8";
  AttentionOptions attention = read_attention_options(arguments);
  if (!arguments.has("--budget")) attention.token_budget = 2048;
  arguments.reject_unused();

  const std::string reason = cuda_backend_unavailable_reason();
  if (!reason.empty()) throw RequestError("tidal bench needs the cuda backend: " + reason);
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "reading the device properties");
  const double bandwidth = bench::measure_copy_bandwidth();
  std::printf("device: %s, %d SMs, %.0f GiB; copy bandwidth (read + write) %.0f GB/s\n", prop.name,
              prop.multiProcessorCount, double(prop.totalGlobalMem) / double(1 << 30), bandwidth / 1e9);
  std::printf("tidal budget %lld, quest budget %lld (%lld pages), dense layers %lld\n\n",
              static_cast<long long>(attention.token_budget), static_cast<long long>(attention.token_budget),
              static_cast<long long>(attention.token_budget / 16), static_cast<long long>(attention.dense_layers));

  std::vector<std::string> decode_rows, attention_rows, prefill_rows, memory_rows, widening_rows, sparse_chunk_rows;
  SamplingRandom random(1);
  for (const std::string& shape : shapes) {
    const ModelConfig config = bench::bench_shape(shape);
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "reading the device memory");
    const size_t used_before = total_bytes - free_bytes;
    CudaBackendOptions options;
    options.kv_fp8 = fp8;
    auto backend = create_random_cuda_backend(config, 1234, options, weights);
    auto* tools = dynamic_cast<CudaBackendTools*>(backend.get());
    const double weight_bytes = double(tools->decode_weight_bytes());
    std::fprintf(stderr, "%s: %.2f GB of %s weights read per token, %.2f GB on the device\n", shape.c_str(),
                 weight_bytes / 1e9, weights.c_str(), double(tools->weight_bytes()) / 1e9);
    auto token = [&] { return static_cast<int32_t>(random.next() % static_cast<uint64_t>(config.vocab_size)); };

    for (int warps : {4, 8}) {
      if (prefill_tokens <= 0 || (warps == 8 && &shape != &shapes.front())) continue;
      tools->set_prefill_warps(warps);
      cudaDeviceSynchronize();
      auto cache = backend->create_kv_cache();
      std::vector<int32_t> prompt(static_cast<size_t>(prefill_tokens));
      for (int32_t& t : prompt) t = token();
      std::vector<float> logits(static_cast<size_t>(config.vocab_size));
      // A warm-up chunk first (cuBLAS heuristics, module loads), on its own cache.
      {
        auto warm = backend->create_kv_cache();
        const int64_t n = std::min<int64_t>(prefill_chunk, prefill_tokens);
        backend->forward(*warm, prompt.data(), n, nullptr, LogitsWanted::Last, logits.data(), nullptr);
      }
      const auto started = Clock::now();
      for (int64_t done = 0; done < prefill_tokens; done += prefill_chunk) {
        const int64_t n = std::min(prefill_chunk, prefill_tokens - done);
        backend->forward(*cache, prompt.data() + done, n, nullptr,
                         done + n == prefill_tokens ? LogitsWanted::Last : LogitsWanted::None, logits.data(), nullptr);
      }
      const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
      // Matrix work 2 * params * tokens; causal attention 4 * heads * d * tokens^2 / 2 per layer.
      const double n = double(prefill_tokens);
      const double q_size = double(config.num_heads * config.head_dim),
                   kv_size = double(config.num_kv_heads * config.head_dim);
      const double hidden = double(config.hidden_size), inner = double(config.intermediate_size);
      const double parameters =
          double(config.num_layers) * (hidden * (2.0 * q_size + 2.0 * kv_size) + 3.0 * inner * hidden) +
          double(config.vocab_size) * hidden;
      const double flops = 2.0 * parameters * n +
                           4.0 * double(config.num_heads * config.head_dim) * n * n / 2.0 * double(config.num_layers);
      char line[256];
      std::snprintf(line, sizeof line, "| %s | %lld | %lld | %d | %.2f | %.0f | %.0f |", shape.c_str(),
                    static_cast<long long>(prefill_tokens), static_cast<long long>(prefill_chunk), warps, seconds,
                    n / seconds, flops / seconds / 1e12);
      prefill_rows.push_back(line);
      std::fprintf(stderr, "%s\n", line);
    }
    tools->set_prefill_warps(4);

    for (int64_t context : contexts) {
      auto cache = backend->create_kv_cache();
      cache->prepare_for(context);  // as the engine does before a prefill: one allocation
      bench::fill_cache_random(config, *backend, *cache, context, 99);
      // A keystroke's recompute on top of the context (256 tokens, the product's chunk after a
      // cursor move), then the memory the process holds with that cache: what a card must have.
      // Read here, after one tidal step (its selection scratch) and before any Quest row builds
      // the cache's page bounds, which the product's default (tidal) never does.
      {
        std::vector<int32_t> chunk(256);
        for (int32_t& t : chunk) t = token();
        std::vector<float> logits(static_cast<size_t>(config.vocab_size));
        const AttentionPlan step_plan = plan_for(AttentionMode::Tidal, attention, config.num_layers);
        const int32_t first = token();
        backend->forward(*cache, &first, 1, &step_plan, LogitsWanted::Last, logits.data(), nullptr);
        cache->trim(context);
        // The chunk's median ms of 3 after a warm-up, the cache trimmed back after each.
        auto time_chunk = [&](const AttentionPlan* chunk_plan) {
          std::vector<double> times;
          for (int r = 0; r < 4; ++r) {
            const auto started = Clock::now();
            backend->forward(*cache, chunk.data(), 256, chunk_plan, LogitsWanted::Last, logits.data(), nullptr);
            times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
            cache->trim(context);
          }
          std::sort(times.begin() + 1, times.end());
          return times[2];
        };
        const double chunk_ms = time_chunk(nullptr);
        check(cudaMemGetInfo(&free_bytes, &total_bytes), "reading the device memory");
        const size_t used = total_bytes - free_bytes;
        char memory[320];
        std::snprintf(memory, sizeof memory,
                      "| %s | %s | %s | %lldK | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f |", shape.c_str(),
                      weights.c_str(), kv_cache.c_str(), static_cast<long long>(context / 1000),
                      double(tools->weight_bytes()) / 1e9, double(tools->host_weight_bytes()) / 1e9,
                      double(backend->kv_bytes_in_use()) / 1e9,
                      double(tools->workspace_bytes() + tools->dequantized_bytes()) / 1e9,
                      double(used - used_before) / 1e9, double(used) / 1e9, chunk_ms);
        memory_rows.push_back(memory);
        std::fprintf(stderr, "%s\n", memory);
        if (fp8) {
          // The same chunk with twice the default FP8 widening scratch (more KV heads a launch).
          tools->set_fp8_prefill_scratch(size_t(128) << 20);
          const double wide_ms = time_chunk(nullptr);
          tools->set_fp8_prefill_scratch(0);
          char line[200];
          std::snprintf(line, sizeof line, "| %s | %lldK | %.1f | %.1f |", shape.c_str(),
                        static_cast<long long>(context / 1000), chunk_ms, wide_ms);
          widening_rows.push_back(line);
        } else {
          // The same chunk with tidal attention for its own tokens too (sparse prefill).
          AttentionOptions sparse_options = attention;
          sparse_options.sparse_prefill = true;
          const AttentionPlan sparse_plan = plan_for(AttentionMode::Tidal, sparse_options, config.num_layers);
          const double sparse_ms = time_chunk(&sparse_plan);
          const double peak = peak_tflops * 1e12;
          const double dense_floor = chunk_floor_ms(config, nullptr, context, 256, weight_bytes, bandwidth, peak);
          const double sparse_floor = chunk_floor_ms(config, &sparse_plan, context, 256, weight_bytes, bandwidth, peak);
          char line[240];
          std::snprintf(line, sizeof line, "| %s | %lldK | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |",
                        shape.c_str(), static_cast<long long>(context / 1000), chunk_ms, dense_floor,
                        chunk_ms / dense_floor, sparse_ms, sparse_floor, sparse_ms / sparse_floor,
                        chunk_ms / sparse_ms);
          sparse_chunk_rows.push_back(line);
          std::fprintf(stderr, "%s\n", line);
        }
      }
      const AttentionPlan tidal_plan = plan_for(AttentionMode::Tidal, attention, config.num_layers);
      // Attention of one layer, by role.
      const double row_bytes = kv_row_bytes(config, fp8);
      const double bytes_layer = double(config.num_kv_heads * context) * row_bytes;
      const double floor_layer_us = bytes_layer / bandwidth * 1e6;
      const double dense_us =
          bench::time_layer_attention(config, *backend, *cache, LayerAttention::Dense, tidal_plan, 30);
      const double select_us =
          bench::time_layer_attention(config, *backend, *cache, LayerAttention::DenseAndSelect, tidal_plan, 30);
      const double sparse_us =
          bench::time_layer_attention(config, *backend, *cache, LayerAttention::Selected, tidal_plan, 30);
      const AttentionPlan quest_plan = plan_for(AttentionMode::Quest, attention, config.num_layers);
      const double quest_us =
          bench::time_layer_attention(config, *backend, *cache, LayerAttention::QuestPages, quest_plan, 30);
      const double sparse_bytes = double(config.num_heads) * double(attention.token_budget) * row_bytes;
      const double quest_bytes =
          sparse_bytes + double(config.num_kv_heads) * double((context + 15) / 16) * double(config.head_dim) * 4.0;
      char line[320];
      auto attention_row = [&](const char* op, double us, double floor_us) {
        std::snprintf(line, sizeof line, "| %s | %lldK | %s | %.1f | %.1f | %.2f | %.0f%% |", shape.c_str(),
                      static_cast<long long>(context / 1000), op, us, floor_us, us / floor_us, 100.0 * floor_us / us);
        attention_rows.push_back(line);
        std::fprintf(stderr, "%s\n", line);
      };
      attention_row("dense", dense_us, floor_layer_us);
      attention_row("tidal selection (dense + scores + top-k)", select_us,
                    (bytes_layer + 2.0 * double(config.num_heads * context) * 4.0) / bandwidth * 1e6);
      attention_row("tidal sparse", sparse_us, sparse_bytes / bandwidth * 1e6);
      attention_row("quest (bounds + top-k + sparse)", quest_us, quest_bytes / bandwidth * 1e6);
      std::snprintf(line, sizeof line, "| %s | %lldK | selection layer / dense layer | %.2fx | | | |", shape.c_str(),
                    static_cast<long long>(context / 1000), select_us / dense_us);
      attention_rows.push_back(line);

      // Whole decode steps.
      double full_ms = 0;
      const bool early_default = tools->early_launch();
      for (AttentionMode mode : {AttentionMode::Full, AttentionMode::Tidal, AttentionMode::Quest}) {
        const AttentionPlan plan = plan_for(mode, attention, config.num_layers);
        struct Variant {
          bool graphs;
          CudaBackendTools::GemvUse gemv;
          bool early;
          const char* label;
        };
        using Gemv = CudaBackendTools::GemvUse;
        // The default first (replayed graphs, GEMV kernel or cuBLAS per matrix, products
        // launched early or not as the backend's default says), then the same with the other
        // early-launch setting, plain launches, and plain launches with one kind of matrix
        // product only.
        const Variant variants[] = {
            {true, Gemv::Auto, early_default, ""},
            {true, Gemv::Auto, !early_default, early_default ? " (no early launch)" : " (early launch)"},
            {false, Gemv::Auto, early_default, " (plain launches)"},
            {false, Gemv::Never, early_default, " (plain, cuBLAS only)"},
            {false, Gemv::Always, early_default, " (plain, GEMV kernel only)"}};
        for (const Variant& variant : variants) {
          const bool graphs = variant.graphs, is_default = &variant == &variants[0];
          if (variant.gemv != Gemv::Auto && mode != AttentionMode::Full) continue;
          if (!graphs && mode == AttentionMode::Quest) continue;  // Quest steps run plain launches anyway
          if (&variant == &variants[1] && mode == AttentionMode::Quest) continue;
          tools->set_graphs(graphs);
          tools->set_gemv(variant.gemv);
          tools->set_early_launch(variant.early);
          const int64_t instantiations = tools->graph_instantiations(), replays = tools->graph_replays();
          std::vector<float> logits(static_cast<size_t>(config.vocab_size));
          std::vector<double> times, graph_gpu;
          int32_t next = token();
          for (int64_t s = 0; s < steps + 2; ++s) {
            const int64_t replays_before = tools->graph_replays();
            const auto started = Clock::now();
            backend->forward(*cache, &next, 1, &plan, LogitsWanted::Last, logits.data(), nullptr);
            const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
            next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            if (s >= 2) times.push_back(ms);
            if (s >= 2 && tools->graph_replays() > replays_before) graph_gpu.push_back(tools->last_graph_gpu_ms());
          }
          cache->trim(context);
          std::sort(times.begin(), times.end());
          const double ms = times[times.size() / 2];
          if (mode == AttentionMode::Full && is_default) full_ms = ms;
          if (!graph_gpu.empty()) {
            std::sort(graph_gpu.begin(), graph_gpu.end());
            std::fprintf(stderr,
                         "%s %lldK %s: %lld graph replays, %lld instantiations, graph alone on the GPU %.3f ms\n",
                         shape.c_str(), static_cast<long long>(context / 1000), mode_label(mode),
                         static_cast<long long>(tools->graph_replays() - replays),
                         static_cast<long long>(tools->graph_instantiations() - instantiations),
                         graph_gpu[graph_gpu.size() / 2]);
          }
          const StepBytes bytes = step_bytes(config, plan, context + 1, weight_bytes, fp8);
          const double floor_ms = (bytes.weights + bytes.kv) / bandwidth * 1e3;
          std::snprintf(line, sizeof line, "| %s | %lldK | %s%s | %.3f | %.3f | %.2f | %.2fx | %.1f | %.1f |",
                        shape.c_str(), static_cast<long long>(context / 1000), mode_label(mode), variant.label, ms,
                        floor_ms, ms / floor_ms, full_ms / ms, bytes.weights / 1e9, bytes.kv / 1e9);
          decode_rows.push_back(line);
          std::fprintf(stderr, "%s\n", line);
        }
      }
      tools->set_graphs(false);
      tools->set_gemv(CudaBackendTools::GemvUse::Auto);
      tools->set_early_launch(early_default);
    }
  }

  std::printf(
      "Decode step, batch 1 (median of %lld steps; floor = (weights + attention K/V reads) / copy bandwidth)\n\n",
      static_cast<long long>(steps));
  std::printf(
      "| shape | context | mode | ms/token | floor (ms) | time/floor | speed-up vs full | weights GB | KV GB |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& row : decode_rows) std::printf("%s\n", row.c_str());
  std::printf("\nAttention only, one layer (mean of 30 back-to-back launches over rotating layers)\n\n");
  std::printf("| shape | context | op | time (us) | floor (us) | time/floor | of bandwidth |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|\n");
  for (const std::string& row : attention_rows) std::printf("%s\n", row.c_str());
  std::printf(
      "\nGPU memory with the cache at each context, after a 256-token chunk on top of it (the chunk's "
      "median ms of 3 after a warm-up, one tidal step before it; weights = on the device, host = weights "
      "kept in host memory (an untied embedding); scratch = the activations of the largest pass so far "
      "and the dequantisation scratch; engine = device memory in use minus before the model was created; "
      "device = all in use, the CUDA context included)\n\n");
  std::printf(
      "| shape | weights | KV cache | context | weights GB | host GB | KV GB | scratch GB | engine GB | device GB | "
      "chunk256 ms |\n");
  std::printf("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& row : memory_rows) std::printf("%s\n", row.c_str());
  if (!widening_rows.empty()) {
    std::printf(
        "\nA 256-token chunk over the FP8 cache (median ms of 3): the default widening scratch (64 MiB) against "
        "128 MiB\n\n| shape | context | 64 MiB | 128 MiB |\n|---|---|---:|---:|\n");
    for (const std::string& row : widening_rows) std::printf("%s\n", row.c_str());
  }
  if (!sparse_chunk_rows.empty()) {
    std::printf(
        "\nA keystroke's 256-token chunk (median ms of 3), dense against a tidal sparse prefill (its tokens attend "
        "the selection's positions and the chunk; the tidal budget and layers above); floor = the products at the "
        "longer of reading the weights once and their flops, plus attention's flops, at %.0f TFLOP/s\n\n| shape | "
        "context | dense ms | floor | ratio | sparse ms | floor | ratio | "
        "dense/sparse |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        peak_tflops);
    for (const std::string& row : sparse_chunk_rows) std::printf("%s\n", row.c_str());
  }
  if (!prefill_rows.empty()) {
    std::printf("\nPrefill (chunked, dense causal attention)\n\n");
    std::printf("| shape | tokens | chunk | attention warps/block | seconds | tokens/s | TFLOP/s |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (const std::string& row : prefill_rows) std::printf("%s\n", row.c_str());
  }
  std::fflush(stdout);
  if (!sdpa.empty()) {
    std::printf("\nPyTorch SDPA decode attention, same shapes (peer)\n\n");
    std::fflush(stdout);
    const std::string command = "python3 '" + sdpa + "' " + std::to_string(bandwidth / 1e9);
    if (std::system(command.c_str()) != 0) std::printf("(the SDPA peer did not run: %s)\n", command.c_str());
  }
  return 0;
}

#else

int run_bench(Arguments&) {
  throw RequestError(
      "this build of tidal has no CUDA backend (nvcc was not found when it was built); "
      "`tidal bench-cpu` measures the CPU backend");
}

#endif

}  // namespace

TIDAL_CLI_COMMAND(bench, "bench",
                  "decode / prefill speed of the CUDA backend on random-weight 7-8B shapes, against the floor",
                  "[--shapes llama-3.1-8b,llama-2-7b,qwen2.5-coder-7b,qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,qwen3-8b] "
                  "[--contexts 10000,32000,100000] [--decode-tokens N] [--prefill N] [--prefill-chunk N] "
                  "[--sdpa-peer native/gpu_bench/sdpa_peer.py] [--weights bf16|q8_0|q4_k_m] [--kv-cache bf16|fp8] "
                  "[--peak-tflops 790] " +
                      std::string(kAttentionOptionsUsage),
                  {}, run_bench);

}  // namespace tidal::cli
