// Kernel benchmark of the attention family against the bandwidth floor.
//
// For each model shape and context: per-layer time of dense decode attention, dense with the
// fused score output, top-k selection, sparse attention over 2048 positions, and the Quest
// step; the floor is the bytes that must move over the device-to-device copy bandwidth
// measured in the same run. Times are medians of CUDA-event intervals over 30 repetitions
// after warm-up, queued behind a busy kernel (so that they time the GPU, not the launch
// calls), rotating over enough KV buffers that the 50 MB L2 cannot serve a repeat.
//
// Then prefill attention of a keystroke chunk (256 queries after 99K cached keys, one layer)
// and of the last 8192-token chunk of 32K and 100K prompts: the one-pass kernel against the
// split-KV path the rule picks, mma.sync with 4- and 8-warp blocks and the Hopper wgmma kernel,
// against the compute floor (causal flops 4 * d * heads * sum of visible keys at 790 TFLOP/s,
// the dense-bf16 rate measured on the H200).
//
// Then the four matrix products of a layer at 256, 2048 and 8192 tokens (cuBLAS, as prefill
// runs them), against the same compute floor.
//
// Usage: tidal_gpu_bench [--quick | --smoke | --prefill]
//   --quick: the 32K context only; --smoke: a 4K context, 2 repetitions (checks that every
//   path runs, times mean nothing); --prefill: the prefill attention rows only.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_kernels.h"
#include "cuda/attention_kernels.h"
#include "cuda/cublas_loader.h"
#include "cuda/quest_kernels.h"
#include "cuda/selection_kernels.h"
#include "engine/decoder.h"
#include "kernels/gemv_quant.h"
#include "kernels/prefill_attention.h"
#include "kernels/topk_select.h"

namespace {

using namespace tidal;

void check(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(code));
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    check(cudaMalloc(&data_, std::max<size_t>(bytes, 16)), "cudaMalloc");
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(data_); }
  template <typename T = void>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

struct Settings {
  int warmup = 5;
  int reps = 30;
  size_t copy_bytes = size_t(1) << 30;
};
Settings settings;

// Median over settings.reps runs of the GPU time of launch(rep), in microseconds.
double median_us(const std::function<void(int)>& launch, cudaStream_t stream) {
  for (int i = 0; i < settings.warmup; ++i) launch(i);
  check(cudaStreamSynchronize(stream), "warm-up");
  std::vector<cudaEvent_t> start(settings.reps), stop(settings.reps);
  for (int i = 0; i < settings.reps; ++i) {
    check(cudaEventCreate(&start[size_t(i)]), "event");
    check(cudaEventCreate(&stop[size_t(i)]), "event");
  }
  gpu_bench::busy_wait(4000.0, stream);
  for (int i = 0; i < settings.reps; ++i) {
    check(cudaEventRecord(start[size_t(i)], stream), "event record");
    launch(settings.warmup + i);
    check(cudaEventRecord(stop[size_t(i)], stream), "event record");
  }
  check(cudaStreamSynchronize(stream), "timed runs");
  std::vector<double> times;
  for (int i = 0; i < settings.reps; ++i) {
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start[size_t(i)], stop[size_t(i)]), "elapsed");
    times.push_back(ms * 1000.0);
    cudaEventDestroy(start[size_t(i)]);
    cudaEventDestroy(stop[size_t(i)]);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Shape {
  const char* name;
  int heads, kv_heads, head_dim;
};

struct Row {
  std::string model;
  int64_t context;
  std::string op;
  double us;
  double bytes;
};

class Bench {
 public:
  Bench() {
    check(cudaStreamCreate(&stream_), "stream");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "device properties");
    l2_bytes_ = size_t(prop.l2CacheSize);
    std::printf("device: %s, %d SMs, L2 %.0f MB\n", prop.name, prop.multiProcessorCount, l2_bytes_ / 1e6);
  }

  void measure_bandwidth() {
    const size_t bytes = settings.copy_bytes;
    DeviceBuffer a(bytes), b(bytes);
    gpu_bench::fill_random_bf16(a.as<uint16_t>(), bytes / 2, 1, stream_);
    const double copy_us = median_us(
        [&](int) { check(cudaMemcpyAsync(b.as(), a.as(), bytes, cudaMemcpyDeviceToDevice, stream_), "copy"); },
        stream_);
    copy_gbs_ = 2.0 * bytes / copy_us / 1e3;
    DeviceBuffer sink(1 << 16);
    const double read_us =
        median_us([&](int) { gpu_bench::read_sweep(a.as(), bytes, sink.as<uint32_t>(), stream_); }, stream_);
    read_gbs_ = bytes / read_us / 1e3;
    std::printf("device-to-device copy: %.0f GB/s (read + write, %.0f MiB);  read-only sweep: %.0f GB/s\n", copy_gbs_,
                bytes / 1048576.0, read_gbs_);
  }

  void run_shape(const Shape& shape, int64_t context) {
    const int d = shape.head_dim, heads = shape.heads, kv_heads = shape.kv_heads, group = heads / kv_heads;
    const size_t layer_bytes = size_t(2) * kv_heads * context * d * 2;
    const int buffers = int(std::max<size_t>(2, (4 * l2_bytes_ + layer_bytes - 1) / layer_bytes));
    const int64_t pages = cuda::quest_page_count(context);
    const int64_t page_head_stride = pages * d;
    const size_t page_bytes = size_t(2) * kv_heads * page_head_stride * 2;

    std::vector<std::unique_ptr<DeviceBuffer>> kv, page_tables;
    for (int b = 0; b < buffers; ++b) {
      kv.push_back(std::make_unique<DeviceBuffer>(layer_bytes));
      gpu_bench::fill_random_bf16(kv.back()->as<uint16_t>(), layer_bytes / 2, 1000 + b, stream_);
      page_tables.push_back(std::make_unique<DeviceBuffer>(page_bytes));
    }
    auto view = [&](int b) {
      cuda::KvLayerView v;
      v.keys = kv[size_t(b)]->as<uint16_t>();
      v.values = kv[size_t(b)]->as<uint16_t>() + size_t(kv_heads) * context * d;
      v.key_head_stride = v.value_head_stride = context * d;
      v.key_row_stride = v.value_row_stride = d;
      v.num_kv_heads = kv_heads;
      v.head_dim = d;
      return v;
    };
    auto table = [&](int b) {
      cuda::QuestPageTable t;
      t.key_min = page_tables[size_t(b)]->as<uint16_t>();
      t.key_max = page_tables[size_t(b)]->as<uint16_t>() + size_t(kv_heads) * page_head_stride;
      t.head_stride = page_head_stride;
      t.max_pages = pages;
      return t;
    };
    for (int b = 0; b < buffers; ++b) cuda::update_quest_pages(view(b), table(b), 0, context, stream_);

    DeviceBuffer query(size_t(heads) * d * 2), out(size_t(heads) * d * 2);
    gpu_bench::fill_random_bf16(query.as<uint16_t>(), size_t(heads) * d, 7, stream_);
    DeviceBuffer workspace(cuda::decode_attention_workspace_bytes(heads, d));
    cuda::prepare_decode_attention_workspace(workspace.as(), heads, d, stream_);
    const size_t score_bytes = size_t(heads) * context * 4;
    const int score_buffers = int(std::max<size_t>(2, (4 * l2_bytes_ + score_bytes - 1) / score_bytes));
    std::vector<std::unique_ptr<DeviceBuffer>> scores;
    for (int b = 0; b < score_buffers; ++b) {
      scores.push_back(std::make_unique<DeviceBuffer>(score_bytes));
      gpu_bench::fill_random_f32(scores.back()->as<float>(), score_bytes / 4, 50 + b, stream_);
    }

    // Sparse lists: 2048 random ascending positions per query head, the current one last.
    constexpr int64_t kBudget = 2048;
    std::vector<int32_t> lists(size_t(heads * kBudget));
    uint64_t state = 12345;
    for (int h = 0; h < heads; ++h) {
      std::vector<int32_t> row;
      std::vector<char> taken(size_t(context), 0);
      taken[size_t(context - 1)] = 1;
      row.push_back(int32_t(context - 1));
      while (int64_t(row.size()) < kBudget) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const int64_t p = int64_t((state >> 33) % uint64_t(context - 1));
        if (!taken[size_t(p)]) {
          taken[size_t(p)] = 1;
          row.push_back(int32_t(p));
        }
      }
      std::sort(row.begin(), row.end());
      std::copy(row.begin(), row.end(), lists.begin() + h * kBudget);
    }
    DeviceBuffer positions(lists.size() * 4);
    check(cudaMemcpy(positions.as(), lists.data(), lists.size() * 4, cudaMemcpyHostToDevice), "upload lists");
    DeviceBuffer selected(size_t(heads) * (kBudget + 1) * 4);

    cuda::DecodeAttentionArgs dense;
    dense.query = query.as();
    dense.query_type = cuda::ElementType::BF16;
    dense.num_heads = heads;
    dense.seq_len = context;
    dense.out = out.as();
    dense.out_type = cuda::ElementType::BF16;
    dense.workspace = workspace.as();
    dense.workspace_bytes = workspace.bytes();

    const double kv_read = double(layer_bytes);
    {
      const int64_t blocks = cuda::detail::kTopKClusterSize;
      const size_t slice_bytes = size_t((context - 1 + blocks - 1) / blocks) * sizeof(uint32_t);
      std::printf("%s %lldK: top-k clusters resident at once: %d (rows: %d per query head, %d per KV head)\n",
                  shape.name, static_cast<long long>(context / 1000),
                  cuda::detail::top_k_max_active_clusters(true, slice_bytes), heads, kv_heads);
    }
    const std::string model = shape.name;
    auto add = [&](const std::string& op, double us, double bytes) {
      rows_.push_back({model, context, op, us, bytes});
    };

    add("dense attention",
        median_us(
            [&](int rep) {
              cuda::DecodeAttentionArgs a = dense;
              a.kv = view(rep % buffers);
              cuda::decode_attention(a, stream_);
            },
            stream_),
        kv_read);

    add("dense + scores",
        median_us(
            [&](int rep) {
              cuda::DecodeAttentionArgs a = dense;
              a.kv = view(rep % buffers);
              a.scores = scores[size_t(rep % score_buffers)]->as<float>();
              a.score_stride = context;
              cuda::decode_attention(a, stream_);
            },
            stream_),
        kv_read + double(score_bytes));

    cuda::TopKArgs top;
    top.score_stride = context;
    top.rows = heads;
    top.candidates = context - 1;
    top.k = kBudget - 1;
    top.append_position = context - 1;
    top.out = selected.as<int32_t>();
    top.out_stride = kBudget;
    add("top-k 2048/query head",
        median_us(
            [&](int rep) {
              cuda::TopKArgs t = top;
              t.scores = scores[size_t(rep % score_buffers)]->as<float>();
              cuda::select_top_k(t, stream_);
            },
            stream_),
        double(score_bytes));
    if (group > 1) {
      add("top-k 2048/KV head (max)",
          median_us(
              [&](int rep) {
                cuda::TopKArgs t = top;
                t.scores = scores[size_t(rep % score_buffers)]->as<float>();
                t.rows = kv_heads;
                t.group = group;
                t.reduce = cuda::ScoreReduce::Max;
                cuda::select_top_k(t, stream_);
              },
              stream_),
          double(score_bytes));
    }
    add("tidal selection layer",
        median_us(
            [&](int rep) {
              cuda::DecodeAttentionArgs a = dense;
              a.kv = view(rep % buffers);
              a.scores = scores[size_t(rep % score_buffers)]->as<float>();
              a.score_stride = context;
              cuda::decode_attention(a, stream_);
              cuda::TopKArgs t = top;
              t.scores = a.scores;
              cuda::select_top_k(t, stream_);
            },
            stream_),
        kv_read + double(score_bytes));

    cuda::PositionLists per_head;
    per_head.positions = positions.as<int32_t>();
    per_head.stride = kBudget;
    per_head.count = kBudget;
    per_head.sharing = cuda::PositionSharing::PerQueryHead;
    const double row_bytes = 2.0 * d * 2;
    auto sparse_attention_us = [&](const cuda::PositionLists* lists) {
      return median_us(
          [&](int rep) {
            cuda::DecodeAttentionArgs a = dense;
            a.kv = view(rep % buffers);
            a.sparse = lists;
            cuda::decode_attention(a, stream_);
          },
          stream_);
    };
    add("sparse 2048/query head", sparse_attention_us(&per_head), double(heads) * kBudget * (row_bytes + 4));
    if (group > 1) {
      cuda::PositionLists per_kv = per_head;
      per_kv.sharing = cuda::PositionSharing::PerKvHead;
      add("sparse 2048/KV head", sparse_attention_us(&per_kv), double(kv_heads) * kBudget * (row_bytes + 4));
    }

    // Quest: bounds of every page, 128 pages per head (the last always), their positions,
    // sparse attention over them.
    const int64_t page_budget = kBudget / cuda::kQuestPageTokens;
    const int64_t quest_count = tidal::quest_position_count(context, page_budget);
    DeviceBuffer bounds(size_t(heads) * pages * 4);
    DeviceBuffer page_lists(size_t(heads) * page_budget * 4);
    DeviceBuffer quest_positions(size_t(heads) * page_budget * cuda::kQuestPageTokens * 4);
    cuda::QuestScoreArgs quest;
    quest.query = query.as();
    quest.query_type = cuda::ElementType::BF16;
    quest.num_heads = heads;
    quest.num_kv_heads = kv_heads;
    quest.head_dim = d;
    quest.num_pages = pages;
    quest.bounds = bounds.as<float>();
    quest.bounds_stride = pages;
    cuda::TopKArgs page_top;
    page_top.scores = bounds.as<float>();
    page_top.score_stride = pages;
    page_top.rows = heads;
    page_top.candidates = pages - 1;
    page_top.k = page_budget - 1;
    page_top.append_position = pages - 1;
    page_top.out = page_lists.as<int32_t>();
    page_top.out_stride = page_budget;
    cuda::PositionLists quest_lists;
    quest_lists.positions = quest_positions.as<int32_t>();
    quest_lists.stride = page_budget * cuda::kQuestPageTokens;
    quest_lists.count = quest_count;
    quest_lists.sharing = cuda::PositionSharing::PerQueryHead;
    const double page_meta_bytes = double(kv_heads) * pages * d * 2 * 2;
    const double bounds_bytes = double(heads) * pages * 4;
    auto quest_select = [&](int b) {
      cuda::QuestScoreArgs q = quest;
      q.pages = table(b);
      cuda::quest_page_scores(q, stream_);
      cuda::select_top_k(page_top, stream_);
      cuda::expand_pages(page_lists.as<int32_t>(), heads, page_budget, page_budget, context,
                         quest_positions.as<int32_t>(), quest_lists.stride, stream_);
    };
    add("quest page bounds",
        median_us(
            [&](int rep) {
              cuda::QuestScoreArgs q = quest;
              q.pages = table(rep % buffers);
              cuda::quest_page_scores(q, stream_);
            },
            stream_),
        page_meta_bytes + bounds_bytes);
    add("quest select (bounds+top-k+expand)", median_us([&](int rep) { quest_select(rep % buffers); }, stream_),
        page_meta_bytes + 2 * bounds_bytes);
    add("quest step (select + sparse attn)",
        median_us(
            [&](int rep) {
              quest_select(rep % buffers);
              cuda::DecodeAttentionArgs a = dense;
              a.kv = view(rep % buffers);
              a.sparse = &quest_lists;
              cuda::decode_attention(a, stream_);
            },
            stream_),
        page_meta_bytes + 2 * bounds_bytes + double(heads) * quest_count * (row_bytes + 4));
    check(cudaStreamSynchronize(stream_), "benchmark runs");
  }

  // One layer's prefill attention of `tokens` queries at positions start .. start + tokens - 1.
  void run_prefill(const Shape& shape, int tokens, int64_t start) {
    const int d = shape.head_dim, heads = shape.heads, kv_heads = shape.kv_heads;
    const int64_t total = start + tokens;
    DeviceBuffer keys(size_t(kv_heads) * total * d * 2), values(size_t(kv_heads) * total * d * 2);
    DeviceBuffer q(size_t(tokens) * heads * d * 2), out(size_t(tokens) * heads * d * 2);
    gpu_bench::fill_random_bf16(keys.as<uint16_t>(), size_t(kv_heads) * total * d, 21, stream_);
    gpu_bench::fill_random_bf16(values.as<uint16_t>(), size_t(kv_heads) * total * d, 22, stream_);
    gpu_bench::fill_random_bf16(q.as<uint16_t>(), size_t(tokens) * heads * d, 23, stream_);
    double flops = 0;
    for (int t = 0; t < tokens; ++t) flops += 4.0 * d * heads * double(start + t + 1);
    struct Variant {
      cuda::PrefillKernel kernel;
      int warps;
      const char* name;
    };
    std::vector<Variant> variants = {{cuda::PrefillKernel::MmaSync, 4, "mma 4 warps"},
                                     {cuda::PrefillKernel::MmaSync, 8, "mma 8 warps"}};
    {
      cuda::PrefillAttentionLaunch probe;
      probe.kernel = cuda::PrefillKernel::Auto;
      if (cuda::prefill_attention_kernel(probe) == cuda::PrefillKernel::Wgmma)
        variants.push_back({cuda::PrefillKernel::Wgmma, 4, "wgmma"});
    }
    for (const Variant& v : variants)
      for (int splits : {1, 0}) {
        if (splits == 0 && tokens >= 1024) continue;  // the rule runs long chunks in one pass
        cuda::PrefillAttentionLaunch p;
        p.kernel = v.kernel;
        p.q = q.as<uint16_t>();
        p.keys = keys.as<uint16_t>();
        p.values = values.as<uint16_t>();
        p.head_stride = total * d;
        p.tokens = tokens;
        p.heads = heads;
        p.kv_heads = kv_heads;
        p.head_dim = d;
        p.start = start;
        p.scale = float(1.0 / std::sqrt(double(d)));
        p.out = out.as<uint16_t>();
        p.warps = v.warps;
        p.splits = cuda::prefill_attention_splits(p);
        if (splits == 1) p.splits = 1;
        DeviceBuffer scratch(cuda::prefill_attention_scratch_bytes(p, p.splits));
        p.split_scratch = scratch.as();
        p.split_scratch_bytes = scratch.bytes();
        const double us = median_us(
            [&](int) { check(cuda::launch_prefill_attention(p, stream_), "launching prefill attention"); }, stream_);
        char variant[64];
        std::snprintf(variant, sizeof variant, "%s, %s", v.name, p.splits == 1 ? "one pass" : "split");
        prefill_rows_.push_back({shape.name, tokens, start, variant, p.splits, us, flops});
      }
  }

  void print_prefill_table() const {
    std::printf("\nprefill attention, one layer; floor = causal flops / %.0f TFLOP/s\n\n", kPeakTflops);
    std::printf("| model | chunk | cached keys | path | parts | time (ms) | TFLOP/s | floor (ms) | time/floor |\n");
    std::printf("|---|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for (const PrefillRow& row : prefill_rows_) {
      const double floor_ms = row.flops / (kPeakTflops * 1e12) * 1e3;
      std::printf("| %s | %d | %lldK | %s | %d | %.3f | %.0f | %.3f | %.2f |\n", row.model.c_str(), row.tokens,
                  static_cast<long long>(row.start / 1000), row.variant.c_str(), row.splits, row.us / 1e3,
                  row.flops / row.us / 1e6, floor_ms, row.us / 1e3 / floor_ms);
    }
  }

  // The four matrix products of one Llama-3.1-8B layer as the engine runs them in prefill
  // (bf16 weights and activations, fp32 out, cuBLAS), for a chunk of `tokens`: time per product
  // and TFLOP/s against the dense-bf16 rate. Rotates over enough weight copies that L2 holds none.
  void run_matmuls(int tokens) {
    struct Product {
      const char* name;
      int64_t rows, cols;
    };
    const Product products[] = {
        {"q|k|v", 6144, 4096}, {"o", 4096, 4096}, {"gate|up", 28672, 4096}, {"down", 4096, 14336}};
    cuda::Blas blas(stream_);
    constexpr int kCopies = 3;
    for (const Product& product : products) {
      const size_t weight = size_t(product.rows * product.cols);
      std::vector<std::unique_ptr<DeviceBuffer>> weights;
      for (int c = 0; c < kCopies; ++c) {
        weights.push_back(std::make_unique<DeviceBuffer>(weight * 2));
        gpu_bench::fill_random_bf16(weights.back()->as<uint16_t>(), weight, 11 + c, stream_);
      }
      DeviceBuffer x(size_t(tokens) * product.cols * 2), y(size_t(tokens) * product.rows * 4);
      gpu_bench::fill_random_bf16(x.as<uint16_t>(), size_t(tokens) * product.cols, 5, stream_);
      const double us = median_us(
          [&](int rep) {
            blas.linear(weights[rep % kCopies]->as<uint16_t>(), product.rows, product.cols, x.as<uint16_t>(),
                        product.cols, tokens, y.as<float>(), product.rows, 0.0f);
          },
          stream_);
      matmul_rows_.push_back({product.name, tokens, product.rows, product.cols, us});
    }
  }

  // " mma", " k<k_splits>", " b<min_blocks>" where they apply: the rest of a configuration's name.
  static std::string mma_suffix(const cuda::GemvQuantConfig& c) {
    return std::string(c.mma ? " mma" : "") + (c.k_splits ? " k" + std::to_string(c.k_splits) : "") +
           (c.min_blocks ? " b" + std::to_string(c.min_blocks) : "");
  }

  // One-token products over block-quantised weights (kernels/gemv_quant.cu), every compiled
  // configuration, on the Llama-3.1-8B matrices; the weights cycle through copies larger than 4x
  // the L2, so every launch reads them from memory. The Q4_K_M step estimate: per layer q|k|v,
  // o, gate|up in Q4_K and down half Q4_K, half Q6_K (llama.cpp's mix), plus the Q6_K head.
  void run_gemv_quant() {
    struct Matrix {
      const char* name;
      int64_t rows;
      int cols;
    };
    const Matrix matrices[] = {{"q|k|v", 6144, 4096},
                               {"o", 4096, 4096},
                               {"gate|up", 28672, 4096},
                               {"down", 4096, 14336},
                               {"output", 128256, 4096}};
    const cuda::QuantFormat formats[] = {cuda::QuantFormat::Q4_K, cuda::QuantFormat::Q6_K, cuda::QuantFormat::Q8_0};
    const std::vector<cuda::GemvQuantConfig> configs(std::begin(cuda::kGemvQuantConfigs),
                                                     std::end(cuda::kGemvQuantConfigs));
    const size_t pool_bytes = std::max<size_t>(size_t(1) << 30, 6 * l2_bytes_);
    DeviceBuffer pool(pool_bytes), x(size_t(16384) * 2), y(size_t(128256) * 4);
    // 0x11 in every byte: finite f16 scales; the bytes do not change the work.
    check(cudaMemset(pool.as(), 0x11, pool_bytes), "fill");
    gpu_bench::fill_random_bf16(x.as<uint16_t>(), 16384, 3, stream_);
    const char* format_names[] = {"Q4_K", "Q6_K", "Q8_0"};
    std::printf(
        "\nOne-token products over quantised weights (median us; GB/s of weight bytes; share of the %.0f GB/s read "
        "sweep)\n\n",
        read_gbs_);
    std::printf("| format | matrix | rows x cols | MB |");
    for (const auto& c : configs)
      std::printf(" %dw %dr %ds%s |", c.warps, c.rows_per_warp, c.stages, mma_suffix(c).c_str());
    std::printf("\n|---|---|---|---:|");
    for (size_t i = 0; i < configs.size(); ++i) std::printf("---:|");
    std::printf("\n");
    // us[config][format][matrix]
    std::vector<std::vector<std::vector<double>>> us(configs.size(),
                                                     std::vector<std::vector<double>>(3, std::vector<double>(5)));
    for (int f = 0; f < 3; ++f)
      for (int m = 0; m < 5; ++m) {
        const Matrix& matrix = matrices[m];
        const int64_t bytes = matrix.rows * cuda::quant_row_bytes(formats[f], matrix.cols);
        const int64_t stride = (bytes + 255) / 256 * 256;
        const int copies = int(std::max<int64_t>(1, int64_t(pool_bytes) / stride));
        std::printf("| %s | %s | %lld x %d | %.1f |", format_names[f], matrix.name, static_cast<long long>(matrix.rows),
                    matrix.cols, bytes / 1e6);
        for (size_t c = 0; c < configs.size(); ++c) {
          if (!cuda::gemv_quant_config_supported(configs[c], formats[f])) {
            us[c][size_t(f)][size_t(m)] = -1;
            std::printf(" - |");
            continue;
          }
          const double t = median_us(
              [&](int rep) {
                check(cuda::launch_gemv_quant_with(configs[c], formats[f], pool.as<uint8_t>() + (rep % copies) * stride,
                                                   matrix.rows, matrix.cols, x.as<uint16_t>(), y.as<float>(), 0.0f,
                                                   stream_),
                      "gemv_quant");
              },
              stream_);
          us[c][size_t(f)][size_t(m)] = t;
          std::printf(" %.1f (%.0f%%) |", t, 100.0 * bytes / t / 1e3 / read_gbs_);
        }
        std::printf("\n");
      }
    const double floor_us = [&] {
      double bytes = 0;
      auto b = [&](int f, int m) {
        return double(matrices[m].rows * cuda::quant_row_bytes(formats[f], matrices[m].cols));
      };
      bytes = 32 * (b(0, 0) + b(0, 1) + b(0, 2) + 0.5 * (b(0, 3) + b(1, 3))) + b(1, 4);
      return bytes / read_gbs_ / 1e3;
    }();
    std::printf("\nLlama-3.1-8B Q4_K_M products of one step (floor %.0f us at the read sweep):", floor_us);
    // Q4_K from each configuration, Q6_K from its default one.
    size_t q6k_default = 0;
    for (size_t c = 0; c < configs.size(); ++c)
      if (configs[c] == cuda::default_gemv_quant_config(cuda::QuantFormat::Q6_K)) q6k_default = c;
    const auto& q6k = us[q6k_default][1];
    for (size_t c = 0; c < configs.size(); ++c) {
      const auto& q4k = us[c][0];
      const double step = 32 * (q4k[0] + q4k[1] + q4k[2] + 0.5 * (q4k[3] + q6k[3])) + q6k[4];
      std::printf(" %dw%dr%ds%s %.0f us (%.2fx);", configs[c].warps, configs[c].rows_per_warp, configs[c].stages,
                  mma_suffix(configs[c]).c_str(), step, step / floor_us);
    }
    std::printf("\n");
  }

  void print_matmul_table() const {
    std::printf(
        "\nprefill matrix products (cuBLAS, bf16 x bf16 -> fp32), Llama-3.1-8B layer; floor = flops / %.0f TFLOP/s\n\n",
        kPeakTflops);
    std::printf("| product | tokens | rows x cols | time (us) | TFLOP/s | time/floor |\n");
    std::printf("|---|---:|---|---:|---:|---:|\n");
    for (const MatmulRow& row : matmul_rows_) {
      const double flops = 2.0 * double(row.tokens) * double(row.rows) * double(row.cols);
      const double tflops = flops / row.us / 1e6;
      std::printf("| %s | %d | %lld x %lld | %.1f | %.0f | %.2f |\n", row.name.c_str(), row.tokens,
                  static_cast<long long>(row.rows), static_cast<long long>(row.cols), row.us, tflops,
                  kPeakTflops / tflops);
    }
  }

  void print_table() const {
    std::printf("\nfloor = bytes that must move / %.0f GB/s (device-to-device copy, same run)\n\n", copy_gbs_);
    std::printf("| model | context | op | time (us) | floor (us) | time/floor | GB/s |\n");
    std::printf("|---|---|---|---:|---:|---:|---:|\n");
    for (const Row& row : rows_) {
      const double floor_us = row.bytes / (copy_gbs_ * 1e3);
      std::printf("| %s | %lldK | %s | %.1f | %.1f | %.2f | %.0f |\n", row.model.c_str(),
                  static_cast<long long>(row.context / 1000), row.op.c_str(), row.us, floor_us, row.us / floor_us,
                  row.bytes / row.us / 1e3);
    }
  }

 private:
  cudaStream_t stream_ = nullptr;
  size_t l2_bytes_ = 0;
  double copy_gbs_ = 0, read_gbs_ = 0;
  std::vector<Row> rows_;
  struct PrefillRow {
    std::string model;
    int tokens;
    int64_t start;
    std::string variant;
    int splits;
    double us, flops;
  };
  static constexpr double kPeakTflops = 790;
  std::vector<PrefillRow> prefill_rows_;
  struct MatmulRow {
    std::string name;
    int tokens;
    int64_t rows, cols;
    double us;
  };
  std::vector<MatmulRow> matmul_rows_;
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool smoke = argc > 1 && std::strcmp(argv[1], "--smoke") == 0;
  const bool prefill_only = argc > 1 && std::strcmp(argv[1], "--prefill") == 0;
  const bool gemv_quant_only = argc > 1 && std::strcmp(argv[1], "--gemv-quant") == 0;
  if (smoke) {
    settings.warmup = 1;
    settings.reps = 2;
    settings.copy_bytes = size_t(64) << 20;
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no usable CUDA device\n");
    return 77;
  }
  try {
    Bench bench;
    if (gemv_quant_only) {
      bench.measure_bandwidth();
      bench.run_gemv_quant();
      return 0;
    }
    if (!prefill_only) {
      bench.measure_bandwidth();
      const Shape shapes[] = {{"Llama-3.1-8B", 32, 8, 128}, {"Llama-2-7B", 32, 32, 128}};
      std::vector<int64_t> contexts = {10000, 32000, 100000};
      if (quick) contexts = {32000};
      if (smoke) contexts = {4096};
      for (const Shape& shape : shapes)
        for (int64_t context : contexts) bench.run_shape(shape, context);
      bench.print_table();
    }
    const Shape prefill_shapes[] = {{"Llama-3.1-8B", 32, 8, 128}, {"Qwen2.5-7B", 28, 4, 128}};
    for (const Shape& shape : prefill_shapes) bench.run_prefill(shape, 256, smoke ? 4096 : 99000);
    // The last 8192-token chunk of a 32K and of a 100K prefill: attention at the full-prefill rate.
    for (int64_t context : {32768, 100000}) bench.run_prefill(prefill_shapes[0], 8192, smoke ? 4096 : context - 8192);
    bench.print_prefill_table();
    for (int tokens : {256, 2048, 8192}) bench.run_matmuls(tokens);
    bench.print_matmul_table();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "benchmark failed: %s\n", error.what());
    return 1;
  }
  return 0;
}
