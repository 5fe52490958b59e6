// The decoder forward, once for every backend: the recipe of a llama-family decoder layer,
// the routing of each layer's attention by its role in the AttentionPlan, the positions it
// reads (ForwardStats) and which selection the trace shows. Backends supply the ops below
// and keep their memory layout, weights and kernels; the CUDA backend captures this same
// forward into graphs.
//
//   x = embed(tokens)
//   per layer:  n = rms_norm(x);  q|k|v = n Wqkv;  rope(q, k), append k, v to the cache
//               a = attention(q, cache)               (by role: dense / select / lists / quest)
//               x += a Wo;  n = rms_norm(x);  g|u = n Wgate|up;  x += (silu(g) * u) Wdown
//   logits = rms_norm(x) Wout                          (the rows asked for)
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "model/model_config.h"

namespace tidal {

// One forward pass: tokens at positions [start, start + count) of a cache.
struct DecoderPass {
  int64_t start = 0;
  int64_t count = 0;
  const AttentionPlan* plan = nullptr;        // one-token passes only; null = dense causal
  int64_t logit_rows = 0;                      // logits of the last `logit_rows` tokens
  const std::atomic<bool>* cancel = nullptr;   // read between layers
  int64_t positions() const { return start + count; }  // cache length once the tokens are in
};

// Activations of the tokens in flight, by role. A backend keeps them in its own layout and
// dtype, and may let two roles share memory where their lifetimes in the recipe do not
// overlap (Gated is written after Normed's last read in a layer).
enum class Activation : uint8_t {
  Residual,   // [tokens][hidden] the residual stream x
  Normed,     // [tokens][hidden] rms_norm output, input of the products that follow it
  Qkv,        // q | k | v of the layer
  Attention,  // [tokens][heads * head_dim]
  GateUp,     // gate | up products
  Gated,      // [tokens][intermediate] silu(gate) * up
};

enum class LayerMatrix : uint8_t { Qkv, O, GateUp, Down };
enum class NormWeight : uint8_t { Input, PostAttention, Final };

// A tidal selection: the `keep` highest-scoring of the `candidates` earlier positions, and
// the current token last, per query head or (the per-KV-head policies) per GQA group.
struct SelectionSpec {
  SelectionPolicy policy = SelectionPolicy::PerQueryHead;
  int64_t token_budget = 1;
  int64_t positions = 0;   // cache length, current token included
  int64_t candidates = 0;  // positions - 1
  int64_t keep = 0;        // min(token_budget - 1, candidates)
  int64_t count() const { return keep + 1; }
  bool per_kv_head() const { return policy != SelectionPolicy::PerQueryHead; }
};

// Quest: per query head, the `page_budget` pages with the largest key upper bound (the
// current, possibly partial, page always among them), as a list of `count` positions.
constexpr int64_t kQuestPageTokens = 16;
// Positions a per-head list holds after selecting min(page_budget, pages) pages, the last page
// (partial when `positions` is not a multiple of kQuestPageTokens) among them.
int64_t quest_position_count(int64_t positions, int64_t page_budget);
struct QuestSpec {
  int64_t positions = 0;
  int64_t pages = 0;        // ceil(positions / kQuestPageTokens)
  int64_t page_budget = 1;  // max(1, token_budget / kQuestPageTokens)
  int64_t count = 0;        // positions in each head's list
};
QuestSpec quest_spec(int64_t positions, int64_t token_budget);

enum class PositionLists : uint8_t { Selection, Quest };

// What a backend supplies. Every op works on the tokens of the pass last given to embed();
// `rows` are counted in tokens of that pass.
class DecoderOps {
 public:
  virtual ~DecoderOps() = default;
  // x = embedding rows of the pass's tokens.
  virtual void embed(const DecoderPass& pass) = 0;
  // out rows [0, count - first_row) = rms_norm(in rows [first_row, count)) * weight.
  virtual void rms_norm(Activation in, int64_t layer, NormWeight weight, Activation out, int64_t first_row) = 0;
  // out = in W (+ bias) for every token of the pass; accumulate adds it to out instead.
  virtual void linear(int64_t layer, LayerMatrix matrix, Activation in, Activation out, bool accumulate) = 0;
  // q|k|v bias, Qwen3's per-head q/k norms, RoPE at the tokens' positions, and the new K/V
  // (and their Quest page bounds) into the cache.
  virtual void qkv_rope_append(int64_t layer, const DecoderPass& pass) = 0;
  // Causal attention of the pass's tokens over every cached position. keep_scores (one-token
  // passes) keeps the scaled q.k of every position for select_top_k.
  virtual void attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) = 0;
  virtual void select_top_k(const SelectionSpec& selection) = 0;
  virtual void quest_pages(int64_t layer, const QuestSpec& quest) = 0;
  // One-token attention over the position lists of the last select_top_k or quest_pages.
  virtual void attend_lists(int64_t layer, PositionLists lists, const DecoderPass& pass) = 0;
  // Gated = silu(gate) * up.
  virtual void swiglu() = 0;
  // logits rows [0, rows) = Normed rows [0, rows) Wout.
  virtual void logits(int64_t rows) = 0;
  // Cancellable passes: called before each layer is issued, so an asynchronous backend can
  // bound the work queued ahead of the flag (and drain it before the pass is abandoned).
  virtual void pace_layer(int64_t /*layer*/) {}
  virtual void abandon_pass() {}
};

// Each layer's effective attention in a pass, its reads, and the selection the trace shows:
// a function of the pass alone, so a replayed CUDA graph reports the same as a traced run.
struct DecoderRoute {
  std::vector<LayerAttention> layers;  // Selected before any selection layer reads as Dense
  SelectionSpec selection;             // valid when selects
  bool selects = false;
  QuestSpec quest;                     // valid when a layer is QuestPages
  ForwardStats stats;
};
DecoderRoute route_pass(const ModelConfig& config, const DecoderPass& pass);

// One layer's attention in its role (the q of the layer already in place).
void attend_layer(DecoderOps& ops, const DecoderRoute& route, int64_t layer, const DecoderPass& pass);

// The forward: every op of the pass, in order. Throws CancelledError when pass.cancel is set
// between layers (the backend keeps the cache as it was).
void run_decoder(const ModelConfig& config, DecoderOps& ops, const DecoderPass& pass, const DecoderRoute& route);

void add_stats(ForwardStats* into, const ForwardStats& stats);

}  // namespace tidal
