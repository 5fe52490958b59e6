// The engine's state behind tidal::Engine, shared by the files that implement its methods
// (engine.cpp: sequences, prefill, decode, generate; engine_compact.cpp: compaction;
// engine_kv_file.cpp: saving and loading sequences). Every member is used under
// request_mutex except `stats` (stats_mutex) and the read-only model description.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "engine/backend.h"
#include "engine/kv_file.h"
#include "engine/model_fingerprint.h"
#include "engine/model_weights.h"
#include "engine/sequence.h"
#include "engine/tensor_source.h"
#include "model/model_config.h"
#include "tidal/engine.h"

namespace tidal {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Engine::Impl {
  EngineOptions options;
  ModelConfig config;
  std::shared_ptr<const TensorSource> tensors;
  ModelWeights weights;
  std::unique_ptr<Backend> backend;  // declared after the weights it reads: destroyed first
  ModelInfo info;
  std::set<int32_t> eos;

  std::mutex request_mutex;
  std::map<SequenceId, std::unique_ptr<Sequence>> sequences;
  SequenceId next_id = 1;
  std::atomic<int64_t> sequence_count{0};
  // What a saved sequence must have been computed by; built on first use.
  std::optional<ModelFingerprint> fingerprint;

  mutable std::mutex stats_mutex;
  UsageStats stats;

  int64_t vocab() const { return config.vocab_size; }

  Sequence& find(SequenceId id);
  SequenceId add(std::unique_ptr<Sequence> sequence);
  void check_tokens(const int32_t* tokens, size_t count) const;
  void check_room(const Sequence& sequence, size_t extra) const;
  // The prefill chunk of a request: `requested`, or the engine option when 0.
  int64_t prefill_chunk(int64_t requested) const;

  void record_prefill(int64_t tokens, double seconds);
  void record_decode(double seconds, const AttentionPlan& plan, const ForwardStats& forward, int64_t context);

  // Runs tokens[cache length, end) in chunks of `chunk` tokens, densely or, with a
  // sparse_prefill `plan`, under it (RequestError where the backend cannot), checking `cancel`
  // before each chunk; sets the sequence's logits. On failure the cache returns to its
  // length before the call. With `all_logits`, returns every processed token's logits.
  void run_pending(Sequence& sequence, const std::atomic<bool>* cancel, std::vector<float>* all_logits, int64_t chunk,
                   const AttentionPlan* plan = nullptr);
  void trim_cache(Sequence& sequence, int64_t length);
  // One decode step for the last pending token (the others, if any, are prefilled first, in
  // chunks of `chunk` tokens, 0 = the engine's; `cancel` is read as run_pending reads it and
  // once more before the step).
  void decode_last(Sequence& sequence, const AttentionPlan& plan, const std::atomic<bool>* cancel = nullptr,
                   int64_t chunk = 0);
  // KV-cache correction: recompute every cache entry written under sparse attention with a
  // dense pass over those tokens, overwriting them; the logits become the dense ones.
  void correct_sparse_entries(Sequence& sequence);
};

}  // namespace tidal
