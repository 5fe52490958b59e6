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
  const AttentionPlan* plan = nullptr;                 // null = dense causal (route_pass says when it applies)
  int64_t logit_rows = 0;                              // logits of the last `logit_rows` tokens
  const std::atomic<bool>* cancel = nullptr;           // read between layers
  int64_t positions() const { return start + count; }  // cache length once the tokens are in
};

// Activations of the tokens in flight, by role. A backend keeps them in its own layout and
// dtype, and may let two roles share memory where their lifetimes in the recipe do not
// overlap: Gated is written after the last read of Normed and of GateUp in a layer, so it
// may live in either (the CUDA backend puts it in Normed's memory, the CPU backend over
// GateUp's gate half).
enum class Activation : uint8_t {
  Residual,   // [tokens][hidden] the residual stream x
  Normed,     // [tokens][hidden] rms_norm output, input of the products that follow it
  Qkv,        // q | k | v of the layer
  Attention,  // [tokens][heads * head_dim]
  GateUp,     // gate | up products
  Gated,      // [tokens][intermediate] silu(gate) * up
  Logits,     // [logit rows][vocab], written by logits()
};
// Values per row of an activation.
int64_t activation_width(const ModelConfig& config, Activation activation);

enum class LayerMatrix : uint8_t { Qkv, O, GateUp, Down };
enum class NormWeight : uint8_t { Input, PostAttention, Final };

// A tidal selection: the `keep` highest-scoring of the `candidates` positions before the
// pass, then the pass's own tokens, per query head or (the per-KV-head policies) per GQA
// group. A decode step's pass is its current token, listed last; token t of a longer pass
// (sparse prefill) attends to the first keep + t + 1 entries of the list.
struct SelectionSpec {
  SelectionPolicy policy = SelectionPolicy::PerQueryHead;
  int64_t token_budget = 1;
  int64_t positions = 0;    // cache length, the pass's tokens included
  int64_t candidates = 0;   // positions before the pass: positions - pass_tokens
  int64_t keep = 0;         // min(token_budget - 1, candidates)
  int64_t pass_tokens = 1;  // tokens of the pass
  int64_t count() const { return keep + pass_tokens; }
  bool per_kv_head() const { return policy != SelectionPolicy::PerQueryHead; }
};

// Quest: per query head, the `page_budget` pages with the largest key upper bound (the
// current, possibly partial, page always among them), as a list of `count` positions.
constexpr int64_t kQuestPageTokens = 16;
// Positions a per-head list holds after selecting min(page_budget, pages) pages, the last page
// (partial when `positions` is not a multiple of kQuestPageTokens) among them.
int64_t quest_position_count(int64_t positions, int64_t page_budget);
// A decode step ranks the pages of every position, its own token's page included. A sparse
// prefill pass ranks the pages before the pass by the highest bound any of its tokens gives
// them, and lists the pass's own tokens after the chosen positions: token t attends to the
// first count + t + 1 entries.
struct QuestSpec {
  int64_t positions = 0;    // positions ranked: the cache length (decode) or the pass's start
  int64_t pages = 0;        // ceil(positions / kQuestPageTokens)
  int64_t page_budget = 1;  // max(1, token_budget / kQuestPageTokens)
  int64_t count = 0;        // chosen positions in each head's list
  int64_t pass_tokens = 0;  // listed after them: 0 for a decode step, the pass's tokens for a prefill
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
  // Causal attention of the pass's tokens over every cached position. keep_scores keeps, for
  // select_top_k, per query head and position: the scaled q.k (a one-token pass), or for a
  // longer pass the highest log-softmax weight any of its tokens gives each position before it.
  virtual void attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) = 0;
  virtual void select_top_k(const SelectionSpec& selection) = 0;
  virtual void quest_pages(int64_t layer, const QuestSpec& quest) = 0;
  // Attention of the pass's tokens over the position lists of the last select_top_k or
  // quest_pages (token t of a longer pass over its prefix of them: see SelectionSpec).
  virtual void attend_lists(int64_t layer, PositionLists lists, const DecoderPass& pass) = 0;
  // Gated = silu(gate) * up.
  virtual void swiglu() = 0;
  // Gated = swiglu of the gate|up product of `in`: linear(GateUp) then swiglu(), as one op so
  // that a backend may fuse them (the CUDA one does for one token); GateUp's contents are
  // then unspecified.
  virtual void gate_up_swiglu(int64_t layer, Activation in) {
    linear(layer, LayerMatrix::GateUp, in, Activation::GateUp, false);
    swiglu();
  }
  // logits rows [0, rows) = Normed rows [0, rows) Wout.
  virtual void logits(int64_t rows) = 0;
  // Cancellable passes: called before each layer is issued, so an asynchronous backend can
  // bound the work queued ahead of the flag (and drain it before the pass is abandoned).
  virtual void pace_layer(int64_t /*layer*/) {}
  virtual void abandon_pass() {}

  // Direct use of the ops outside Backend::forward (the op harness, benchmarks).
  // begin_pass binds a pass as forward does before its first op: the cache it appends to
  // (room reserved for pass.positions()), its tokens (valid until end_pass) and the
  // activations sized for it; then embed(pass) and any ops may run, in any order that gives
  // each op its inputs. end_pass waits for the queued work; keep = true makes the cache's
  // length pass.positions(), false leaves it as it was.
  virtual void begin_pass(KvCache& cache, const int32_t* tokens, const DecoderPass& pass) = 0;
  virtual void end_pass(bool keep) = 0;
  // Waits for the queued ops (an asynchronous backend's stream).
  virtual void synchronize() = 0;
  // Rows [0, rows) of an activation of the bound pass, [rows][activation_width] as float. A
  // backend that keeps an activation in a narrower type rounds what is written to it.
  virtual void write_activation(Activation activation, int64_t rows, const float* values) = 0;
  virtual void read_activation(Activation activation, int64_t rows, float* values) = 0;
  // Per query head, the positions listed by the last select_top_k or quest_pages.
  virtual std::vector<std::vector<int32_t>> read_position_lists(PositionLists lists) = 0;
};

// Each layer's effective attention in a pass, its reads, and the selection the trace shows:
// a function of the pass alone, so a replayed CUDA graph reports the same as a traced run.
struct DecoderRoute {
  std::vector<LayerAttention> layers;  // Selected before any selection layer reads as Dense
  SelectionSpec selection;             // valid when selects
  bool selects = false;
  QuestSpec quest;  // valid when a layer is QuestPages
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
