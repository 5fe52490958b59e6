// The seam between the engine (sequences, sampling, attention policy) and a compute
// backend (CPU now, CUDA next). A backend owns the model's working memory and KV caches and
// runs forward passes; the engine decides what to run. Everything a backend needs to know
// about sparse attention is in AttentionPlan: which layers are dense, which select tokens,
// which attend over the selection or over Quest pages.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tidal/engine.h"

namespace tidal {

// What one layer's attention does in a one-token decode step.
enum class LayerAttention : uint8_t {
  Dense,           // every cached position
  DenseAndSelect,  // tidal selection layer: dense, and its scores pick the positions the next layers use
  Selected,        // tidal sparse layer: the positions of the last selection layer + the current token
  QuestPages,      // quest: the pages with the largest key upper bound, per query head
};

struct AttentionPlan {
  AttentionMode mode = AttentionMode::Full;
  std::vector<LayerAttention> layers;  // one entry per model layer
  int64_t token_budget = 0;
  SelectionPolicy selection_policy = SelectionPolicy::PerQueryHead;
  // The plan applies to passes of several tokens too (AttentionOptions::sparse_prefill).
  bool sparse_prefill = false;
};

// Counts of KV positions read by attention in one forward pass (summed over layers and
// query heads), against what dense attention would read.
struct ForwardStats {
  int64_t attended_positions = 0;
  int64_t dense_positions = 0;
  int64_t selection_layers = 0;
};

enum class LogitsWanted { None, Last, All };

// What the last tidal selection layer of the most recent decode step chose, from which
// scores: for tests and diagnostics.
struct SelectionTrace {
  int64_t positions = 0;                       // cache length at that step (current token included)
  std::vector<float> scores;                   // [query heads][positions]: scaled q.k
  std::vector<std::vector<int32_t>> selected;  // per query head, ascending, current token last
};

// The K/V of one sequence's processed tokens, in the backend's memory.
class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual int64_t length() const = 0;
  // Drops positions >= length (length <= length()).
  virtual void trim(int64_t length) = 0;
  // A cache holding positions [0, length) of this one, sharing storage where it can.
  virtual std::unique_ptr<KvCache> fork(int64_t length) const = 0;
  // Bytes of the pages this cache refers to (shared pages counted in every cache).
  virtual size_t bytes_referenced() const = 0;
  // A hint before a prefill or a load: the cache is about to hold `positions` positions. A cache
  // that grows by copying into a larger allocation (CUDA) allocates once, with room for a
  // reply's tokens after them, instead of growing chunk by chunk. Others ignore it.
  virtual void prepare_for(int64_t positions) { (void)positions; }
};

// Position ranges (start, count) of a cache, ascending and disjoint (the engine validates them).
using KvRanges = std::vector<std::pair<int64_t, int64_t>>;

// The K/V section of a saved sequence, as a byte stream in "file order": for every layer, its
// keys [kv_head][position][head_dim], then its values likewise, elements in the backend's
// kv_dtype(); for "fp8_e4m3" the layer's scale pairs [kv_head][position] (key f16, value f16)
// follow its values. A backend writes or reads it in pieces of any size, in order.
class KvByteSink {
 public:
  virtual ~KvByteSink() = default;
  virtual void write(const void* data, size_t bytes) = 0;
};
class KvByteSource {
 public:
  virtual ~KvByteSource() = default;
  virtual void read(void* data, size_t bytes) = 0;
};

class DecoderOps;  // engine/decoder.h

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int threads() const = 0;
  // Why forward() cannot run `plan` (a sparse_prefill plan) over passes of several tokens, or
  // empty when it can.
  virtual std::string sparse_prefill_refusal(const AttentionPlan& plan) const {
    (void)plan;
    return std::string("the ") + name() + " backend runs no sparse prefill yet";
  }
  // The ops this backend's forward is made of (engine/decoder.h), for the op harness and
  // benchmarks; forward() is the way to run the model.
  virtual DecoderOps& decoder_ops() = 0;
  virtual std::unique_ptr<KvCache> create_kv_cache() = 0;
  // KV memory in use over every cache of this backend, each page once.
  virtual size_t kv_bytes_in_use() const = 0;
  virtual size_t kv_bytes_peak() const = 0;
  virtual size_t kv_bytes_per_token() const = 0;

  // Runs tokens[0, count) at positions cache.length() ... through the model, appends their
  // K/V to the cache, and writes logits ([vocab] for Last, [count][vocab] for All). `plan`
  // applies to one-token steps, and to longer passes where it says sparse_prefill and the
  // backend has no sparse_prefill_refusal() for it; otherwise (or null) attention is dense causal. On an
  // exception the cache keeps its previous length. Throws OutOfMemoryError. `cancel`, when
  // given, is read between the layers of a pass of more than one token: once it is set the pass
  // stops within about two layers and throws CancelledError (the cache as before the call).
  virtual void forward(KvCache& cache, const int32_t* tokens, int64_t count, const AttentionPlan* plan,
                       LogitsWanted wanted, float* logits, ForwardStats* stats,
                       const std::atomic<bool>* cancel = nullptr) = 0;

  // Empty when no selection layer has run yet.
  virtual SelectionTrace last_selection_trace() const = 0;

  // How K/V elements are stored, and so saved: "f32", "bf16" or "fp8_e4m3".
  virtual const char* kv_dtype() const = 0;

  // Context shift: afterwards the cache holds the positions of `ranges`, back to back, in
  // order. A position moved from `old` to `new` keeps its value; its key, rotated by RoPE at
  // `old`, is rotated further by (new - old) * inv_freq_i per pair (rotations compose), so it
  // reads as a key at `new`. Quest page bounds are rebuilt from the first moved position.
  // Throws OutOfMemoryError (or RequestError) before changing anything; any other exception
  // means the move was interrupted and the cache must be dropped.
  virtual void compact(KvCache& cache, const KvRanges& ranges) = 0;

  // Writes the K/V of positions [0, cache.length()) to `sink` in file order.
  virtual void save_kv(const KvCache& cache, KvByteSink& sink) = 0;
  // Fills an empty cache with `length` positions read from `source` in file order and
  // rebuilds their Quest page bounds. Throws OutOfMemoryError when the cache cannot grow.
  virtual void load_kv(KvCache& cache, int64_t length, KvByteSource& source) = 0;
};

}  // namespace tidal
