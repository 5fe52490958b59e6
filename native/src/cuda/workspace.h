// The CUDA backend's scratch memory for the tokens in flight: activations (fp32 where
// products write, bf16 where they read), logits, and the selection / Quest lists of a decode
// step. Buffers grow to the largest pass; the activations and logits of a pass longer than
// kKeptTokens (one logits row) are given back to that size by the next pass that fits in it. A
// captured decode graph replays only while the buffers it names keep their address
// (step_bindings in cuda_backend.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/device_buffer.h"
#include "engine/backend.h"
#include "model/model_config.h"

namespace tidal::cuda {

// Tokens of activations a workspace keeps after a longer pass: a keystroke's recompute (256)
// fits without allocating.
inline constexpr int64_t kKeptTokens = 256;

struct Workspace {
  DeviceBuffer tokens, hidden, normed, qkv, q_bf16, attention_out, gate_up, logits, argmax;
  DeviceBuffer scores, selected, bounds, pages, quest_positions;
  DeviceBuffer embedding_rows;    // the pass's embedding rows uploaded from the host (HostEmbedding)
  DeviceBuffer prefill_partials;  // split-KV prefill attention: partial outputs and row statistics
  DeviceBuffer prefill_kv;        // FP8 cache: one layer's K and V widened to bf16 for prefill attention
  DeviceBuffer pass_lse;          // sparse prefill: the selection layer's row log-sum-exp [tokens][heads]
  DeviceBuffer list_kv;           // sparse prefill: each list's K/V rows gathered [lists][keep + tokens][d]
  int64_t score_stride = 0;       // positions per row of `scores`

  // Activations for `count` tokens; logits for `logit_rows` of them (a long prefill pass wants
  // none or one: rows of the vocabulary for every token would be gigabytes at 2048 tokens).
  void prepare(const ModelConfig& config, int64_t count, int64_t positions, const AttentionPlan* plan,
               int64_t logit_rows, cudaStream_t stream);
  // Device bytes of every buffer above.
  size_t bytes() const {
    size_t total = 0;
    for (const DeviceBuffer* b :
         {&tokens, &hidden, &normed, &qkv, &q_bf16, &attention_out, &gate_up, &logits, &argmax, &scores, &selected,
          &bounds, &pages, &quest_positions, &embedding_rows, &prefill_partials, &prefill_kv, &pass_lse, &list_kv})
      total += b->bytes();
    return total;
  }
};

}  // namespace tidal::cuda
