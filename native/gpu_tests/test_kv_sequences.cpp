// GPU tests of the CUDA backend's KV-cache compaction and saved sequences, on random bf16
// models: compaction against a float64 re-rotation of the cache's own keys (values moved
// bit for bit) and against the CPU backend's compaction, with scratch chunks smaller and
// larger than the distance moved (a chunk's sources overlapping its destinations), Quest
// page bounds rebuilt, and the next decode steps' logits against the CPU; K/V streamed out
// and back in bit for bit over several transfer chunks; an engine's sequence saved and
// loaded with the same tokens and logits.
#include <cuda_runtime_api.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../tests/kv_snapshot.h"
#include "bench/op_timing.h"
#include "cpu/cpu_backend.h"
#include "cpu/rope.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_kv_cache.h"
#include "cuda/kv_transfer.h"
#include "engine/attention_plan.h"
#include "engine/kv_file.h"
#include "engine/model_weights.h"
#include "engine/synthetic_model.h"
#include "small_model.h"
#include "test_support.h"
#include "tidal/engine.h"
#include "tidal/error.h"

namespace tidal::gpu_test {

namespace {

using tidal_test::MemorySink;
using tidal_test::MemorySource;

// A cache's K/V in file order ([layer][keys, values][kv_head][position][head_dim]) as doubles.
struct Kv {
  int64_t layers = 0, kv_heads = 0, head_dim = 0, positions = 0;
  std::vector<double> data;
  double at(int64_t layer, int values, int64_t head, int64_t position, int64_t i) const {
    return data[size_t((((layer * 2 + values) * kv_heads + head) * positions + position) * head_dim + i)];
  }
};

Kv read_kv(Backend& backend, const KvCache& cache, const ModelConfig& config) {
  MemorySink sink;
  backend.save_kv(cache, sink);
  Kv kv{config.num_layers, config.num_kv_heads, config.head_dim, cache.length(), {}};
  if (std::string(backend.kv_dtype()) == "bf16") {
    std::vector<uint16_t> bits(sink.bytes().size() / 2);
    std::memcpy(bits.data(), sink.bytes().data(), bits.size() * 2);
    for (uint16_t b : bits) kv.data.push_back(from_bf16(b));
  } else {
    std::vector<float> values(sink.bytes().size() / 4);
    std::memcpy(values.data(), sink.bytes().data(), values.size() * 4);
    kv.data.assign(values.begin(), values.end());
  }
  return kv;
}

SyntheticModelSpec spec_of(const std::string& kind) {
  SyntheticModelSpec spec = small_model_spec(51);
  if (kind == "llama3") {
    spec.llama3_rope_scaling = true;
    spec.rope_theta = 500000.0;
  } else if (kind == "qwen2-d128") {
    spec.architecture = Architecture::Qwen2;
    spec.attention_bias = true;
    spec.tie_word_embeddings = true;
    spec.num_heads = 4;
    spec.head_dim = 128;
  }
  return spec;
}

std::vector<int64_t> sources_of(const KvRanges& ranges) {
  std::vector<int64_t> out;
  for (const auto& [start, count] : ranges)
    for (int64_t i = 0; i < count; ++i) out.push_back(start + i);
  return out;
}

// Entries of the cache's Quest page bounds (pages holding positions < length) that differ
// from the element-wise min / max of its keys.
int64_t page_bound_mismatches(const cuda::CudaKvCache& cache, const Kv& kv) {
  int64_t bad = 0;
  const int64_t pages = (kv.positions + 15) / 16, d = kv.head_dim;
  for (int64_t layer = 0; layer < kv.layers; ++layer) {
    const cuda::QuestPageTable table = cache.pages(layer);
    std::vector<uint16_t> lo(size_t(kv.kv_heads * table.head_stride)), hi(lo.size());
    check_cuda(cudaMemcpy(lo.data(), table.key_min, lo.size() * 2, cudaMemcpyDeviceToHost), "reading page bounds");
    check_cuda(cudaMemcpy(hi.data(), table.key_max, hi.size() * 2, cudaMemcpyDeviceToHost), "reading page bounds");
    for (int64_t head = 0; head < kv.kv_heads; ++head)
      for (int64_t page = 0; page < pages; ++page)
        for (int64_t i = 0; i < d; ++i) {
          double mn = INFINITY, mx = -INFINITY;
          for (int64_t p = page * 16; p < std::min(kv.positions, page * 16 + 16); ++p) {
            mn = std::min(mn, kv.at(layer, 0, head, p, i));
            mx = std::max(mx, kv.at(layer, 0, head, p, i));
          }
          const size_t at = size_t(head * table.head_stride + page * d + i);
          bad += from_bf16(lo[at]) != mn || from_bf16(hi[at]) != mx;
        }
  }
  return bad;
}

AttentionPlan plan_of(const ModelConfig& config, AttentionMode mode, int64_t budget) {
  AttentionOptions options;
  options.mode = mode;
  options.token_budget = budget;
  return make_attention_plan(options, config.num_layers);
}

void test_compaction(Report& report, const std::string& kind) {
  const SyntheticModelSpec spec = spec_of(kind);
  SyntheticModel model = make_synthetic_model(spec);
  const ModelConfig& config = model.config;
  const ModelWeights weights = bind_model_weights(config, *model.tensors);
  auto cpu = create_cpu_backend(config, weights, CpuBackendOptions{0, 0});
  auto gpu = create_cuda_backend(config, weights, CudaBackendOptions{});
  auto* tools = dynamic_cast<CudaBackendTools*>(gpu.get());
  const int64_t vocab = config.vocab_size;
  Rng rng(61);
  std::vector<int32_t> prompt(600);
  for (int32_t& t : prompt) t = int32_t(rng.below(vocab));
  auto cpu_cache = cpu->create_kv_cache();
  auto gpu_cache = gpu->create_kv_cache();
  for (int64_t offset : {0, 300}) {
    cpu->forward(*cpu_cache, prompt.data() + offset, 300, nullptr, LogitsWanted::None, nullptr, nullptr);
    gpu->forward(*gpu_cache, prompt.data() + offset, 300, nullptr, LogitsWanted::None, nullptr, nullptr);
  }
  // Quest's page bounds exist (as after a Quest step), so compaction must rebuild them.
  dynamic_cast<cuda::CudaKvCache&>(*gpu_cache).ensure_pages();
  // Moves of 80 and 170 positions; 330 positions move in all.
  const KvRanges ranges = {{0, 100}, {180, 250}, {520, 80}};
  const int64_t length = 430;
  const std::vector<int64_t> sources = sources_of(ranges);
  const std::vector<float>& frequencies = config.rope_frequencies;
  const Kv before = read_kv(*gpu, *gpu_cache, config);
  auto cpu_compacted = cpu_cache->fork(600);
  cpu->compact(*cpu_compacted, ranges);
  const Kv cpu_kv = read_kv(*cpu, *cpu_compacted, config);

  // 0: one chunk of all 330 positions; 100: chunks longer than the first move (80), so a
  // chunk's sources overlap its own destinations; 37: many chunks shorter than any move.
  for (int64_t chunk : {int64_t{0}, int64_t{100}, int64_t{37}}) {
    const std::string name = kind + ": compaction, chunk " + (chunk ? std::to_string(chunk) : std::string("all"));
    tools->set_compact_chunk(chunk);
    auto g = gpu_cache->fork(600);
    gpu->compact(*g, ranges);
    tools->set_compact_chunk(0);
    const Kv after = read_kv(*gpu, *g, config);
    // Against the float64 rotation of the cache's own keys: one bf16 rounding at most (2^-8 of
    // the value, so of the pair's norm).
    int64_t values_moved_wrong = 0, untouched_changed = 0;
    double worst_key = 0;
    for (int64_t layer = 0; layer < config.num_layers; ++layer)
      for (int64_t head = 0; head < config.num_kv_heads; ++head)
        for (int64_t position = 0; position < length; ++position) {
          const int64_t source = sources[size_t(position)];
          const int64_t half = config.head_dim / 2;
          for (int64_t i = 0; i < config.head_dim; ++i)
            values_moved_wrong += after.at(layer, 1, head, position, i) != before.at(layer, 1, head, source, i);
          for (int64_t i = 0; i < half; ++i) {
            const double angle = double(position - source) * double(frequencies[size_t(i)]);
            const double x1 = before.at(layer, 0, head, source, i), x2 = before.at(layer, 0, head, source, i + half);
            const double y1 = x1 * std::cos(angle) - x2 * std::sin(angle);
            const double y2 = x2 * std::cos(angle) + x1 * std::sin(angle);
            const double got1 = after.at(layer, 0, head, position, i),
                         got2 = after.at(layer, 0, head, position, i + half);
            if (source == position) {
              untouched_changed += got1 != x1 || got2 != x2;
              continue;
            }
            const double scale = std::max(std::hypot(x1, x2), 1e-30);
            worst_key = std::max({worst_key, std::fabs(got1 - y1) / scale, std::fabs(got2 - y2) / scale});
          }
        }
    report.check(values_moved_wrong == 0 && untouched_changed == 0 && worst_key < 4e-3 && g->length() == length,
                 name + ": moved keys vs float64 re-rotation, values and kept range bit for bit",
                 format("worst key error / |pair| %.2e", worst_key) + ", " + std::to_string(values_moved_wrong) +
                     " values wrong, " + std::to_string(untouched_changed) + " kept keys changed");
    const double against_cpu = relative_l2(cpu_kv.data, after.data);
    report.check(against_cpu < 2e-2, name + ": K/V vs the cpu backend's compaction",
                 format("rel L2 %.2e", against_cpu));
    const int64_t bad_pages = page_bound_mismatches(dynamic_cast<const cuda::CudaKvCache&>(*g), after);
    report.check(bad_pages == 0, name + ": Quest page bounds rebuilt", std::to_string(bad_pages) + " entries wrong");

    // The next steps against the cpu backend: full, quest over every page (= dense), quest.
    double worst = 0, worst_quest = 0;
    auto c = cpu_compacted->fork(length);
    for (const auto& [mode, budget] : {std::pair{AttentionMode::Full, int64_t{0}},
                                       {AttentionMode::Quest, int64_t{4096}},
                                       {AttentionMode::Quest, int64_t{96}}}) {
      const AttentionPlan plan = plan_of(config, mode, budget ? budget : 64);
      for (int step = 0; step < 2; ++step) {
        const int32_t token = int32_t(rng.below(vocab));
        std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
        cpu->forward(*c, &token, 1, &plan, LogitsWanted::Last, a.data(), nullptr);
        gpu->forward(*g, &token, 1, &plan, LogitsWanted::Last, b.data(), nullptr);
        double& bucket = budget == 96 ? worst_quest : worst;
        bucket = std::max(bucket, relative_l2f(a, b));
      }
    }
    report.check(worst < 2e-2, name + ": next decode steps vs cpu (full, quest full budget)",
                 format("rel L2 %.2e", worst));
    report.check(worst_quest < 1.6e-1, name + ": next decode steps vs cpu (quest budget 96, sanity bound)",
                 format("rel L2 %.2e", worst_quest));
  }

  // Graph replay before and after a compaction of the same cache (pointers unchanged, length
  // shorter): the replayed steps must read the new length.
  {
    tools->set_graphs(true);
    auto g = gpu_cache->fork(600);
    auto c = cpu_cache->fork(600);
    const AttentionPlan full = plan_of(config, AttentionMode::Full, 64);
    double worst = 0;
    auto step = [&](int32_t token) {
      std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
      cpu->forward(*c, &token, 1, &full, LogitsWanted::Last, a.data(), nullptr);
      gpu->forward(*g, &token, 1, &full, LogitsWanted::Last, b.data(), nullptr);
      worst = std::max(worst, relative_l2f(a, b));
    };
    for (int32_t token : {4, 5, 6}) step(token);
    const KvRanges shorter = {{0, 200}, {400, 203}};
    cpu->compact(*c, shorter);
    gpu->compact(*g, shorter);
    for (int32_t token : {7, 8, 9}) step(token);
    report.check(worst < 2e-2 && g->length() == 406, kind + ": graph-replayed steps around a compaction vs cpu",
                 format("rel L2 %.2e", worst) + ", " + std::to_string(tools->graph_replays()) + " replays");
  }
}

void test_transfer(Report& report) {
  const SyntheticModelSpec spec = spec_of("llama3");
  SyntheticModel model = make_synthetic_model(spec);
  const ModelWeights weights = bind_model_weights(model.config, *model.tensors);
  auto gpu = create_cuda_backend(model.config, weights, CudaBackendOptions{});
  // 30000 positions of 6 layers x 2 heads x 64 x bf16, keys and values: 92 MB, two transfer chunks.
  const int64_t length = 30000;
  auto cache = gpu->create_kv_cache();
  bench::fill_cache_random(model.config, *gpu, *cache, length, 71);
  MemorySink saved;
  gpu->save_kv(*cache, saved);
  auto loaded = gpu->create_kv_cache();
  // With page bounds (as a cache that ran Quest has), which the load must rebuild.
  dynamic_cast<cuda::CudaKvCache&>(*loaded).ensure_pages();
  MemorySource source(saved.bytes());
  gpu->load_kv(*loaded, length, source);
  MemorySink again;
  gpu->save_kv(*loaded, again);
  const bool same = saved.bytes() == again.bytes() && saved.bytes().size() > cuda::kTransferChunkBytes;
  const Kv kv = read_kv(*gpu, *loaded, model.config);
  const int64_t bad_pages = page_bound_mismatches(dynamic_cast<const cuda::CudaKvCache&>(*loaded), kv);
  report.check(same && bad_pages == 0 && loaded->length() == length,
               "K/V saved, loaded and saved again bit for bit over several transfer chunks, page bounds rebuilt",
               std::to_string(saved.bytes().size()) + " bytes, " + std::to_string(bad_pages) + " page entries wrong");

  // The same through a KV file (its reads of pieces in the page cache run on several threads).
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tidal-gpu-transfer-" + std::to_string(::getpid()) + ".kv")).string();
  KvFileHeader header;
  header.backend = gpu->name();
  header.kv_dtype = gpu->kv_dtype();
  header.layers = model.config.num_layers;
  header.kv_heads = model.config.num_kv_heads;
  header.head_dim = model.config.head_dim;
  header.token_count = header.cached_count = length;
  write_kv_file(path, header, std::vector<int32_t>(size_t(length), 1), {},
                [&](KvByteSink& sink) { gpu->save_kv(*cache, sink); });
  bool same_through_file = false;
  {
    KvFileReader reader(path);
    auto from_file = gpu->create_kv_cache();
    gpu->load_kv(*from_file, length, reader.kv());
    MemorySink third;
    gpu->save_kv(*from_file, third);
    same_through_file = third.bytes() == saved.bytes() && reader.kv_bytes_read() == reader.kv_bytes();
  }
  std::remove(path.c_str());
  report.check(same_through_file, "K/V written to a KV file and read back bit for bit");
}

void test_engine_files(Report& report) {
  const SyntheticModelSpec spec = spec_of("llama3");
  SyntheticModel model = make_synthetic_model(spec);
  EngineOptions cuda_options, cpu_options;
  cuda_options.backend = "cuda";
  auto saver = Engine::from_tensors(model.config, model.tensors, cuda_options);
  auto loader = Engine::from_tensors(model.config, model.tensors, cuda_options);
  auto cpu = Engine::from_tensors(model.config, model.tensors, cpu_options);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tidal-gpu-kv-" + std::to_string(::getpid()) + ".kv")).string();
  Rng rng(81);
  std::vector<int32_t> prompt(700);
  for (int32_t& t : prompt) t = int32_t(rng.below(model.config.vocab_size));
  const SequenceId sequence = saver->create_sequence();
  saver->prefill(sequence, prompt);
  saver->decode(sequence, 12);
  const size_t bytes = saver->save_sequence(sequence, path);
  const SequenceId restored = loader->load_sequence(path);
  const bool tokens_equal = loader->sequence_tokens(restored) == saver->sequence_tokens(sequence);
  const bool logits_equal = loader->prefill(restored, {}) == saver->prefill(sequence, {});
  AttentionOptions quest;
  quest.mode = AttentionMode::Quest;
  quest.token_budget = 128;
  double worst = 0;
  for (const AttentionOptions& attention : {AttentionOptions{}, quest}) {
    const std::vector<float> a = saver->decode(sequence, 33, attention), b = loader->decode(restored, 33, attention);
    worst = std::max(worst, a == b ? 0.0 : std::max(relative_l2f(a, b), 1e-30));
  }
  report.check(tokens_equal && logits_equal && worst == 0.0 && bytes == std::filesystem::file_size(path),
               "engine: cuda sequence saved and loaded, same tokens, saved logits and next steps' logits",
               std::to_string(bytes) + " bytes, next steps " +
                   (worst == 0 ? std::string("bitwise equal") : format("rel L2 %.2e", worst)));
  bool refused = false;
  try {
    cpu->load_sequence(path);
  } catch (const RequestError& error) {
    refused = std::string(error.what()).find("saved by the cuda backend (bf16 K/V)") != std::string::npos;
  }
  report.check(refused, "engine: a cuda sequence file is refused by the cpu backend, naming both");
  std::remove(path.c_str());
}

}  // namespace

void test_kv_sequences(Report& report) {
  const std::string reason = cuda_backend_unavailable_reason();
  if (!reason.empty()) {
    report.check(false, "cuda backend", reason);
    return;
  }
  for (const char* kind : {"llama3", "qwen2-d128"})
    report.run(std::string("kv compaction ") + kind, [&] { test_compaction(report, kind); });
  report.run("kv transfer", [&] { test_transfer(report); });
  report.run("kv files", [&] { test_engine_files(report); });
}

}  // namespace tidal::gpu_test
