#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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
#include "tidal/error.h"

namespace tidal {

namespace {

using cpu::KvHeadView;
using cpu::kKvPageTokens;
using cpu::MatrixView;
using cpu::PagedKvCache;

// One matrix of a fused group of linear layers that read the same input.
struct LinearJob {
  const MatrixView* weight;
  const float* bias;  // null or [rows]
  float* out;         // [tokens][out_stride]
  int64_t out_stride;
};

cpu::GroupSelection group_selection(SelectionPolicy policy) {
  switch (policy) {
    case SelectionPolicy::PerKvHeadMax: return cpu::GroupSelection::KvHeadMax;
    case SelectionPolicy::PerKvHeadSum: return cpu::GroupSelection::KvHeadSum;
    case SelectionPolicy::PerQueryHead: break;
  }
  return cpu::GroupSelection::PerQueryHead;
}

cpu::Llama3RopeScaling rope_scaling(const ModelConfig& config) {
  cpu::Llama3RopeScaling scaling;
  scaling.enabled = config.rope_scaling.type == "llama3";
  scaling.factor = config.rope_scaling.factor;
  scaling.low_freq_factor = config.rope_scaling.low_freq_factor;
  scaling.high_freq_factor = config.rope_scaling.high_freq_factor;
  scaling.original_max_position_embeddings =
      static_cast<double>(config.rope_scaling.original_max_position_embeddings);
  return scaling;
}

template <class T>
T* sized(std::vector<T>& buffer, int64_t count) {
  if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const ModelConfig& config, const ModelWeights& weights, const CpuBackendOptions& options)
      : config_(config),
        weights_(weights),
        pool_(options.threads),
        kv_pool_(std::make_shared<cpu::KvPagePool>(
            cpu::KvPageLayout{config.num_layers, config.num_kv_heads, config.head_dim}, options.max_kv_bytes)),
        inverse_frequencies_(cpu::rope_inverse_frequencies(config.head_dim, config.rope_theta, rope_scaling(config))),
        thread_scores_(static_cast<size_t>(pool_.size())),
        thread_indices_(static_cast<size_t>(pool_.size())),
        thread_floats_(static_cast<size_t>(pool_.size())),
        thread_attended_(static_cast<size_t>(pool_.size())) {}

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

  void save_kv(const KvCache& cache, KvByteSink& sink) override {
    dynamic_cast<const PagedKvCache&>(cache).save(sink);
  }

  void load_kv(KvCache& cache, int64_t length, KvByteSource& source) override {
    dynamic_cast<PagedKvCache&>(cache).load(length, source);
  }

  void forward(KvCache& cache_base, const int32_t* tokens, int64_t count, const AttentionPlan* plan,
               LogitsWanted wanted, float* logits, ForwardStats* stats, const std::atomic<bool>* cancel) override {
    if (count <= 0) return;
    auto& cache = dynamic_cast<PagedKvCache&>(cache_base);
    const int64_t start = cache.length();
    cache.reserve(start + count);
    try {
      run(cache, tokens, count, count == 1 ? plan : nullptr, wanted, logits, stats, count > 1 ? cancel : nullptr);
    } catch (...) {
      cache.rollback();
      throw;
    }
    cache.commit(start + count);
  }

 private:
  void run(PagedKvCache& cache, const int32_t* tokens, int64_t count, const AttentionPlan* plan,
           LogitsWanted wanted, float* logits, ForwardStats* stats, const std::atomic<bool>* cancel);
  void run_linears(const std::vector<LinearJob>& jobs, const float* x, int64_t x_stride, int64_t tokens);
  void rms_norm_rows(const float* x, const std::vector<float>& weight, int64_t tokens, float* out);
  void project_qkv(const LayerWeights& layer, int64_t count);
  void position_encode_and_store(PagedKvCache& cache, int64_t layer_index, const LayerWeights& layer, int64_t start,
                                 int64_t count);
  void attention_dense(PagedKvCache& cache, int64_t layer, int64_t start, int64_t count);
  void attention_select(PagedKvCache& cache, int64_t layer, int64_t positions, const AttentionPlan& plan);
  void attention_selected(PagedKvCache& cache, int64_t layer);
  void attention_quest(PagedKvCache& cache, int64_t layer, int64_t positions, const AttentionPlan& plan);

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

  int64_t q_size() const { return config_.num_heads * config_.head_dim; }
  int64_t kv_size() const { return config_.num_kv_heads * config_.head_dim; }
  int64_t group_size() const { return config_.num_heads / config_.num_kv_heads; }
  float attention_scale() const { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim))); }

  ModelConfig config_;
  const ModelWeights& weights_;
  cpu::ThreadPool pool_;
  std::shared_ptr<cpu::KvPagePool> kv_pool_;
  std::vector<float> inverse_frequencies_;

  // Activations of the tokens in flight, row-major [tokens][width].
  std::vector<float> hidden_, normed_, q_, k_, v_, attention_out_, projected_, gate_, up_;
  std::vector<float> rope_cos_, rope_sin_;
  // Per-thread scratch: attention scores, index lists, floats.
  std::vector<std::vector<float>> thread_scores_;
  std::vector<std::vector<int32_t>> thread_indices_;
  std::vector<std::vector<float>> thread_floats_;
  std::vector<int64_t> thread_attended_;
  // Tidal selection of the current decode step: scores [heads][positions] of the last
  // selection layer, and per query head its positions [heads][selected_stride_].
  std::vector<float> selection_scores_;
  std::vector<int32_t> selected_;
  int64_t selected_stride_ = 0;
  int64_t selected_count_ = 0;  // 0 = no selection yet in this step
  bool selected_shared_by_group_ = false;  // one list per KV head (the per-KV-head policies)
  int64_t traced_positions_ = 0;  // positions of the last selection made, 0 = none yet
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

void CpuBackend::rms_norm_rows(const float* x, const std::vector<float>& weight, int64_t tokens, float* out) {
  const int64_t width = static_cast<int64_t>(weight.size());
  const float eps = static_cast<float>(config_.rms_norm_eps);
  pool_.parallel_for(tokens, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) cpu::rms_norm(x + t * width, weight.data(), width, eps, out + t * width);
  }, 8);
}

void CpuBackend::project_qkv(const LayerWeights& layer, int64_t count) {
  const int64_t hidden = config_.hidden_size;
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  run_linears({{&layer.q_proj, bias(layer.q_bias), q_.data(), q_size()},
               {&layer.k_proj, bias(layer.k_bias), k_.data(), kv_size()},
               {&layer.v_proj, bias(layer.v_bias), v_.data(), kv_size()}},
              normed_.data(), hidden, count);
}

// Qwen3's per-head RMSNorm of q and k, then RoPE, then the new keys and values go into the
// cache (one thread per KV head, positions in order, so page bounds grow in order).
void CpuBackend::position_encode_and_store(PagedKvCache& cache, int64_t layer_index, const LayerWeights& layer,
                                           int64_t start, int64_t count) {
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, head_dim = config_.head_dim;
  const int64_t half = head_dim / 2;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const bool qk_norm = !layer.q_norm.empty();
  pool_.parallel_for(count * (heads + kv_heads), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / (heads + kv_heads);
      const int64_t h = i % (heads + kv_heads);
      const float* cos_values = rope_cos_.data() + t * half;
      const float* sin_values = rope_sin_.data() + t * half;
      float* vec = h < heads ? q_.data() + t * q_size() + h * head_dim
                             : k_.data() + t * kv_size() + (h - heads) * head_dim;
      if (qk_norm) cpu::rms_norm(vec, h < heads ? layer.q_norm.data() : layer.k_norm.data(), head_dim, eps, vec);
      cpu::apply_rope(vec, cos_values, sin_values, half);
    }
  }, 16);
  pool_.parallel_for(kv_heads, [&](int64_t begin, int64_t end, int) {
    for (int64_t h = begin; h < end; ++h)
      for (int64_t t = 0; t < count; ++t)
        cache.write(layer_index, h, start + t, k_.data() + t * kv_size() + h * head_dim,
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
void CpuBackend::attention_dense(PagedKvCache& cache, int64_t layer, int64_t start, int64_t count) {
  const int64_t head_dim = config_.head_dim;
  const float scale = attention_scale();
  const HeadTasks tasks = head_tasks(count);
  pool_.parallel_for(tasks.count, [&](int64_t begin, int64_t end, int thread) {
    for (int64_t i = begin; i < end; ++i) {
      const HeadTask task = tasks.task(i, config_.num_kv_heads, group_size());
      const int64_t visible = start + task.token + 1;
      float* scores = sized(thread_scores_[static_cast<size_t>(thread)], task.heads * visible);
      const int64_t offset = task.token * q_size() + task.first_head * head_dim;
      cpu::attend_grouped(q_.data() + offset, task.heads, cache.head_view(layer, task.kv_head), nullptr, visible, scale,
                          scores, attention_out_.data() + offset);
    }
  });
}

// A tidal selection layer: dense attention for the one decoding token, keeping each head's
// scaled scores to choose the positions the following layers attend.
void CpuBackend::attention_select(PagedKvCache& cache, int64_t layer, int64_t positions, const AttentionPlan& plan) {
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim, group = group_size();
  const float scale = attention_scale();
  float* all_scores = sized(selection_scores_, heads * positions);
  const HeadTasks tasks = head_tasks(1);
  pool_.parallel_for(tasks.count, [&](int64_t begin, int64_t end, int thread) {
    for (int64_t i = begin; i < end; ++i) {
      const HeadTask task = tasks.task(i, config_.num_kv_heads, group);
      const KvHeadView kv = cache.head_view(layer, task.kv_head);
      const int64_t offset = task.first_head * head_dim;
      float* kept = all_scores + task.first_head * positions;
      cpu::attention_scores_grouped(q_.data() + offset, task.heads, kv, nullptr, positions, scale, kept, positions);
      float* scores = sized(thread_scores_[static_cast<size_t>(thread)], task.heads * positions);
      std::memcpy(scores, kept, static_cast<size_t>(task.heads * positions) * sizeof(float));
      cpu::attention_weighted_values_grouped(scores, positions, task.heads, kv, nullptr, positions,
                                             attention_out_.data() + offset);
    }
  });

  // Candidates are every position but the current one; keep budget - 1 of them.
  const int64_t candidates = positions - 1;
  const int64_t keep = std::min(plan.token_budget - 1, candidates);
  selected_stride_ = keep + 1;
  selected_shared_by_group_ = plan.selection_policy != SelectionPolicy::PerQueryHead;
  int32_t* selected = sized(selected_, heads * selected_stride_);
  const cpu::GroupSelection reduce = group_selection(plan.selection_policy);
  const bool per_head = !selected_shared_by_group_;
  const int64_t selectors = per_head ? heads : config_.num_kv_heads;
  pool_.parallel_for(selectors, [&](int64_t begin, int64_t end, int thread) {
    int32_t* scratch = sized(thread_indices_[static_cast<size_t>(thread)], std::max<int64_t>(candidates, 1));
    float* combined = sized(thread_floats_[static_cast<size_t>(thread)], std::max<int64_t>(candidates, 1));
    for (int64_t s = begin; s < end; ++s) {
      const int64_t first_head = per_head ? s : s * group;
      int32_t* out = selected + first_head * selected_stride_;
      const float* ranked = all_scores + first_head * positions;
      if (!per_head) {
        cpu::reduce_group_scores(all_scores, positions, first_head, group, candidates, reduce, combined);
        ranked = combined;
      }
      cpu::select_top_positions(ranked, candidates, keep, out, scratch);
      out[keep] = static_cast<int32_t>(positions - 1);  // the current token, always attended
      if (!per_head)
        for (int64_t g = 1; g < group; ++g)
          std::copy(out, out + selected_stride_, selected + (first_head + g) * selected_stride_);
    }
  });
  selected_count_ = selected_stride_;
  traced_positions_ = positions;
}

// A tidal sparse layer: each query head attends over its selected positions (heads of one
// group together when they share a list).
void CpuBackend::attention_selected(PagedKvCache& cache, int64_t layer) {
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim, group = group_size();
  const float scale = attention_scale();
  if (selected_shared_by_group_) {
    const HeadTasks tasks = head_tasks(1);
    pool_.parallel_for(tasks.count, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t i = begin; i < end; ++i) {
        const HeadTask task = tasks.task(i, config_.num_kv_heads, group);
        float* scores = sized(thread_scores_[static_cast<size_t>(thread)], task.heads * selected_count_);
        cpu::attend_grouped(q_.data() + task.first_head * head_dim, task.heads, cache.head_view(layer, task.kv_head),
                            selected_.data() + task.first_head * selected_stride_, selected_count_, scale, scores,
                            attention_out_.data() + task.first_head * head_dim);
      }
    });
    return;
  }
  pool_.parallel_for(heads, [&](int64_t begin, int64_t end, int thread) {
    float* scores = sized(thread_scores_[static_cast<size_t>(thread)], selected_count_);
    for (int64_t h = begin; h < end; ++h) {
      const KvHeadView kv = cache.head_view(layer, h / group);
      cpu::attend(q_.data() + h * head_dim, kv, selected_.data() + h * selected_stride_, selected_count_, scale, scores,
                  attention_out_.data() + h * head_dim);
    }
  });
}

// Quest: per query head, rank pages by their key upper bound and attend over the tokens of
// the best budget/16 pages (the current page always among them).
void CpuBackend::attention_quest(PagedKvCache& cache, int64_t layer, int64_t positions, const AttentionPlan& plan) {
  const int64_t heads = config_.num_heads, head_dim = config_.head_dim, group = group_size();
  const float scale = attention_scale();
  const int64_t pages = (positions + kKvPageTokens - 1) / kKvPageTokens;
  const int64_t page_budget = std::max<int64_t>(1, plan.token_budget / kKvPageTokens);
  pool_.parallel_for(heads, [&](int64_t begin, int64_t end, int thread) {
    // Per-thread layout: indices [pages chosen | page scratch | positions], floats [bounds | scores].
    int32_t* indices = sized(thread_indices_[static_cast<size_t>(thread)], 2 * pages + positions);
    float* floats = sized(thread_floats_[static_cast<size_t>(thread)], pages + positions);
    int32_t* chosen = indices;
    int32_t* scratch = indices + pages;
    int32_t* attended = indices + 2 * pages;
    float* bounds = floats;
    float* scores = floats + pages;
    for (int64_t h = begin; h < end; ++h) {
      const int64_t kv_head = h / group;
      const float* q = q_.data() + h * head_dim;
      for (int64_t p = 0; p < pages; ++p)
        bounds[p] = cpu::page_score_upper_bound(q, cache.key_min(p, layer, kv_head), cache.key_max(p, layer, kv_head),
                                                head_dim);
      const int64_t chosen_count = cpu::select_pages(bounds, pages, page_budget, chosen, scratch);
      int64_t attended_count = 0;
      for (int64_t c = 0; c < chosen_count; ++c) {
        const int64_t first = int64_t{chosen[c]} * kKvPageTokens;
        const int64_t last = std::min(positions, first + kKvPageTokens);
        for (int64_t pos = first; pos < last; ++pos) attended[attended_count++] = static_cast<int32_t>(pos);
      }
      const KvHeadView kv = cache.head_view(layer, kv_head);
      cpu::attend(q, kv, attended, attended_count, scale, scores, attention_out_.data() + h * head_dim);
      thread_attended_[static_cast<size_t>(thread)] += attended_count;
    }
  });
}

void CpuBackend::run(PagedKvCache& cache, const int32_t* tokens, int64_t count, const AttentionPlan* plan,
                     LogitsWanted wanted, float* logits, ForwardStats* stats,
                     const std::atomic<bool>* cancel) {
  const int64_t hidden = config_.hidden_size, inner = config_.intermediate_size;
  const int64_t heads = config_.num_heads, half = config_.head_dim / 2;
  const int64_t start = cache.length();
  const int64_t positions = start + count;  // cache length once these tokens are in

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

  pool_.parallel_for(count, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      cpu::load_matrix_row(weights_.embed_tokens, tokens[t], hidden_.data() + t * hidden);
      cpu::rope_angles(inverse_frequencies_.data(), half, start + t, rope_cos_.data() + t * half,
                       rope_sin_.data() + t * half);
    }
  }, 4);

  selected_count_ = 0;
  ForwardStats local;
  for (int64_t layer_index = 0; layer_index < config_.num_layers; ++layer_index) {
    if (cancel && cancel->load())
      throw CancelledError("prefill cancelled at layer " + std::to_string(layer_index) + " of a " +
                           std::to_string(count) + "-token pass; the sequence was left as it was");
    const LayerWeights& layer = weights_.layers[static_cast<size_t>(layer_index)];
    rms_norm_rows(hidden_.data(), layer.input_norm, count, normed_.data());
    project_qkv(layer, count);
    position_encode_and_store(cache, layer_index, layer, start, count);

    const LayerAttention role = plan ? plan->layers[static_cast<size_t>(layer_index)] : LayerAttention::Dense;
    const int64_t dense_reads = heads * (count * start + count * (count + 1) / 2);
    local.dense_positions += dense_reads;
    if (role == LayerAttention::DenseAndSelect) {
      attention_select(cache, layer_index, positions, *plan);
      local.attended_positions += dense_reads;
      ++local.selection_layers;
    } else if (role == LayerAttention::Selected && selected_count_ > 0) {
      attention_selected(cache, layer_index);
      local.attended_positions += heads * selected_count_;
    } else if (role == LayerAttention::QuestPages) {
      std::fill(thread_attended_.begin(), thread_attended_.end(), 0);
      attention_quest(cache, layer_index, positions, *plan);
      for (int64_t n : thread_attended_) local.attended_positions += n;
      ++local.selection_layers;
    } else {
      attention_dense(cache, layer_index, start, count);
      local.attended_positions += dense_reads;
    }

    // Residual stream: x += o_proj(attention); x += down(silu(gate(norm x)) * up(norm x)).
    run_linears({{&layer.o_proj, layer.o_bias.empty() ? nullptr : layer.o_bias.data(), projected_.data(), hidden}},
                attention_out_.data(), q_size(), count);
    for (int64_t i = 0; i < count * hidden; ++i) hidden_[static_cast<size_t>(i)] += projected_[static_cast<size_t>(i)];
    rms_norm_rows(hidden_.data(), layer.post_attention_norm, count, normed_.data());
    run_linears({{&layer.gate_proj, nullptr, gate_.data(), inner}, {&layer.up_proj, nullptr, up_.data(), inner}},
                normed_.data(), hidden, count);
    pool_.parallel_for(count, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t)
        cpu::swiglu(gate_.data() + t * inner, up_.data() + t * inner, inner, gate_.data() + t * inner);
    }, 4);
    run_linears({{&layer.down_proj, nullptr, projected_.data(), hidden}}, gate_.data(), inner, count);
    for (int64_t i = 0; i < count * hidden; ++i) hidden_[static_cast<size_t>(i)] += projected_[static_cast<size_t>(i)];
  }

  if (wanted != LogitsWanted::None) {
    const int64_t first = wanted == LogitsWanted::All ? 0 : count - 1;
    const int64_t rows = count - first;
    rms_norm_rows(hidden_.data() + first * hidden, weights_.final_norm, rows, normed_.data());
    run_linears({{&weights_.lm_head, nullptr, logits, config_.vocab_size}}, normed_.data(), hidden, rows);
  }
  if (stats) {
    stats->attended_positions += local.attended_positions;
    stats->dense_positions += local.dense_positions;
    stats->selection_layers += local.selection_layers;
  }
}

}  // namespace

std::unique_ptr<Backend> create_cpu_backend(const ModelConfig& config, const ModelWeights& weights,
                                            const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(config, weights, options);
}

}  // namespace tidal
