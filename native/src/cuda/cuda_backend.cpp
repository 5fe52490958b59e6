#include "cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/attention_kernels.h"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_error.h"
#include "cuda/cuda_kv_cache.h"
#include "cuda/device_buffer.h"
#include "cuda/device_weights.h"
#include "cuda/kv_compaction.h"
#include "cuda/kv_transfer.h"
#include "cuda/model_kernels.h"
#include "cuda/quest_kernels.h"
#include "cuda/selection_kernels.h"
#include "cuda/step_graph.h"
#include "cuda/workspace.h"
#include "engine/decoder.h"
#include "kernels/dequantize.h"
#include "kernels/gemv_quant.h"
#include "kernels/sparse_prefill.h"
#include "model/half.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"

namespace tidal {

namespace {

using cuda::CudaKvCache;
using cuda::DeviceBuffer;
using cuda::DeviceLayer;
using cuda::DeviceMatrix;
using cuda::HostEmbedding;
using cuda::KvAccount;
using cuda::KvShape;
using cuda::QuantMatrix;
using cuda::throw_if_failed;
static_assert(cuda::kQuestPageTokens == kQuestPageTokens, "Quest pages of the engine and of the kernels");

// Prefill over an FP8 cache widens at most this much K/V to bf16 at once (CudaBackendTools::
// set_fp8_prefill_scratch), one KV head at least: at 100K tokens of an 8B model one of its 8 KV
// heads (52 MB) instead of all of them (0.41 GB). 128 MiB (two heads there) made a 256-token
// chunk at 100K 2.5% faster on an H100 (81.0 against 83.0 ms, bench/NOTES.md Version 24) for
// 52 MB more, which a 16 GB card running an 8B model at 100K does not have to spare.
constexpr size_t kFp8PrefillScratchBytes = size_t(64) << 20;

// Longest rows the GEMV kernel takes in GemvUse::Auto (see linear()).
constexpr int64_t kGemvAutoCols = 8192;

class CudaBackend final : public Backend, public DecoderOps, public CudaBackendTools {
 public:
  CudaBackend(const ModelConfig& config, const CudaBackendOptions& options) : config_(config), options_(options) {
    const std::string reason = cuda_backend_unavailable_reason(options.device);
    if (!reason.empty()) throw RequestError("the cuda backend cannot run: " + reason);
    if (config.head_dim != 64 && config.head_dim != 128)
      throw RequestError("the cuda backend supports head_dim 64 and 128; this model has " +
                         std::to_string(config.head_dim) + " (use the cpu backend)");
    if (config.num_heads % config.num_kv_heads != 0 || config.num_heads / config.num_kv_heads > 8)
      throw RequestError("the cuda backend supports up to 8 query heads per KV head");
    throw_if_failed(cudaSetDevice(options.device), "selecting the CUDA device");
    throw_if_failed(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a CUDA stream");
    try {
      blas_ = std::make_unique<cuda::Blas>(stream_);
    } catch (const std::runtime_error& e) {
      throw RequestError(std::string("the cuda backend cannot run: ") + e.what());
    }
    // Defaults are what was measured best (bench/NOTES.md): replayed decode
    // graphs, the GEMV kernel or cuBLAS per matrix shape; $TIDAL_CUDA_GRAPHS=0 turns graphs
    // off, $TIDAL_CUDA_GEMV=1 / 0 forces one product.
    const char* graphs = std::getenv("TIDAL_CUDA_GRAPHS");
    graphs_ = graphs ? std::string(graphs) != "0" : options.graphs;
    const char* quantized = std::getenv("TIDAL_CUDA_QUANTIZED");
    quantized_weights_ = quantized ? std::string(quantized) != "0" : options.quantized_weights;
    // A one-token gate|up product ends in SwiGLU (one launch fewer a layer, the same bits);
    // $TIDAL_CUDA_FUSED_SWIGLU=0 keeps the separate SwiGLU kernel.
    const char* fused_swiglu = std::getenv("TIDAL_CUDA_FUSED_SWIGLU");
    fused_swiglu_ = !fused_swiglu || std::string(fused_swiglu) != "0";
    const char* embedding_on_host = std::getenv("TIDAL_CUDA_EMBEDDING_ON_HOST");
    embedding_on_host_ = embedding_on_host ? std::string(embedding_on_host) != "0" : options.embedding_on_host;
    // $TIDAL_CUDA_Q4K_CONFIG=warps,stages,k_splits[,min_blocks] picks another compiled
    // tensor-core configuration of the one-token Q4_K product (kernels/gemv_quant.h), for
    // measuring one against the default in whole decode steps.
    if (const char* q4k = std::getenv("TIDAL_CUDA_Q4K_CONFIG")) {
      cuda::GemvQuantConfig chosen{0, 16, 0, true, 0, 0};
      const int fields =
          std::sscanf(q4k, "%d,%d,%d,%d", &chosen.warps, &chosen.stages, &chosen.k_splits, &chosen.min_blocks);
      if (fields < 3 || !cuda::gemv_quant_config_supported(chosen, cuda::QuantFormat::Q4_K))
        throw RequestError(std::string("TIDAL_CUDA_Q4K_CONFIG=") + q4k +
                           " is not a compiled Q4_K tensor-core configuration (warps,stages,k_splits[,min_blocks]; "
                           "kernels/gemv_quant.h lists them)");
      q4k_config_ = chosen;
    }
    const char* gemv = std::getenv("TIDAL_CUDA_GEMV");
    if (gemv)
      gemv_ = std::string(gemv) == "1" ? GemvUse::Always : std::string(gemv) == "0" ? GemvUse::Never : GemvUse::Auto;
    // One-token products over the model's weights may launch early (kernels/common.cuh): their
    // first weight loads overlap the end of the kernel before them. Off until measured on a GPU
    // (bench/NOTES.md Version 22); $TIDAL_CUDA_EARLY_LAUNCH=1 turns it on. It needs compute
    // capability 9.0 (griddepcontrol).
    int major = 0;
    throw_if_failed(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, options.device),
                    "reading the compute capability");
    early_launch_possible_ = major >= 9;
    const char* early = std::getenv("TIDAL_CUDA_EARLY_LAUNCH");
    set_early_launch(early && std::string(early) == "1");
    step_ = DeviceBuffer(kStepScalars * sizeof(int64_t), "the step position");
    throw_if_failed(cudaMallocHost(reinterpret_cast<void**>(&step_host_), kStepScalars * sizeof(int64_t)),
                    "allocating pinned host memory");
    account_ = std::make_shared<KvAccount>();
    account_->cap = options.max_kv_bytes;
    account_->stream = stream_;
    check_rope_frequencies(config);
    inv_freq_host_ = config.rope_frequencies;
    inv_freq_ = cuda::upload_floats(inv_freq_host_, "RoPE frequencies");
    workspace_ = DeviceBuffer(
        cuda::decode_attention_workspace_bytes(static_cast<int>(config.num_heads), static_cast<int>(config.head_dim)),
        "attention workspace");
    cuda::prepare_decode_attention_workspace(workspace_.get(), static_cast<int>(config.num_heads),
                                             static_cast<int>(config.head_dim), stream_);
  }

  ~CudaBackend() override {
    for (cudaEvent_t e : layer_events_)
      if (e) cudaEventDestroy(e);
    if (step_host_) cudaFreeHost(step_host_);
    if (embedding_copied_) cudaEventDestroy(embedding_copied_);
    if (embedding_staging_) cudaFreeHost(embedding_staging_);
    weights_.layers.clear();
    blas_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  void upload(const ModelWeights& weights) {
    weights_.upload(config_, weights, quantized_weights_, embedding_on_host_, stream_);
  }
  void randomize(uint64_t seed, const std::string& weights) {
    if (weights == "bf16") {
      weights_.randomize(config_, seed, embedding_on_host_, stream_);
    } else {
      weights_.randomize_quantized(config_, weights, seed, embedding_on_host_, stream_);
    }
  }

  // ---- Backend ----
  const char* name() const override { return "cuda"; }
  int threads() const override { return 1; }
  std::unique_ptr<KvCache> create_kv_cache() override { return std::make_unique<CudaKvCache>(account_, kv_shape()); }
  size_t kv_bytes_in_use() const override { return account_->in_use; }
  size_t kv_bytes_peak() const override { return account_->peak; }
  // Without Quest's page bounds (built only for a sequence that runs a Quest step).
  size_t kv_bytes_per_token() const override { return kv_shape().bytes_for(256, false) / 256; }

  // Tidal sparse prefill over a bf16 cache: the selection layers' pass scores from the prefill
  // attention's row statistics (kernels/sparse_prefill.h), the decode top-k, and the prefill
  // attention over each list's rows gathered into a compact cache.
  std::string sparse_prefill_refusal(const AttentionPlan& plan) const override {
    return sparse_prefill_refusal(plan.mode);
  }
  std::string sparse_prefill_refusal(AttentionMode mode) const {
    if (mode == AttentionMode::Quest) return "Quest's sparse prefill runs on the CPU backend only";
    if (options_.kv_fp8) return "a sparse prefill needs a bf16 KV cache on the cuda backend (this one is FP8)";
    return {};
  }

  SelectionTrace last_selection_trace() const override {
    SelectionTrace trace;
    if (traced_positions_ == 0) return trace;
    const int64_t heads = config_.num_heads, group = heads / config_.num_kv_heads;
    trace.positions = traced_positions_;
    trace.scores.resize(static_cast<size_t>(heads * traced_positions_));
    throw_if_failed(cudaMemcpy2D(trace.scores.data(), static_cast<size_t>(traced_positions_) * 4, ws_.scores.get(),
                                 static_cast<size_t>(ws_.score_stride) * 4, static_cast<size_t>(traced_positions_) * 4,
                                 static_cast<size_t>(heads), cudaMemcpyDeviceToHost),
                    "reading the selection scores");
    const int64_t lists = traced_shared_ ? config_.num_kv_heads : heads;
    std::vector<int32_t> selected(static_cast<size_t>(lists * traced_stride_));
    throw_if_failed(cudaMemcpy(selected.data(), ws_.selected.get(), selected.size() * 4, cudaMemcpyDeviceToHost),
                    "reading the selection");
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t list = traced_shared_ ? h / group : h;
      trace.selected.emplace_back(selected.begin() + list * traced_stride_,
                                  selected.begin() + list * traced_stride_ + traced_count_);
    }
    return trace;
  }

  const char* kv_dtype() const override { return options_.kv_fp8 ? "fp8_e4m3" : "bf16"; }

  void compact(KvCache& cache, const KvRanges& ranges) override {
    cuda::compact_kv_cache(dynamic_cast<CudaKvCache&>(cache), ranges, inv_freq_host_, compact_chunk_);
  }

  void save_kv(const KvCache& cache, KvByteSink& sink) override {
    cuda::save_kv_cache(dynamic_cast<const CudaKvCache&>(cache), sink);
  }

  void load_kv(KvCache& cache, int64_t length, KvByteSource& source) override {
    cuda::load_kv_cache(dynamic_cast<CudaKvCache&>(cache), length, source);
  }

  void forward(KvCache& cache_base, const int32_t* tokens, int64_t count, const AttentionPlan* plan,
               LogitsWanted wanted, float* logits, ForwardStats* stats, const std::atomic<bool>* cancel) override {
    if (count <= 0) return;
    auto& cache = dynamic_cast<CudaKvCache&>(cache_base);
    if (count > 1 && !(plan && plan->sparse_prefill)) plan = nullptr;
    if (count > 1 && plan)
      if (const std::string refusal = sparse_prefill_refusal(*plan); !refusal.empty()) throw RequestError(refusal);
    const int64_t start = cache.length();
    const int64_t logit_rows = wanted == LogitsWanted::All ? count : wanted == LogitsWanted::Last ? 1 : 0;
    DecoderPass pass;
    pass.start = start;
    pass.count = count;
    pass.plan = plan;
    pass.logit_rows = logit_rows;
    pass.cancel = count > 1 ? cancel : nullptr;
    const DecoderRoute route = route_pass(config_, pass);
    begin_pass(cache, tokens, pass);
    // Graphs only for plans whose kernels have run once uncaptured (their lazy set-up, such
    // as shared-memory limits and cuBLAS's first-call work, then happened outside a capture).
    if (graphs_ && count == 1 && plan_seen(plan) && replayable(plan, start + 1)) {
      replay_step(pass, route);
    } else {
      run_decoder(config_, *this, pass, route);
      if (count == 1) remember_plan(plan);
    }
    if (logit_rows > 0 && logits)
      throw_if_failed(
          cudaMemcpyAsync(logits, ws_.logits.get(), static_cast<size_t>(logit_rows * config_.vocab_size) * 4,
                          cudaMemcpyDeviceToHost, stream_),
          "reading logits");
    end_pass(true);
    if (route.selects && count > 1) {
      traced_positions_ = 0;  // the trace shows decode steps; a sparse prefill's selection leaves none
    } else if (route.selects) {
      // The selection's scores and lists stay in ws_.scores and ws_.selected until the next one.
      traced_positions_ = start + count;
      traced_stride_ = route.selection.token_budget;
      traced_count_ = route.selection.count();
      traced_shared_ = route.selection.per_kv_head();
    }
    add_stats(stats, route.stats);
  }

  DecoderOps& decoder_ops() override { return *this; }

  // ---- DecoderOps ----
  void begin_pass(KvCache& cache_base, const int32_t* tokens, const DecoderPass& pass) override {
    auto& cache = dynamic_cast<CudaKvCache&>(cache_base);
    if (pass.start != cache.length() || pass.count <= 0)
      throw std::logic_error("a pass starts at the cache's length and has tokens");
    for (int64_t i = 0; i < pass.count; ++i)
      if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
        throw RequestError("token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    if (pass.count == 1 && pass.plan && pass.plan->mode == AttentionMode::Quest) cache.ensure_pages();
    cache.reserve(pass.positions());
    ws_.prepare(config_, pass.count, pass.positions(), pass.plan, pass.logit_rows, stream_);
    throw_if_failed(
        cudaMemcpyAsync(ws_.tokens.get(), tokens, static_cast<size_t>(pass.count) * 4, cudaMemcpyHostToDevice, stream_),
        "uploading tokens");
    const HostEmbedding& host_table = weights_.host_embed;
    if (!host_table.empty()) {
      // The pass's embedding rows, gathered here into pinned memory (a 2048-token pass of a
      // bf16 8B model is 16 MB: pinned, the copy runs at the link's rate and does not stall the
      // host) and uploaded in one copy. The staging is reused once the last copy from it ended.
      const size_t bytes = static_cast<size_t>(pass.count * host_table.row_bytes);
      ws_.embedding_rows.fit(bytes, static_cast<size_t>(cuda::kKeptTokens * host_table.row_bytes), "embedding rows",
                             stream_);
      if (embedding_copied_) throw_if_failed(cudaEventSynchronize(embedding_copied_), "uploading embedding rows");
      if (bytes > embedding_staging_bytes_) {
        if (embedding_staging_) cudaFreeHost(embedding_staging_);
        embedding_staging_ = nullptr;
        embedding_staging_bytes_ = 0;
        if (cudaMallocHost(reinterpret_cast<void**>(&embedding_staging_), bytes) != cudaSuccess) {
          (void)cudaGetLastError();
          throw OutOfMemoryError("pinned host memory for the embedding rows of a " + std::to_string(pass.count) +
                                 "-token pass (" + std::to_string(bytes) + " bytes) could not be allocated");
        }
        embedding_staging_bytes_ = bytes;
      }
      if (!embedding_copied_)
        throw_if_failed(cudaEventCreateWithFlags(&embedding_copied_, cudaEventDisableTiming), "creating an event");
      host_table.gather(tokens, pass.count, embedding_staging_);
      throw_if_failed(
          cudaMemcpyAsync(ws_.embedding_rows.get(), embedding_staging_, bytes, cudaMemcpyHostToDevice, stream_),
          "uploading embedding rows");
      throw_if_failed(cudaEventRecord(embedding_copied_, stream_), "uploading embedding rows");
    }
    cache_ = &cache;
    count_ = pass.count;
    pass_positions_ = pass.positions();
  }

  // The cache's length moves only once the pass's work has finished without an error.
  void end_pass(bool keep) override {
    synchronize();
    if (keep) cache_->commit(pass_positions_);
  }

  void synchronize() override {
    throw_if_failed(cudaStreamSynchronize(stream_), "running the forward pass");
    throw_if_failed(cudaGetLastError(), "running the forward pass");
  }

  void write_activation(Activation a, int64_t rows, const float* values) override {
    if (a == Activation::GateUp) gated_in_gate_up_ = false;  // Gated lives in ws_.normed again
    const Rows r = rows_of(a);
    const int64_t width = activation_width(config_, a);
    const size_t element = bf16_activation(a) ? 2 : 4;
    std::vector<uint8_t> staged(static_cast<size_t>(rows * width) * element);
    for (int64_t i = 0; i < rows * width; ++i) {
      if (element == 2) {
        const uint16_t h = f32_to_bf16(values[i]);
        std::memcpy(staged.data() + i * 2, &h, 2);
      } else {
        std::memcpy(staged.data() + i * 4, values + i, 4);
      }
    }
    throw_if_failed(cudaMemcpy2DAsync(r.data, static_cast<size_t>(r.stride) * element, staged.data(),
                                      static_cast<size_t>(width) * element, static_cast<size_t>(width) * element,
                                      static_cast<size_t>(rows), cudaMemcpyHostToDevice, stream_),
                    "writing an activation");
    synchronize();
  }

  void read_activation(Activation a, int64_t rows, float* values) override {
    const Rows r = rows_of(a);
    const int64_t width = activation_width(config_, a);
    const size_t element = bf16_activation(a) ? 2 : 4;
    std::vector<uint8_t> staged(static_cast<size_t>(rows * width) * element);
    throw_if_failed(cudaMemcpy2DAsync(staged.data(), static_cast<size_t>(width) * element, r.data,
                                      static_cast<size_t>(r.stride) * element, static_cast<size_t>(width) * element,
                                      static_cast<size_t>(rows), cudaMemcpyDeviceToHost, stream_),
                    "reading an activation");
    synchronize();
    for (int64_t i = 0; i < rows * width; ++i) {
      if (element == 2) {
        uint16_t h;
        std::memcpy(&h, staged.data() + i * 2, 2);
        values[i] = bf16_to_f32(h);
      } else {
        std::memcpy(values + i, staged.data() + i * 4, 4);
      }
    }
  }

  std::vector<std::vector<int32_t>> read_position_lists(PositionLists which) override {
    const bool selection = which == PositionLists::Selection;
    const int64_t heads = config_.num_heads;
    const bool shared = selection && selected_shared_;
    const int64_t stride = selection ? selected_stride_ : quest_stride_;
    const int64_t count = selection ? selected_count_ : quest_count_;
    std::vector<int32_t> all(static_cast<size_t>((shared ? config_.num_kv_heads : heads) * stride));
    throw_if_failed(cudaMemcpyAsync(all.data(), selection ? ws_.selected.get() : ws_.quest_positions.get(),
                                    all.size() * 4, cudaMemcpyDeviceToHost, stream_),
                    "reading position lists");
    synchronize();
    std::vector<std::vector<int32_t>> out;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t list = shared ? h / group() : h;
      out.emplace_back(all.begin() + list * stride, all.begin() + list * stride + count);
    }
    return out;
  }

  void embed(const DecoderPass& pass) override {
    count_ = pass.count;
    const DeviceMatrix& table = weights_.embed;
    const auto* tokens = ws_.tokens.get<int32_t>();
    const int count = static_cast<int>(count_), hidden = static_cast<int>(config_.hidden_size);
    const HostEmbedding& host_table = weights_.host_embed;
    if (!host_table.empty()) {
      // Row t of the uploaded rows is token t's (no ids: the rows are in pass order).
      throw_if_failed(host_table.quantized
                          ? cuda::launch_embedding_quant(host_table.format, ws_.embedding_rows.get(), nullptr, count,
                                                         hidden, ws_.hidden.get<float>(), stream_)
                          : cuda::launch_embedding(ws_.embedding_rows.get<uint16_t>(), nullptr, count, hidden,
                                                   ws_.hidden.get<float>(), stream_),
                      "launching the embedding");
      return;
    }
    if (table.quantized()) {
      const QuantMatrix& blocks = table.parts.front();
      throw_if_failed(cuda::launch_embedding_quant(blocks.format, blocks.blocks.get(), tokens, count, hidden,
                                                   ws_.hidden.get<float>(), stream_),
                      "launching the embedding");
    } else {
      throw_if_failed(
          cuda::launch_embedding(table.bf16.get<uint16_t>(), tokens, count, hidden, ws_.hidden.get<float>(), stream_),
          "launching the embedding");
    }
  }

  void rms_norm(Activation in, int64_t layer, NormWeight which, Activation out, int64_t first_row) override {
    const float* weight = which == NormWeight::Final ? weights_.final_norm.get<float>()
                          : which == NormWeight::Input
                              ? weights_.layers[static_cast<size_t>(layer)].input_norm.get<float>()
                              : weights_.layers[static_cast<size_t>(layer)].post_norm.get<float>();
    const Rows x = rows_of(in), y = rows_of(out);
    throw_if_failed(cuda::launch_rms_norm(static_cast<const float*>(x.data) + first_row * x.stride, x.stride, weight,
                                          static_cast<int>(count_ - first_row), static_cast<int>(config_.hidden_size),
                                          static_cast<float>(config_.rms_norm_eps), static_cast<uint16_t*>(y.data),
                                          y.stride, stream_),
                    "launching rms_norm");
  }

  void linear(int64_t layer, LayerMatrix matrix, Activation in, Activation out, bool accumulate) override {
    const DeviceLayer& d = weights_.layers[static_cast<size_t>(layer)];
    const int64_t hidden = config_.hidden_size;
    const Rows x = rows_of(in), y = rows_of(out);
    float* target = static_cast<float*>(y.data);
    const float beta = accumulate ? 1.0f : 0.0f;
    switch (matrix) {
      case LayerMatrix::Qkv:
        product(d.qkv, x, target, y.stride, beta);
        break;
      case LayerMatrix::O:
        product(d.o, x, target, y.stride, beta);
        if (d.o_bias.bytes())
          throw_if_failed(cuda::launch_bias_add(target, y.stride, d.o_bias.get<float>(), static_cast<int>(count_),
                                                static_cast<int>(hidden), stream_),
                          "launching bias_add");
        break;
      case LayerMatrix::GateUp:
        gated_in_gate_up_ = false;  // GateUp holds the fp32 sums again
        product(d.gate_up, x, target, y.stride, beta);
        break;
      case LayerMatrix::Down:
        product(d.down, x, target, y.stride, beta);
        break;
    }
  }

  void qkv_rope_append(int64_t layer, const DecoderPass& pass) override {
    const DeviceLayer& d = weights_.layers[static_cast<size_t>(layer)];
    if (pass.count == 1) {
      decode_qkv(*cache_, layer, d, pass.start);
    } else {
      prefill_qkv(*cache_, layer, d, pass.start, pass.count);
    }
  }

  void attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) override {
    if (pass.count == 1) {
      decode(*cache_, layer, pass.positions(), nullptr, keep_scores ? ws_.scores.get<float>() : nullptr);
      return;
    }
    cuda::PrefillAttentionLaunch p;
    p.q = ws_.q_bf16.get<uint16_t>();
    p.keys = static_cast<const uint16_t*>(cache_->keys(layer));
    p.values = static_cast<const uint16_t*>(cache_->values(layer));
    p.head_stride = cache_->capacity() * config_.head_dim;
    p.tokens = static_cast<int>(pass.count);
    p.heads = static_cast<int>(config_.num_heads);
    p.kv_heads = static_cast<int>(config_.num_kv_heads);
    p.head_dim = static_cast<int>(config_.head_dim);
    p.start = pass.start;
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim)));
    p.out = ws_.attention_out.get<uint16_t>();
    p.warps = prefill_warps_;
    if (keep_scores) {
      // A sparse prefill's selection layer: the same attention, its rows' log-sum-exp, then per
      // query head and position before the pass the highest log-softmax weight of the pass.
      if (cache_->shape().fp8) throw RequestError(sparse_prefill_refusal(AttentionMode::Tidal));
      ws_.pass_lse.ensure(static_cast<size_t>(pass.count * config_.num_heads) * 4, "sparse prefill row statistics",
                          stream_);
      p.lse = ws_.pass_lse.get<float>();
      prefill_attention(p);
      cuda::PassScoresLaunch s;
      s.q = p.q;
      s.keys = p.keys;
      s.head_stride = p.head_stride;
      s.lse = p.lse;
      s.tokens = p.tokens;
      s.heads = p.heads;
      s.kv_heads = p.kv_heads;
      s.head_dim = p.head_dim;
      s.candidates = pass.start;
      s.scale = p.scale;
      s.out = ws_.scores.get<float>();
      s.out_stride = ws_.score_stride;
      throw_if_failed(cuda::launch_pass_scores(s, stream_), "launching the sparse prefill pass scores");
      return;
    }
    if (!cache_->shape().fp8) {
      prefill_attention(p);
      return;
    }
    // FP8: the tensor-core kernels read bf16 tiles, so positions [0, end) of a few KV heads at
    // a time are widened into a scratch of at most fp8_prefill_scratch_ bytes (one head at
    // least; the codes are exact in f16, scaled and rounded to bf16 once), each group of heads
    // attended on its own with q and out at its first query head.
    const int64_t end = pass.start + pass.count, d = config_.head_dim, kv_heads = config_.num_kv_heads;
    const int64_t group = config_.num_heads / kv_heads;
    const int64_t head_bytes = 2 * end * d * 2;  // K and V of one head, bf16
    const int64_t per_launch =
        std::clamp<int64_t>(static_cast<int64_t>(fp8_prefill_scratch_) / head_bytes, 1, kv_heads);
    // Given back down to what this pass needs (fewer heads fit at once as the context grows).
    const size_t widened = static_cast<size_t>(per_launch * 2 * cache_->capacity() * d) * 2;
    ws_.prefill_kv.fit(widened, widened, "FP8 K/V widened for prefill attention", stream_);
    const cuda::PrefillAttentionLaunch whole = p;
    for (int64_t first = 0; first < kv_heads; first += per_launch) {
      const int64_t heads = std::min(per_launch, kv_heads - first);
      uint16_t* keys = ws_.prefill_kv.get<uint16_t>();
      uint16_t* values = keys + heads * end * d;
      throw_if_failed(
          cuda::launch_kv_widen_fp8(static_cast<const uint8_t*>(cache_->keys(layer)),
                                    static_cast<const uint8_t*>(cache_->values(layer)), cache_->capacity() * d,
                                    cache_->scales(layer), cache_->capacity(), static_cast<int>(first),
                                    static_cast<int>(heads), end, static_cast<int>(d), keys, values, stream_),
          "widening FP8 K/V");
      p = whole;
      p.keys = keys;
      p.values = values;
      p.head_stride = end * d;
      p.kv_heads = static_cast<int>(heads);
      p.heads = static_cast<int>(heads * group);
      p.row_heads = whole.heads;
      p.q = whole.q + first * group * d;
      p.out = whole.out + first * group * d;
      prefill_attention(p);
    }
  }

  // One launch of prefill attention, split over the keys when it is a short chunk against a
  // long cache.
  void prefill_attention(cuda::PrefillAttentionLaunch& p) {
    p.splits = cuda::prefill_attention_splits(p);  // > 1: a short chunk against a long cache (or lse wanted)
    if (p.splits > 1) {
      ws_.prefill_partials.ensure(cuda::prefill_attention_scratch_bytes(p, p.splits), "prefill attention partials",
                                  stream_);
      p.split_scratch = ws_.prefill_partials.get();
      p.split_scratch_bytes = ws_.prefill_partials.bytes();
    }
    throw_if_failed(cuda::launch_prefill_attention(p, stream_), "launching prefill attention");
  }

  // The top positions of the scores the last attend_dense kept. Lists have a fixed stride
  // (the budget), so a captured graph serves every length of its bucket.
  void select_top_k(const SelectionSpec& s) override {
    cuda::TopKArgs k;
    k.scores = ws_.scores.get<float>();
    k.score_stride = ws_.score_stride;
    selected_shared_ = s.per_kv_head();
    k.rows = static_cast<int>(selected_shared_ ? config_.num_kv_heads : config_.num_heads);
    k.group = selected_shared_ ? group() : 1;
    k.reduce = s.policy == SelectionPolicy::PerKvHeadMax   ? cuda::ScoreReduce::Max
               : s.policy == SelectionPolicy::PerKvHeadSum ? cuda::ScoreReduce::Sum
                                                           : cuda::ScoreReduce::None;
    k.candidates = s.candidates;
    k.k = s.token_budget - 1;
    k.out = ws_.selected.get<int32_t>();
    k.out_stride = s.token_budget;
    k.append_position = s.positions - 1;
    if (s.pass_tokens > 1) {
      // A sparse prefill: only the chosen positions; attend_lists adds the pass's own rows.
      k.k = s.keep;
      k.append_position = -1;
    }
    if (step_bound_) {
      k.candidates = step_bound_ - 1;
      k.append_position = step_bound_ - 1;
      k.candidates_device = step_.get<int64_t>() + 2;
    }
    cuda::select_top_k(k, stream_);
    selected_stride_ = k.out_stride;
    selected_count_ = s.count();
  }

  void quest_pages(int64_t layer, const QuestSpec& quest) override {
    if (!cache_->has_pages()) {
      // A pass whose plan is Quest built them in begin_pass; a caller of the ops alone (the op
      // harness) gets them here: the cache's positions, then this pass's (a layer whose row is
      // not written yet recomputes its page when it writes it).
      cache_->ensure_pages();
      cache_->update_pages(cache_->length(), pass_positions_);
    }
    const int64_t heads = config_.num_heads;
    cuda::QuestScoreArgs s;
    s.query = ws_.qkv.get<float>();
    s.query_type = cuda::ElementType::F32;
    s.num_heads = static_cast<int>(heads);
    s.num_kv_heads = static_cast<int>(config_.num_kv_heads);
    s.head_dim = static_cast<int>(config_.head_dim);
    s.pages = cache_->pages(layer);
    s.num_pages = quest.pages;
    s.bounds = ws_.bounds.get<float>();
    s.bounds_stride = quest.pages;
    cuda::quest_page_scores(s, stream_);
    cuda::TopKArgs k;
    k.scores = ws_.bounds.get<float>();
    k.score_stride = quest.pages;
    k.rows = static_cast<int>(heads);
    k.candidates = quest.pages - 1;
    k.k = quest.page_budget - 1;
    k.out = ws_.pages.get<int32_t>();
    k.out_stride = quest.page_budget;
    k.append_position = quest.pages - 1;
    cuda::select_top_k(k, stream_);
    quest_stride_ = quest.page_budget * kQuestPageTokens;
    quest_count_ = quest.count;
    cuda::expand_pages(ws_.pages.get<int32_t>(), static_cast<int>(heads), quest.page_budget,
                       cuda::top_k_output_count(k), quest.positions, ws_.quest_positions.get<int32_t>(), quest_stride_,
                       stream_);
  }

  void attend_lists(int64_t layer, PositionLists which, const DecoderPass& pass) override {
    if (pass.count > 1) {
      attend_lists_prefill(layer, which, pass);
      return;
    }
    cuda::PositionLists lists;
    if (which == PositionLists::Selection) {
      lists.positions = ws_.selected.get<int32_t>();
      lists.stride = selected_stride_;
      lists.count = selected_count_;
      lists.sharing = selected_shared_ ? cuda::PositionSharing::PerKvHead : cuda::PositionSharing::PerQueryHead;
    } else {
      lists.positions = ws_.quest_positions.get<int32_t>();
      lists.stride = quest_stride_;
      lists.count = quest_count_;
      lists.sharing = cuda::PositionSharing::PerQueryHead;
    }
    decode(*cache_, layer, pass.positions(), &lists, nullptr);
  }

  // A sparse prefill's layer over the last selection: per list (query head, or KV head for the
  // per-KV-head policies) its chosen rows and the pass's own rows gathered into a compact cache
  // of keep + count rows, then the prefill attention over it as over a cache whose first keep
  // positions precede the pass: token t attends to the chosen rows and the pass up to itself.
  void attend_lists_prefill(int64_t layer, PositionLists which, const DecoderPass& pass) {
    if (which != PositionLists::Selection || cache_->shape().fp8)
      throw RequestError(
          sparse_prefill_refusal(which == PositionLists::Selection ? AttentionMode::Tidal : AttentionMode::Quest));
    const int64_t d = config_.head_dim;
    const int64_t keep = selected_count_ - pass.count;  // SelectionSpec::count() = keep + pass tokens
    const int64_t lists = selected_shared_ ? config_.num_kv_heads : config_.num_heads;
    const int64_t rows = keep + pass.count;
    const size_t half = static_cast<size_t>(lists * rows * d) * 2;
    ws_.list_kv.ensure(2 * half, "sparse prefill K/V lists", stream_);
    cuda::GatherListsLaunch g;
    g.keys = static_cast<const uint16_t*>(cache_->keys(layer));
    g.values = static_cast<const uint16_t*>(cache_->values(layer));
    g.head_stride = cache_->capacity() * d;
    g.positions = ws_.selected.get<int32_t>();
    g.list_stride = selected_stride_;
    g.lists = static_cast<int>(lists);
    g.lists_per_kv_head = selected_shared_ ? 1 : static_cast<int>(group());
    g.head_dim = static_cast<int>(d);
    g.keep = keep;
    g.pass_start = pass.start;
    g.pass_tokens = pass.count;
    g.out_keys = ws_.list_kv.get<uint16_t>();
    g.out_values = g.out_keys + half / 2;
    throw_if_failed(cuda::launch_gather_lists(g, stream_), "gathering the sparse prefill K/V lists");
    cuda::PrefillAttentionLaunch p;
    p.q = ws_.q_bf16.get<uint16_t>();
    p.keys = g.out_keys;
    p.values = g.out_values;
    p.head_stride = rows * d;
    p.tokens = static_cast<int>(pass.count);
    p.heads = static_cast<int>(config_.num_heads);
    p.kv_heads = static_cast<int>(lists);
    p.head_dim = static_cast<int>(d);
    p.start = keep;
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    p.out = ws_.attention_out.get<uint16_t>();
    p.warps = prefill_warps_;
    prefill_attention(p);
  }

  void swiglu() override {
    gated_in_gate_up_ = false;  // Gated is in ws_.normed again
    throw_if_failed(
        cuda::launch_swiglu(ws_.gate_up.get<float>(), static_cast<int>(count_),
                            static_cast<int>(config_.intermediate_size), ws_.normed.get<uint16_t>(), stream_),
        "launching swiglu");
  }

  // The output matrix: lm_head, or the embedding when tied (bf16 or in its blocks alike).
  void logits(int64_t rows) override {
    product(weights_.output(), rows_of(Activation::Normed), ws_.logits.get<float>(), config_.vocab_size, 0.0f, rows);
  }

  // A cancellable pass keeps at most one layer queued ahead of the host: before issuing
  // layer l it waits for layer l - 2, so the flag is read while layer l - 1 runs.
  void pace_layer(int64_t layer) override {
    if (!layer_events_[0]) {
      throw_if_failed(cudaEventCreateWithFlags(&layer_events_[0], cudaEventDisableTiming), "creating an event");
      throw_if_failed(cudaEventCreateWithFlags(&layer_events_[1], cudaEventDisableTiming), "creating an event");
    }
    throw_if_failed(cudaEventRecord(layer_events_[layer % 2], stream_), "recording an event");
    if (layer > 0) throw_if_failed(cudaEventSynchronize(layer_events_[(layer - 1) % 2]), "running a prefill layer");
  }

  void abandon_pass() override { throw_if_failed(cudaStreamSynchronize(stream_), "stopping a cancelled prefill pass"); }

  // ---- CudaBackendTools ----
  size_t decode_weight_bytes() const override { return weights_.decode_bytes(); }
  size_t weight_bytes() const override { return weights_.bytes(); }
  size_t host_weight_bytes() const override { return weights_.host_bytes(); }
  void set_fused_swiglu(bool enabled) override { fused_swiglu_ = enabled; }
  bool fused_swiglu() const override { return fused_swiglu_; }
  size_t quantized_parts() const override {
    size_t parts = weights_.embed.parts.size() + weights_.lm_head.parts.size();
    for (const DeviceLayer& d : weights_.layers)
      parts += d.qkv.parts.size() + d.o.parts.size() + d.gate_up.parts.size() + d.down.parts.size();
    return parts;
  }
  void set_graphs(bool enabled) override { graphs_ = enabled; }
  int64_t graph_replays() const override { return step_graph_.replays(); }
  int64_t graph_instantiations() const override { return step_graph_.instantiations(); }
  double last_graph_gpu_ms() override { return step_graph_.last_gpu_ms(); }
  void set_gemv(GemvUse use) override { gemv_ = use; }
  void set_early_launch(bool enabled) override { early_launch_ = enabled && early_launch_possible_; }
  bool early_launch() const override { return early_launch_; }
  void set_prefill_warps(int warps) override { prefill_warps_ = warps == 8 ? 8 : 4; }
  void set_compact_chunk(int64_t positions) override { compact_chunk_ = std::max<int64_t>(positions, 0); }
  void set_fp8_prefill_scratch(size_t bytes) override {
    fp8_prefill_scratch_ = bytes ? bytes : kFp8PrefillScratchBytes;
  }
  void set_dequantized_limit(size_t bytes) override {
    synchronize();  // no product in flight reads the scratch being replaced
    weights_.set_dequantized_limit(bytes);
  }
  size_t dequantized_bytes() const override { return weights_.dequantized.bytes(); }
  size_t workspace_bytes() const override { return ws_.bytes(); }

 private:
  int64_t q_size() const { return config_.num_heads * config_.head_dim; }
  int64_t kv_size() const { return config_.num_kv_heads * config_.head_dim; }
  int64_t qkv_width() const { return q_size() + 2 * kv_size(); }
  int group() const { return static_cast<int>(config_.num_heads / config_.num_kv_heads); }
  KvShape kv_shape() const { return {config_.num_layers, config_.num_kv_heads, config_.head_dim, options_.kv_fp8}; }

  // An activation's rows in device memory: fp32 for what products write, bf16 for what they read.
  struct Rows {
    void* data;
    int64_t stride;  // elements between rows
  };
  Rows rows_of(Activation a) {
    const int64_t hidden = config_.hidden_size;
    switch (a) {
      case Activation::Residual:
        return {ws_.hidden.get(), hidden};
      case Activation::Normed:
        return {ws_.normed.get(), hidden};
      case Activation::Qkv:
        return {ws_.qkv.get(), qkv_width()};
      case Activation::Attention:
        return {ws_.attention_out.get(), q_size()};
      case Activation::GateUp:
        return {ws_.gate_up.get(), 2 * config_.intermediate_size};
      case Activation::Gated:
        // Shares ws_.normed; written by a gate|up product that ends in SwiGLU, it is in
        // ws_.gate_up (the product reads its x from ws_.normed), as bf16.
        if (gated_in_gate_up_) return {ws_.gate_up.get(), config_.intermediate_size};
        return {ws_.normed.get(), config_.intermediate_size};
      case Activation::Logits:
        return {ws_.logits.get(), config_.vocab_size};
    }
    return {nullptr, 0};
  }

  // Activations the products read are bf16 on the device; the rest fp32.
  static bool bf16_activation(Activation a) {
    return a == Activation::Normed || a == Activation::Attention || a == Activation::Gated;
  }

  // y = x W^T (+ beta y) for `tokens` rows (default: the pass's). One token: the GEMV kernel
  // (kernels/gemv.cu) or cuBLAS, per gemv_; Auto takes the GEMV kernel for rows of up to
  // kGemvAutoCols values, the shapes where it measured faster (bench/NOTES.md, "GEMV").
  void product(const uint16_t* w, int64_t rows, int64_t cols, Rows x, float* y, int64_t y_stride, float beta,
               int64_t tokens = 0) {
    if (tokens == 0) tokens = count_;
    const auto* in = static_cast<const uint16_t*>(x.data);
    const bool gemv = gemv_ == GemvUse::Always || (gemv_ == GemvUse::Auto && cols <= kGemvAutoCols);
    if (tokens == 1 && gemv && cols % 8 == 0 && cols <= 100 * 1024) {
      throw_if_failed(cuda::launch_gemv(w, rows, static_cast<int>(cols), in, y, beta, stream_, early_launch_),
                      "launching gemv");
      return;
    }
    blas_->linear(w, rows, cols, in, x.stride, tokens, y, y_stride, beta);
  }

  // The same for a layer or output matrix: bf16, or quantised parts (stacked by rows) read in
  // their blocks by the quantised GEMV for one token, and for more dequantised to bf16 in front
  // of cuBLAS, a part in slices of equal rows no larger than weights_.dequantized (64 MiB at
  // most: DeviceWeights's kDequantizedLimit; thousands of rows at a model's widths).
  void product(const DeviceMatrix& m, Rows x, float* y, int64_t y_stride, float beta, int64_t tokens = 0) {
    if (!m.quantized()) {
      product(m.bf16.get<uint16_t>(), m.rows, m.cols, x, y, y_stride, beta, tokens);
      return;
    }
    if (tokens == 0) tokens = count_;
    const auto* in = static_cast<const uint16_t*>(x.data);
    int64_t row = 0;
    for (const QuantMatrix& part : m.parts) {
      if (tokens == 1) {
        throw_if_failed(
            cuda::launch_gemv_quant_with(gemv_config(part.format), part.format, part.blocks.get(), part.rows,
                                         static_cast<int>(part.cols), in, y + row, beta, stream_, early_launch_),
            "launching the quantised gemv");
      } else {
        const int64_t capacity =
            std::max<int64_t>(1, static_cast<int64_t>(weights_.dequantized.bytes() / 2) / part.cols);
        const int64_t slices = (part.rows + capacity - 1) / capacity;
        const int64_t slice = (part.rows + slices - 1) / slices;
        auto* scratch = weights_.dequantized.get<uint16_t>();
        for (int64_t first = 0; first < part.rows; first += slice) {
          const int64_t rows = std::min(slice, part.rows - first);
          throw_if_failed(cuda::launch_dequantize_bf16(part.format, part.blocks.get(), first, rows,
                                                       static_cast<int>(part.cols), scratch, stream_),
                          "launching the dequantisation");
          blas_->linear(scratch, rows, part.cols, in, x.stride, tokens, y + row + first, y_stride, beta);
        }
      }
      row += part.rows;
    }
  }

  // One token: the gate|up product ending in SwiGLU (one launch); otherwise the two ops.
  void gate_up_swiglu(int64_t layer, Activation in) override {
    const DeviceLayer& d = weights_.layers[static_cast<size_t>(layer)];
    if (fused_gate_up_swiglu(d.gate_up, rows_of(in))) {
      gated_in_gate_up_ = true;
      return;
    }
    DecoderOps::gate_up_swiglu(layer, in);
  }

  // The one-token gate|up product ending in SwiGLU (kernels/gemv.h, gemv_quant.h), writing
  // Activation::Gated into ws_.gate_up: for a bf16 matrix the GEMV kernel would take, or one
  // quantised part (gate and up joined: one format). False where it does not apply (more
  // tokens, cuBLAS, two parts, fusion off); the caller then runs the two ops.
  bool fused_gate_up_swiglu(const DeviceMatrix& m, Rows x) {
    if (count_ != 1 || !fused_swiglu_) return false;
    const int64_t inner = config_.intermediate_size;
    const auto* in = static_cast<const uint16_t*>(x.data);
    auto* out = ws_.gate_up.get<uint16_t>();
    if (!m.quantized()) {
      const bool gemv = gemv_ == GemvUse::Always || (gemv_ == GemvUse::Auto && m.cols <= kGemvAutoCols);
      if (!gemv || m.cols % 8 != 0 || m.rows != 2 * inner) return false;
      throw_if_failed(cuda::launch_gemv_swiglu(m.bf16.get<uint16_t>(), inner, static_cast<int>(m.cols), in, out,
                                               stream_, early_launch_),
                      "launching gemv with SwiGLU");
      return true;
    }
    if (m.parts.size() != 1 || m.parts.front().rows != 2 * inner) return false;
    const QuantMatrix& part = m.parts.front();
    const cudaError_t launched =
        cuda::launch_gemv_quant_swiglu_with(gemv_config(part.format), part.format, part.blocks.get(), inner,
                                            static_cast<int>(part.cols), in, out, stream_, early_launch_);
    if (launched == cudaErrorInvalidValue) {
      (void)cudaGetLastError();
      return false;  // a configuration that cannot pair rows
    }
    throw_if_failed(launched, "launching the quantised gemv with SwiGLU");
    return true;
  }

  // ---- decode graphs ----
  //
  // A replayable step graph reads the step's position, length and selection candidate count
  // from step_ (device), so one captured graph serves every step until its signature changes:
  // another plan, cache allocation or scratch buffer, or the next kGraphBucket of lengths
  // (the attention split plan and the top-k launch are sized for the bucket's end). Replay
  // is one 24-byte upload and one graph launch. Quest steps and steps whose selection keeps
  // every position (length <= budget) have length-dependent launches: they run as plain
  // launches (capturing and updating a graph for every step measured slower than that).
  static constexpr int64_t kGraphBucket = 1024;
  static constexpr size_t kStepScalars = 3;  // step_: position, length, selection candidates

  bool replayable(const AttentionPlan* plan, int64_t positions) const {
    if (!plan || plan->mode == AttentionMode::Full) return true;
    return plan->mode == AttentionMode::Tidal && positions > std::max<int64_t>(plan->token_budget, 1);
  }

  // The step plan a graph is captured for; with the addresses below, StepGraph::can_reuse.
  std::vector<int64_t> step_plan(const CudaKvCache& cache, const AttentionPlan* plan, int64_t bound,
                                 int64_t logit_rows) const {
    std::vector<int64_t> key = {logit_rows,
                                plan ? static_cast<int64_t>(plan->mode) + 1 : 0,
                                plan ? plan->token_budget : 0,
                                plan ? static_cast<int64_t>(plan->selection_policy) : 0,
                                static_cast<int64_t>(gemv_),
                                early_launch_ ? 1 : 0,
                                fused_swiglu_ ? 1 : 0,
                                bound,
                                cache.capacity()};
    if (plan)
      for (LayerAttention role : plan->layers) key.push_back(static_cast<int64_t>(role));
    return key;
  }

  std::vector<const void*> step_bindings(const CudaKvCache& cache) const {
    // The scales and page bounds too: a graph captured before a Quest step built the bounds
    // skipped their update, so it must not be replayed once they exist.
    // Every workspace buffer a step may touch: the activations and logits are reallocated
    // smaller after a long pass (Workspace::prepare).
    return {cache.keys(0),      cache.values(0),           ws_.tokens.get(),        ws_.hidden.get(), ws_.normed.get(),
            ws_.qkv.get(),      ws_.attention_out.get(),   ws_.gate_up.get(),       ws_.logits.get(), ws_.scores.get(),
            ws_.selected.get(), cache.scales(0),           cache.pages(0).key_min,  ws_.q_bf16.get(), ws_.bounds.get(),
            ws_.pages.get(),    ws_.quest_positions.get(), ws_.embedding_rows.get()};
  }

  void replay_step(const DecoderPass& pass, const DecoderRoute& route) {
    const int64_t positions = pass.positions();
    const int64_t bound = (positions + kGraphBucket - 1) / kGraphBucket * kGraphBucket;
    step_host_[0] = pass.start;
    step_host_[1] = positions;
    step_host_[2] = positions - 1;
    throw_if_failed(
        cudaMemcpyAsync(step_.get(), step_host_, kStepScalars * sizeof(int64_t), cudaMemcpyHostToDevice, stream_),
        "uploading the step position");
    std::vector<int64_t> plan = step_plan(*cache_, pass.plan, bound, pass.logit_rows);
    std::vector<const void*> bindings = step_bindings(*cache_);
    if (step_graph_.can_reuse(plan, bindings)) {
      step_graph_.launch(stream_);
      return;
    }
    step_bound_ = bound;
    try {
      step_graph_.capture_and_launch(
          stream_, [&] { run_decoder(config_, *this, pass, route); }, std::move(plan), std::move(bindings));
    } catch (...) {
      step_bound_ = 0;  // later plain launches take their positions from the host again
      throw;
    }
    step_bound_ = 0;
  }

  // Graphs are captured only for plans whose every kernel has run once uncaptured (lazy
  // per-kernel setup then happened outside the capture).
  int plan_key(const AttentionPlan* plan) const { return plan ? static_cast<int>(plan->mode) + 1 : 0; }
  bool plan_seen(const AttentionPlan* plan) const { return seen_plans_ & (1 << plan_key(plan)); }
  void remember_plan(const AttentionPlan* plan) { seen_plans_ |= 1 << plan_key(plan); }

  // Bias, q/k norms, RoPE, the K/V append and the Quest pages of one token: one launch.
  void decode_qkv(CudaKvCache& cache, int64_t layer, const DeviceLayer& d, int64_t position) {
    cuda::DecodeQkvLaunch q;
    q.qkv = ws_.qkv.get<float>();
    q.bias = d.qkv_bias.bytes() ? d.qkv_bias.get<float>() : nullptr;
    q.heads = static_cast<int>(config_.num_heads);
    q.kv_heads = static_cast<int>(config_.num_kv_heads);
    q.head_dim = static_cast<int>(config_.head_dim);
    q.inv_freq = inv_freq_.get<float>();
    q.position = position;
    if (step_bound_) q.position_device = step_.get<int64_t>();
    q.q_norm = d.q_norm.bytes() ? d.q_norm.get<float>() : nullptr;
    q.k_norm = d.k_norm.bytes() ? d.k_norm.get<float>() : nullptr;
    q.eps = static_cast<float>(config_.rms_norm_eps);
    q.keys = cache.keys(layer);
    q.values = cache.values(layer);
    q.head_stride = cache.capacity() * config_.head_dim;
    q.scales = cache.scales(layer);
    q.scale_head_stride = cache.capacity();
    const cuda::QuestPageTable pages = cache.pages(layer);
    q.key_min = static_cast<uint16_t*>(pages.key_min);
    q.key_max = static_cast<uint16_t*>(pages.key_max);
    q.page_head_stride = pages.head_stride;
    throw_if_failed(cuda::launch_decode_qkv(q, stream_), "launching decode_qkv");
  }

  // The same for a chunk of tokens, one kernel per stage.
  void prefill_qkv(CudaKvCache& cache, int64_t l, const DeviceLayer& d, int64_t start, int64_t count) {
    const int64_t heads = config_.num_heads;
    const float eps = static_cast<float>(config_.rms_norm_eps);
    const int t = static_cast<int>(count);
    float* qkv = ws_.qkv.get<float>();
    if (d.qkv_bias.bytes())
      throw_if_failed(
          cuda::launch_bias_add(qkv, qkv_width(), d.qkv_bias.get<float>(), t, static_cast<int>(qkv_width()), stream_),
          "launching bias_add");
    cuda::RopeLaunch rope;
    rope.qkv = qkv;
    rope.stride = qkv_width();
    rope.tokens = t;
    rope.heads = static_cast<int>(heads);
    rope.kv_heads = static_cast<int>(config_.num_kv_heads);
    rope.head_dim = static_cast<int>(config_.head_dim);
    rope.inv_freq = inv_freq_.get<float>();
    rope.start = start;
    rope.q_norm = d.q_norm.bytes() ? d.q_norm.get<float>() : nullptr;
    rope.k_norm = d.k_norm.bytes() ? d.k_norm.get<float>() : nullptr;
    rope.eps = eps;
    rope.q_bf16 = ws_.q_bf16.get<uint16_t>();
    throw_if_failed(cuda::launch_rope(rope, stream_), "launching rope");
    const int64_t head_stride = cache.capacity() * config_.head_dim;
    if (cache.shape().fp8) {
      throw_if_failed(
          cuda::launch_kv_append_fp8(qkv, qkv_width(), t, rope.heads, rope.kv_heads, rope.head_dim,
                                     static_cast<uint8_t*>(cache.keys(l)), static_cast<uint8_t*>(cache.values(l)),
                                     head_stride, cache.scales(l), cache.capacity(), start, stream_),
          "launching kv_append");
    } else {
      throw_if_failed(cuda::launch_kv_append(qkv, qkv_width(), t, rope.heads, rope.kv_heads, rope.head_dim,
                                             static_cast<uint16_t*>(cache.keys(l)),
                                             static_cast<uint16_t*>(cache.values(l)), head_stride, start, stream_),
                      "launching kv_append");
    }
    if (cache.has_pages()) cuda::update_quest_pages(cache.view(l), cache.pages(l), start, start + count, stream_);
  }

  void decode(CudaKvCache& cache, int64_t layer, int64_t positions, const cuda::PositionLists* lists, float* scores) {
    cuda::DecodeAttentionArgs a;
    a.query = ws_.qkv.get<float>();
    a.query_type = cuda::ElementType::F32;
    a.num_heads = static_cast<int>(config_.num_heads);
    a.kv = cache.view(layer);
    a.seq_len = positions;
    if (step_bound_ && !lists) {
      a.seq_len = step_bound_;
      a.seq_len_device = step_.get<int64_t>() + 1;
    }
    a.sparse = lists;
    a.scores = scores;
    a.score_stride = ws_.score_stride;
    a.out = ws_.attention_out.get();
    a.out_type = cuda::ElementType::BF16;
    a.workspace = workspace_.get();
    a.workspace_bytes = workspace_.bytes();
    cuda::decode_attention(a, stream_);
  }

  ModelConfig config_;
  CudaBackendOptions options_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Blas> blas_;
  bool graphs_ = true;
  bool quantized_weights_ = false;
  bool embedding_on_host_ = true;
  bool fused_swiglu_ = true;  // set_fused_swiglu; $TIDAL_CUDA_FUSED_SWIGLU=0 turns it off
  // The one-token Q4_K product's configuration ($TIDAL_CUDA_Q4K_CONFIG); other formats take
  // their defaults.
  cuda::GemvQuantConfig q4k_config_ = cuda::default_gemv_quant_config(cuda::QuantFormat::Q4_K);
  cuda::GemvQuantConfig gemv_config(cuda::QuantFormat format) const {
    return format == cuda::QuantFormat::Q4_K ? q4k_config_ : cuda::default_gemv_quant_config(format);
  }
  // Activation::Gated is in ws_.gate_up (as bf16), written by the fused gate_up_swiglu; until
  // linear(GateUp), swiglu() or a write of GateUp puts it back in ws_.normed.
  bool gated_in_gate_up_ = false;
  // The pass's embedding rows (host_embed) before their upload: pinned, grown to the largest
  // pass; embedding_copied_ marks the end of the last copy from it.
  uint8_t* embedding_staging_ = nullptr;
  size_t embedding_staging_bytes_ = 0;
  cudaEvent_t embedding_copied_ = nullptr;
  GemvUse gemv_ = GemvUse::Auto;
  bool early_launch_possible_ = false;  // compute capability 9.0 or later
  bool early_launch_ = false;
  int prefill_warps_ = 4;
  int64_t compact_chunk_ = 0;  // positions per compaction chunk; 0 = as many as the scratch bound allows
  size_t fp8_prefill_scratch_ = kFp8PrefillScratchBytes;
  cuda::StepGraph step_graph_;
  cudaEvent_t layer_events_[2] = {nullptr, nullptr};  // the last two layers of a cancellable pass
  DeviceBuffer step_;                                 // position, length, candidates of the step (int64)
  int64_t* step_host_ = nullptr;                      // pinned staging for step_
  int64_t step_bound_ = 0;                            // non-zero while capturing a replayable step
  int seen_plans_ = 0;
  std::shared_ptr<KvAccount> account_;

  cuda::DeviceWeights weights_;
  DeviceBuffer inv_freq_, workspace_;
  std::vector<float> inv_freq_host_;
  cuda::Workspace ws_;
  CudaKvCache* cache_ = nullptr;  // the pass in flight
  int64_t count_ = 0;             // its tokens
  int64_t pass_positions_ = 0;    // the cache's length once it is kept
  bool selected_shared_ = false;
  int64_t selected_stride_ = 0, selected_count_ = 0;
  int64_t quest_stride_ = 0, quest_count_ = 0;
  bool traced_shared_ = false;
  int64_t traced_positions_ = 0, traced_stride_ = 0, traced_count_ = 0;
};

}  // namespace

std::string cuda_backend_unavailable_reason(int device) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device (") + cudaGetErrorString(error) + ")";
  }
  if (count == 0) return "no CUDA device is visible";
  if (device < 0 || device >= count) return "device " + std::to_string(device) + " does not exist";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return "the properties of the device cannot be read";
  if (prop.major < 9)
    return std::string(prop.name) + " has compute capability " + std::to_string(prop.major) + "." +
           std::to_string(prop.minor) + "; the cuda backend's kernels need 9.0 (Hopper) or newer";
  return "";
}

std::unique_ptr<Backend> create_cuda_backend(const ModelConfig& config, const ModelWeights& weights,
                                             const CudaBackendOptions& options) {
  auto backend = std::make_unique<CudaBackend>(config, options);
  backend->upload(weights);
  // Small vectors went through plain cudaMemcpy, which need not be finished on return.
  throw_if_failed(cudaDeviceSynchronize(), "uploading the model");
  return backend;
}

std::unique_ptr<Backend> create_random_cuda_backend(const ModelConfig& config, uint64_t seed,
                                                    const CudaBackendOptions& options, const std::string& weights) {
  auto backend = std::make_unique<CudaBackend>(config, options);
  backend->randomize(seed, weights);
  throw_if_failed(cudaDeviceSynchronize(), "building the random model");
  return backend;
}

}  // namespace tidal
