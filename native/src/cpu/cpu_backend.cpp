#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "cpu/attention.h"
#include "cpu/kv_compaction.h"
#include "cpu/linear.h"
#include "cpu/paged_kv_cache.h"
#include "cpu/quest_pages.h"
#include "cpu/rms_norm.h"
#include "cpu/rope.h"
#include "cpu/swiglu.h"
#include "cpu/thread_pool.h"
#include "cpu/token_selection.h"
#include "engine/decoder.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"

namespace tidal {

namespace {

using cpu::kKvPageTokens;
using cpu::KvHeadView;
using cpu::MatrixView;
using cpu::PagedKvCache;
static_assert(kKvPageTokens == kQuestPageTokens, "Quest pages are the cache's pages");

// One matrix of a fused group of linear layers that read the same input.
struct LinearJob {
  const MatrixView* weight;
  const float* bias;  // null or [rows]
  float* out;         // [tokens][out_stride]
  int64_t out_stride;
};

cpu::GroupSelection group_selection(SelectionPolicy policy) {
  switch (policy) {
    case SelectionPolicy::PerKvHeadMax:
      return cpu::GroupSelection::KvHeadMax;
    case SelectionPolicy::PerKvHeadSum:
      return cpu::GroupSelection::KvHeadSum;
    case SelectionPolicy::PerQueryHead:
      break;
  }
  return cpu::GroupSelection::PerQueryHead;
}

template <class T>
T* sized(std::vector<T>& buffer, int64_t count) {
  if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

class CpuBackend final : public Backend, public DecoderOps {
 public:
  CpuBackend(const ModelConfig& config, const ModelWeights& weights, const CpuBackendOptions& options)
      : config_(config),
        weights_(weights),
        pool_(options.threads),
        kv_pool_(std::make_shared<cpu::KvPagePool>(
            cpu::KvPageLayout{config.num_layers, config.num_kv_heads, config.head_dim}, options.max_kv_bytes,
            options.kv_fp8_simulation)),
        inverse_frequencies_(config.rope_frequencies),
        thread_scores_(static_cast<size_t>(pool_.size())),
        thread_indices_(static_cast<size_t>(pool_.size())),
        thread_floats_(static_cast<size_t>(pool_.size())) {
    check_rope_frequencies(config);
  }

  const char* name() const override { return "cpu"; }
  int threads() const override { return pool_.size(); }

  std::unique_ptr<KvCache> create_kv_cache() override { return std::make_unique<PagedKvCache>(kv_pool_); }
  size_t kv_bytes_in_use() const override { return kv_pool_->bytes_in_use(); }
  size_t kv_bytes_peak() const override { return kv_pool_->bytes_peak(); }
  size_t kv_bytes_per_token() const override { return kv_pool_->layout().page_bytes() / kKvPageTokens; }

  SelectionTrace last_selection_trace() const override {
    SelectionTrace trace;
    if (traced_positions_ == 0) return trace;
    const int64_t heads = config_.num_heads;
    trace.positions = traced_positions_;
    trace.scores.assign(selection_scores_.begin(), selection_scores_.begin() + heads * traced_positions_);
    for (int64_t h = 0; h < heads; ++h)
      trace.selected.emplace_back(selected_.begin() + h * selected_stride_,
                                  selected_.begin() + h * selected_stride_ + selected_stride_);
    return trace;
  }

  const char* kv_dtype() const override { return "f32"; }

  void compact(KvCache& cache, const KvRanges& ranges) override {
    cpu::compact_paged_kv(dynamic_cast<PagedKvCache&>(cache), ranges, inverse_frequencies_, pool_);
  }

  void save_kv(const KvCache& cache, KvByteSink& sink) override { dynamic_cast<const PagedKvCache&>(cache).save(sink); }

  void load_kv(KvCache& cache, int64_t length, KvByteSource& source) override {
    dynamic_cast<PagedKvCache&>(cache).load(length, source);
  }

  void forward(KvCache& cache, const int32_t* tokens, int64_t count, const AttentionPlan* plan, LogitsWanted wanted,
               float* logits, ForwardStats* stats, const std::atomic<bool>* cancel) override {
    if (count <= 0) return;
    DecoderPass pass;
    pass.start = cache.length();
    pass.count = count;
    pass.plan = count == 1 || (plan && plan->sparse_prefill) ? plan : nullptr;
    pass.logit_rows = wanted == LogitsWanted::All ? count : wanted == LogitsWanted::Last ? 1 : 0;
    pass.cancel = count > 1 ? cancel : nullptr;
    const DecoderRoute route = route_pass(config_, pass);
    begin_pass(cache, tokens, pass);
    if (logits) logits_ = logits;
    try {
      run_decoder(config_, *this, pass, route);
    } catch (...) {
      end_pass(false);
      throw;
    }
    end_pass(true);
    // The trace shows decode steps; a sparse prefill's selection leaves none.
    if (route.selects) traced_positions_ = count == 1 ? pass.positions() : 0;
    add_stats(stats, route.stats);
  }

  DecoderOps& decoder_ops() override { return *this; }
  std::string sparse_prefill_refusal(const AttentionPlan&) const override { return {}; }

  // ---- DecoderOps ----
  void embed(const DecoderPass& pass) override;
  void rms_norm(Activation in, int64_t layer, NormWeight weight, Activation out, int64_t first_row) override;
  void linear(int64_t layer, LayerMatrix matrix, Activation in, Activation out, bool accumulate) override;
  void qkv_rope_append(int64_t layer, const DecoderPass& pass) override;
  void attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) override;
  void select_top_k(const SelectionSpec& selection) override;
  void quest_pages(int64_t layer, const QuestSpec& quest) override;
  void attend_lists(int64_t layer, PositionLists lists, const DecoderPass& pass) override;
  void swiglu() override;
  void logits(int64_t rows) override;

  void begin_pass(KvCache& cache_base, const int32_t* tokens, const DecoderPass& pass) override {
    auto& cache = dynamic_cast<PagedKvCache&>(cache_base);
    if (pass.start != cache.length() || pass.count <= 0)
      throw std::logic_error("a pass starts at the cache's length and has tokens");
    cache.reserve(pass.positions());
    cache_ = &cache;
    tokens_ = tokens;
    pass_positions_ = pass.positions();
    logits_ = sized(pass_logits_, std::max<int64_t>(pass.logit_rows, 1) * config_.vocab_size);
  }

  void end_pass(bool keep) override {
    if (keep) {
      cache_->commit(pass_positions_);
    } else {
      cache_->rollback();
    }
  }

  void synchronize() override {}
  void write_activation(Activation activation, int64_t rows, const float* values) override;
  void read_activation(Activation activation, int64_t rows, float* values) override;
  std::vector<std::vector<int32_t>> read_position_lists(PositionLists lists) override;

 private:
  // The buffers of an activation's rows, side by side: (first element, width) each, the
  // distance between rows being the width.
  std::vector<std::pair<float*, int64_t>> activation_parts(Activation a);
  void run_linears(const std::vector<LinearJob>& jobs, const float* x, int64_t x_stride, int64_t tokens);
  // An activation's rows: its first element and the distance between rows.
  float* rows_of(Activation a, int64_t* stride);

  // A share of the attention work: `heads` consecutive query heads of one GQA group
  // (starting at `first_head`) for one token.
  struct HeadTask {
    int64_t token, kv_head, first_head, heads;
  };
  struct HeadTasks {
    int64_t count = 0, heads_per_task = 1, tasks_per_group = 1;
    HeadTask task(int64_t index, int64_t kv_heads, int64_t group) const;
  };
  HeadTasks head_tasks(int64_t tokens) const;
  // attend_dense with keep_scores for a pass of several tokens (sparse prefill): the same
  // attention, and per query head, each position before the pass gets the highest log-softmax
  // weight the pass's tokens give it.
  void attend_keeping_pass_scores(int64_t layer, const DecoderPass& pass);

  int64_t q_size() const { return config_.num_heads * config_.head_dim; }
  int64_t kv_size() const { return config_.num_kv_heads * config_.head_dim; }
  int64_t group_size() const { return config_.num_heads / config_.num_kv_heads; }
  float attention_scale() const { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim))); }

  ModelConfig config_;
  const ModelWeights& weights_;
  cpu::ThreadPool pool_;
  std::shared_ptr<cpu::KvPagePool> kv_pool_;
  std::vector<float> inverse_frequencies_;

  // The pass in flight (set by forward()).
  PagedKvCache* cache_ = nullptr;
  const int32_t* tokens_ = nullptr;
  float* logits_ = nullptr;
  int64_t count_ = 0;
  int64_t pass_positions_ = 0;
  std::vector<float> pass_logits_;  // logits of a pass begun without a caller's buffer

  // Activations of the tokens in flight, row-major [tokens][width]. Gated is gate_ (swiglu
  // writes over the gate products); accumulating products go through projected_.
  std::vector<float> hidden_, normed_, q_, k_, v_, attention_out_, projected_, gate_, up_;
  std::vector<float> rope_cos_, rope_sin_;
  // Per-thread scratch: attention scores, index lists, floats.
  std::vector<std::vector<float>> thread_scores_;
  std::vector<std::vector<int32_t>> thread_indices_;
  std::vector<std::vector<float>> thread_floats_;
  // Tidal selection of the current decode step: scores [heads][positions] of the last
  // selection layer, and per query head its positions [heads][selected_stride_].
  std::vector<float> selection_scores_;
  std::vector<int32_t> selected_;
  int64_t selected_stride_ = 0;
  bool selected_shared_by_group_ = false;  // one list per KV head (the per-KV-head policies)
  int64_t traced_positions_ = 0;           // positions of the last selection made, 0 = none yet
  // Quest lists of the current layer: per query head [heads][quest_stride_] positions.
  std::vector<int32_t> quest_positions_;
  int64_t quest_stride_ = 0, quest_count_ = 0;  // count: chosen positions, before the pass's own
};

void CpuBackend::run_linears(const std::vector<LinearJob>& jobs, const float* x, int64_t x_stride, int64_t tokens) {
  // Work units of `unit_rows` rows; more rows per unit when many tokens share each row.
  const int64_t unit_rows = tokens == 1 ? 16 : 64;
  std::vector<int64_t> first_unit(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j)
    first_unit[j + 1] = first_unit[j] + (jobs[j].weight->rows + unit_rows - 1) / unit_rows;
  pool_.parallel_for(first_unit.back(), [&](int64_t begin, int64_t end, int) {
    size_t j = 0;
    for (int64_t unit = begin; unit < end; ++unit) {
      while (unit >= first_unit[j + 1]) ++j;
      const LinearJob& job = jobs[j];
      const int64_t row_begin = (unit - first_unit[j]) * unit_rows;
      const int64_t row_end = std::min(job.weight->rows, row_begin + unit_rows);
      cpu::linear_rows(*job.weight, job.bias, x, x_stride, tokens, job.out, job.out_stride, row_begin, row_end);
    }
  });
}

float* CpuBackend::rows_of(Activation a, int64_t* stride) {
  switch (a) {
    case Activation::Residual:
      *stride = config_.hidden_size;
      return hidden_.data();
    case Activation::Normed:
      *stride = config_.hidden_size;
      return normed_.data();
    case Activation::Attention:
      *stride = q_size();
      return attention_out_.data();
    case Activation::Gated:
      *stride = config_.intermediate_size;
      return gate_.data();
    case Activation::Qkv:
    case Activation::GateUp:
    case Activation::Logits:
      break;  // several matrices, or the caller's buffer
  }
  throw std::logic_error("the cpu backend has no single row layout for this activation");
}

std::vector<std::pair<float*, int64_t>> CpuBackend::activation_parts(Activation a) {
  switch (a) {
    case Activation::Qkv:
      return {{q_.data(), q_size()}, {k_.data(), kv_size()}, {v_.data(), kv_size()}};
    case Activation::GateUp:
      return {{gate_.data(), config_.intermediate_size}, {up_.data(), config_.intermediate_size}};
    case Activation::Logits:
      return {{logits_, config_.vocab_size}};
    default: {
      int64_t stride = 0;
      float* first = rows_of(a, &stride);
      return {{first, stride}};
    }
  }
}

void CpuBackend::write_activation(Activation a, int64_t rows, const float* values) {
  if (rows > count_ && a != Activation::Logits) throw std::logic_error("more rows than the pass has tokens");
  const int64_t width = activation_width(config_, a);
  for (int64_t t = 0; t < rows; ++t) {
    const float* in = values + t * width;
    for (const auto& [first, part] : activation_parts(a)) {
      std::copy(in, in + part, first + t * part);
      in += part;
    }
  }
}

void CpuBackend::read_activation(Activation a, int64_t rows, float* values) {
  if (rows > count_ && a != Activation::Logits) throw std::logic_error("more rows than the pass has tokens");
  const int64_t width = activation_width(config_, a);
  for (int64_t t = 0; t < rows; ++t) {
    float* out = values + t * width;
    for (const auto& [first, part] : activation_parts(a)) {
      std::copy(first + t * part, first + (t + 1) * part, out);
      out += part;
    }
  }
}

std::vector<std::vector<int32_t>> CpuBackend::read_position_lists(PositionLists which) {
  const bool selection = which == PositionLists::Selection;
  const int32_t* lists = selection ? selected_.data() : quest_positions_.data();
  const int64_t stride = selection ? selected_stride_ : quest_stride_;
  const int64_t count = selection ? selected_stride_ : quest_count_;
  std::vector<std::vector<int32_t>> out;
  for (int64_t h = 0; h < config_.num_heads; ++h) out.emplace_back(lists + h * stride, lists + h * stride + count);
  return out;
}

// Sizes the activations for the pass and reads the embedding rows; the RoPE angles of the
// pass's positions are computed here too, once for every layer.
void CpuBackend::embed(const DecoderPass& pass) {
  const int64_t count = pass.count, hidden = config_.hidden_size, inner = config_.intermediate_size;
  const int64_t half = config_.head_dim / 2;
  count_ = count;
  sized(hidden_, count * hidden);
  sized(normed_, count * hidden);
  sized(q_, count * q_size());
  sized(k_, count * kv_size());
  sized(v_, count * kv_size());
  sized(attention_out_, count * q_size());
  sized(projected_, count * hidden);
  sized(gate_, count * inner);
  sized(up_, count * inner);
  sized(rope_cos_, count * half);
  sized(rope_sin_, count * half);
  pool_.parallel_for(
      count,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; ++t) {
          cpu::load_matrix_row(weights_.embed_tokens, tokens_[t], hidden_.data() + t * hidden);
          cpu::rope_angles(inverse_frequencies_.data(), half, pass.start + t, rope_cos_.data() + t * half,
                           rope_sin_.data() + t * half);
        }
      },
      4);
}

void CpuBackend::rms_norm(Activation in, int64_t layer, NormWeight which, Activation out, int64_t first_row) {
  const std::vector<float>& weight = which == NormWeight::Final ? weights_.final_norm
                                     : which == NormWeight::Input
                                         ? weights_.layers[static_cast<size_t>(layer)].input_norm
                                         : weights_.layers[static_cast<size_t>(layer)].post_attention_norm;
  int64_t in_stride = 0, out_stride = 0;
  const float* x = rows_of(in, &in_stride) + first_row * in_stride;
  float* y = rows_of(out, &out_stride);
  const int64_t width = static_cast<int64_t>(weight.size());
  const float eps = static_cast<float>(config_.rms_norm_eps);
  pool_.parallel_for(
      count_ - first_row,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; ++t)
          cpu::rms_norm(x + t * in_stride, weight.data(), width, eps, y + t * out_stride);
      },
      8);
}

void CpuBackend::linear(int64_t layer_index, LayerMatrix matrix, Activation in, Activation out, bool accumulate) {
  const LayerWeights& layer = weights_.layers[static_cast<size_t>(layer_index)];
  const int64_t hidden = config_.hidden_size, inner = config_.intermediate_size;
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  int64_t in_stride = 0;
  const float* x = rows_of(in, &in_stride);
  std::vector<LinearJob> jobs;
  switch (matrix) {
    case LayerMatrix::Qkv:
      // Their biases are added by qkv_rope_append.
      jobs = {{&layer.q_proj, nullptr, q_.data(), q_size()},
              {&layer.k_proj, nullptr, k_.data(), kv_size()},
              {&layer.v_proj, nullptr, v_.data(), kv_size()}};
      break;
    case LayerMatrix::GateUp:
      jobs = {{&layer.gate_proj, nullptr, gate_.data(), inner}, {&layer.up_proj, nullptr, up_.data(), inner}};
      break;
    case LayerMatrix::O:
    case LayerMatrix::Down: {
      int64_t out_stride = 0;
      float* y = accumulate ? projected_.data() : rows_of(out, &out_stride);
      const MatrixView& w = matrix == LayerMatrix::O ? layer.o_proj : layer.down_proj;
      jobs = {{&w, matrix == LayerMatrix::O ? bias(layer.o_bias) : nullptr, y, hidden}};
      break;
    }
  }
  run_linears(jobs, x, in_stride, count_);
  if (!accumulate) return;
  // The residual add: out += projected (the product's rows are `hidden` wide).
  int64_t out_stride = 0;
  float* y = rows_of(out, &out_stride);
  for (int64_t i = 0; i < count_ * hidden; ++i) y[i] += projected_[static_cast<size_t>(i)];
}

// The q|k|v biases, Qwen3's per-head RMSNorm of q and k, then RoPE, then the new keys and
// values go into the cache (one thread per KV head, positions in order, so page bounds grow
// in order).
void CpuBackend::qkv_rope_append(int64_t layer_index, const DecoderPass& pass) {
  const LayerWeights& layer = weights_.layers[static_cast<size_t>(layer_index)];
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, head_dim = config_.head_dim;
  const int64_t half = head_dim / 2, count = pass.count;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const bool qk_norm = !layer.q_norm.empty();
  auto add_bias = [&](float* vec, const std::vector<float>& bias, int64_t offset) {
    if (bias.empty()) return;
    for (int64_t j = 0; j < head_dim; ++j) vec[j] += bias[static_cast<size_t>(offset + j)];
  };
  // Work items: per token, its query heads, then its KV heads (key and value).
  pool_.parallel_for(
      count * (heads + kv_heads),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t t = i / (heads + kv_heads);
          const int64_t h = i % (heads + kv_heads);
          const float* cos_values = rope_cos_.data() + t * half;
          const float* sin_values = rope_sin_.data() + t * half;
          const bool query = h < heads;
          const int64_t offset = (query ? h : h - heads) * head_dim;
          float* vec = query ? q_.data() + t * q_size() + offset : k_.data() + t * kv_size() + offset;
          add_bias(vec, query ? layer.q_bias : layer.k_bias, offset);
          if (!query) add_bias(v_.data() + t * kv_size() + offset, layer.v_bias, offset);
          if (qk_norm) cpu::rms_norm(vec, query ? layer.q_norm.data() : layer.k_norm.data(), head_dim, eps, vec);
          cpu::apply_rope(vec, cos_values, sin_values, half);
        }
      },
      16);
  pool_.parallel_for(kv_heads, [&](int64_t begin, int64_t end, int) {
    for (int64_t h = begin; h < end; ++h)
      for (int64_t t = 0; t < count; ++t)
        cache_->write(layer_index, h, pass.start + t, k_.data() + t * kv_size() + h * head_dim,
                      v_.data() + t * kv_size() + h * head_dim);
  });
}

// Attention work is split into tasks of several query heads of one GQA group, so each K/V
// row is read once for all of them; groups are split further only when there would be
// fewer tasks than threads. The split changes no result (see attend_grouped).
CpuBackend::HeadTasks CpuBackend::head_tasks(int64_t tokens) const {
  HeadTasks tasks;
  const int64_t group = group_size(), kv_heads = config_.num_kv_heads;
  const int64_t splits = std::clamp<int64_t>((pool_.size() + tokens * kv_heads - 1) / (tokens * kv_heads), 1, group);
  tasks.heads_per_task = (group + splits - 1) / splits;
  tasks.tasks_per_group = (group + tasks.heads_per_task - 1) / tasks.heads_per_task;
  tasks.count = tokens * kv_heads * tasks.tasks_per_group;
  return tasks;
}

CpuBackend::HeadTask CpuBackend::HeadTasks::task(int64_t index, int64_t kv_heads, int64_t group) const {
  HeadTask task;
  task.token = index / (kv_heads * tasks_per_group);
  const int64_t rest = index % (kv_heads * tasks_per_group);
  task.kv_head = rest / tasks_per_group;
  const int64_t first_in_group = (rest % tasks_per_group) * heads_per_task;
  task.first_head = task.kv_head * group + first_in_group;
  task.heads = std::min(heads_per_task, group - first_in_group);
  return task;
}

// Causal attention of tokens [start, start + count): token t sees positions [0, start + t].
// With keep_scores, each head's scaled scores (one token) or its tokens' highest log-softmax
// weights (keep_pass_scores) stay in selection_scores_.
void CpuBackend::attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) {
  if (keep_scores && pass.count > 1) {
    attend_keeping_pass_scores(layer, pass);
    return;
  }
  const int64_t head_dim = config_.head_dim, positions = pass.positions();
  const float scale = attention_scale();
  const HeadTasks tasks = head_tasks(pass.count);
  float* kept_scores = keep_scores ? sized(selection_scores_, config_.num_heads * positions) : nullptr;
  pool_.parallel_for(tasks.count, [&](int64_t begin, int64_t end, int thread) {
    for (int64_t i = begin; i < end; ++i) {
      const HeadTask task = tasks.task(i, config_.num_kv_heads, group_size());
      const int64_t visible = pass.start + task.token + 1;
      const KvHeadView kv = cache_->head_view(layer, task.kv_head);
      float* scores = sized(thread_scores_[static_cast<size_t>(thread)], task.heads * visible);
      const int64_t offset = task.token * q_size() + task.first_head * head_dim;
      if (!kept_scores) {
        cpu::attend_grouped(q_.data() + offset, task.heads, kv, nullptr, visible, scale, scores,
                            attention_out_.data() + offset);
        continue;
      }
      float* kept = kept_scores + task.first_head * positions;
      cpu::attention_scores_grouped(q_.data() + offset, task.heads, kv, nullptr, positions, scale, kept, positions);
      std::memcpy(scores, kept, static_cast<size_t>(task.heads * positions) * sizeof(float));
      cpu::attention_weighted_values_grouped(scores, positions, task.heads, kv, nullptr, positions,
                                             attention_out_.data() + offset);
    }
  });
}

// The scores a sparse prefill pass selects by: for query head h and position j before the
// pass, max over the pass's tokens t of (s_tj - log sum_i exp s_ti), s_t being token t's
// scaled scores over the positions it sees. For one token this ranks as its scores do. The
// same scores then give token t's attention (the one-head form of attend_dense's grouped
// one, so the same bits), so they are computed once.
void CpuBackend::attend_keeping_pass_scores(int64_t layer, const DecoderPass& pass) {
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim, group = group_size();
  const int64_t positions = pass.positions(), start = pass.start;
  const float scale = attention_scale();
  float* kept = sized(selection_scores_, heads * positions);
  pool_.parallel_for(heads, [&](int64_t begin, int64_t end, int thread) {
    float* scores = sized(thread_scores_[static_cast<size_t>(thread)], positions);
    for (int64_t h = begin; h < end; ++h) {
      float* row = kept + h * positions;
      std::fill(row, row + positions, -std::numeric_limits<float>::infinity());
      const KvHeadView kv = cache_->head_view(layer, h / group);
      for (int64_t t = 0; t < pass.count; ++t) {
        const int64_t visible = start + t + 1, offset = t * q_size() + h * head_dim;
        cpu::attention_scores(q_.data() + offset, kv, nullptr, visible, scale, scores);
        float top = scores[0];
        for (int64_t j = 1; j < visible; ++j) top = std::max(top, scores[j]);
        double sum = 0.0;
        for (int64_t j = 0; j < visible; ++j) sum += std::exp(static_cast<double>(scores[j] - top));
        const float log_total = top + static_cast<float>(std::log(sum));
        for (int64_t j = 0; j < start; ++j) row[j] = std::max(row[j], scores[j] - log_total);
        cpu::attention_weighted_values(scores, kv, nullptr, visible, attention_out_.data() + offset);
      }
    }
  });
}

// A tidal selection layer's choice from the scores attend_dense kept: per query head (or per
// GQA group, reducing its heads' scores) the top `keep` positions before the pass, then the
// pass's own tokens (a decode step's current token last).
void CpuBackend::select_top_k(const SelectionSpec& s) {
  const int64_t heads = config_.num_heads, group = group_size(), positions = s.positions;
  const float* all_scores = selection_scores_.data();
  selected_stride_ = s.count();
  selected_shared_by_group_ = s.per_kv_head();
  int32_t* selected = sized(selected_, heads * selected_stride_);
  const cpu::GroupSelection reduce = group_selection(s.policy);
  const bool per_head = !s.per_kv_head();
  const int64_t selectors = per_head ? heads : config_.num_kv_heads;
  pool_.parallel_for(selectors, [&](int64_t begin, int64_t end, int thread) {
    int32_t* scratch = sized(thread_indices_[static_cast<size_t>(thread)], std::max<int64_t>(s.candidates, 1));
    float* combined = sized(thread_floats_[static_cast<size_t>(thread)], std::max<int64_t>(s.candidates, 1));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t first_head = per_head ? i : i * group;
      int32_t* out = selected + first_head * selected_stride_;
      const float* ranked = all_scores + first_head * positions;
      if (!per_head) {
        cpu::reduce_group_scores(all_scores, positions, first_head, group, s.candidates, reduce, combined);
        ranked = combined;
      }
      cpu::select_top_positions(ranked, s.candidates, s.keep, out, scratch);
      for (int64_t t = 0; t < s.pass_tokens; ++t)  // the pass's own tokens, always attended
        out[s.keep + t] = static_cast<int32_t>(s.candidates + t);
      if (!per_head)
        for (int64_t g = 1; g < group; ++g)
          std::copy(out, out + selected_stride_, selected + (first_head + g) * selected_stride_);
    }
  });
}

// Quest: per query head, rank pages by their key upper bound (a prefill pass: the highest of
// its tokens') and list the positions of the best page_budget pages (the last page always
// among them), then a prefill pass's own tokens.
void CpuBackend::quest_pages(int64_t layer, const QuestSpec& quest) {
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim, group = group_size();
  const int64_t pages = quest.pages, positions = quest.positions;
  const int64_t queries = std::max<int64_t>(quest.pass_tokens, 1);
  quest_stride_ = quest.page_budget * kKvPageTokens + quest.pass_tokens;
  quest_count_ = quest.count;
  int32_t* lists = sized(quest_positions_, heads * quest_stride_);
  pool_.parallel_for(heads, [&](int64_t begin, int64_t end, int thread) {
    // Per-thread layout: indices [pages chosen | page scratch], floats [bounds].
    int32_t* chosen = sized(thread_indices_[static_cast<size_t>(thread)], 2 * pages);
    int32_t* scratch = chosen + pages;
    float* bounds = sized(thread_floats_[static_cast<size_t>(thread)], pages);
    for (int64_t h = begin; h < end; ++h) {
      const int64_t kv_head = h / group;
      for (int64_t p = 0; p < pages; ++p) {
        const float* key_min = cache_->key_min(p, layer, kv_head);
        const float* key_max = cache_->key_max(p, layer, kv_head);
        float bound = cpu::page_score_upper_bound(q_.data() + h * head_dim, key_min, key_max, head_dim);
        for (int64_t t = 1; t < queries; ++t)
          bound = std::max(
              bound, cpu::page_score_upper_bound(q_.data() + t * q_size() + h * head_dim, key_min, key_max, head_dim));
        bounds[p] = bound;
      }
      const int64_t chosen_count = cpu::select_pages(bounds, pages, quest.page_budget, chosen, scratch);
      int32_t* list = lists + h * quest_stride_;
      int64_t listed = 0;
      for (int64_t c = 0; c < chosen_count; ++c) {
        const int64_t first = int64_t{chosen[c]} * kKvPageTokens;
        const int64_t last = std::min(positions, first + kKvPageTokens);
        for (int64_t pos = first; pos < last; ++pos) list[listed++] = static_cast<int32_t>(pos);
      }
      for (int64_t t = 0; t < quest.pass_tokens; ++t) list[listed++] = static_cast<int32_t>(positions + t);
    }
  });
}

// Attention over position lists: a decoding token over each query head's list (the heads of a
// group together when they share one); token t of a longer pass over the chosen positions of
// its head's list and the pass's tokens up to itself.
void CpuBackend::attend_lists(int64_t layer, PositionLists which, const DecoderPass& pass) {
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim, group = group_size();
  const float scale = attention_scale();
  const bool selection = which == PositionLists::Selection;
  const int32_t* lists = selection ? selected_.data() : quest_positions_.data();
  const int64_t stride = selection ? selected_stride_ : quest_stride_;
  const int64_t count = selection ? selected_stride_ : quest_count_;
  if (pass.count > 1) {
    // A selection list ends with the pass's tokens; a Quest list holds quest_count_ chosen first.
    const int64_t chosen = selection ? selected_stride_ - pass.count : quest_count_;
    pool_.parallel_for(pass.count * heads, [&](int64_t begin, int64_t end, int thread) {
      float* scores = sized(thread_scores_[static_cast<size_t>(thread)], chosen + pass.count);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = i / heads, h = i % heads;
        const int64_t offset = t * q_size() + h * head_dim;
        cpu::attend(q_.data() + offset, cache_->head_view(layer, h / group), lists + h * stride, chosen + t + 1, scale,
                    scores, attention_out_.data() + offset);
      }
    });
    return;
  }
  if (selection && selected_shared_by_group_) {
    const HeadTasks tasks = head_tasks(1);
    pool_.parallel_for(tasks.count, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t i = begin; i < end; ++i) {
        const HeadTask task = tasks.task(i, config_.num_kv_heads, group);
        float* scores = sized(thread_scores_[static_cast<size_t>(thread)], task.heads * count);
        cpu::attend_grouped(q_.data() + task.first_head * head_dim, task.heads, cache_->head_view(layer, task.kv_head),
                            lists + task.first_head * stride, count, scale, scores,
                            attention_out_.data() + task.first_head * head_dim);
      }
    });
    return;
  }
  pool_.parallel_for(heads, [&](int64_t begin, int64_t end, int thread) {
    float* scores = sized(thread_scores_[static_cast<size_t>(thread)], count);
    for (int64_t h = begin; h < end; ++h)
      cpu::attend(q_.data() + h * head_dim, cache_->head_view(layer, h / group), lists + h * stride, count, scale,
                  scores, attention_out_.data() + h * head_dim);
  });
}

void CpuBackend::swiglu() {
  const int64_t inner = config_.intermediate_size;
  pool_.parallel_for(
      count_,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; ++t)
          cpu::swiglu(gate_.data() + t * inner, up_.data() + t * inner, inner, gate_.data() + t * inner);
      },
      4);
}

void CpuBackend::logits(int64_t rows) {
  run_linears({{&weights_.lm_head, nullptr, logits_, config_.vocab_size}}, normed_.data(), config_.hidden_size, rows);
}

}  // namespace

std::unique_ptr<Backend> create_cpu_backend(const ModelConfig& config, const ModelWeights& weights,
                                            const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(config, weights, options);
}

}  // namespace tidal
