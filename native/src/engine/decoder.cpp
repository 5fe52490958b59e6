#include "engine/decoder.h"

#include <algorithm>
#include <string>

#include "tidal/error.h"

namespace tidal {

int64_t quest_position_count(int64_t positions, int64_t page_budget) {
  const int64_t pages = (positions + kQuestPageTokens - 1) / kQuestPageTokens;
  const int64_t kept = std::min(page_budget, pages);
  if (kept <= 0) return 0;
  // Whole pages, and the last page as far as it is filled.
  return (kept - 1) * kQuestPageTokens + (positions - (pages - 1) * kQuestPageTokens);
}

int64_t activation_width(const ModelConfig& config, Activation activation) {
  switch (activation) {
    case Activation::Residual:
    case Activation::Normed:
      return config.hidden_size;
    case Activation::Qkv:
      return (config.num_heads + 2 * config.num_kv_heads) * config.head_dim;
    case Activation::Attention:
      return config.num_heads * config.head_dim;
    case Activation::GateUp:
      return 2 * config.intermediate_size;
    case Activation::Gated:
      return config.intermediate_size;
    case Activation::Logits:
      return config.vocab_size;
  }
  return 0;
}

QuestSpec quest_spec(int64_t positions, int64_t token_budget) {
  QuestSpec quest;
  quest.positions = positions;
  quest.pages = (positions + kQuestPageTokens - 1) / kQuestPageTokens;
  quest.page_budget = std::max<int64_t>(1, token_budget / kQuestPageTokens);
  quest.count = quest_position_count(positions, quest.page_budget);
  return quest;
}

DecoderRoute route_pass(const ModelConfig& config, const DecoderPass& pass) {
  DecoderRoute route;
  const int64_t heads = config.num_heads, start = pass.start, count = pass.count, positions = pass.positions();
  // Every query head of every token reads the positions up to its own.
  const int64_t dense_reads = heads * (count * start + count * (count + 1) / 2);
  const AttentionPlan* plan = count == 1 || (pass.plan && pass.plan->sparse_prefill) ? pass.plan : nullptr;
  if (plan) {
    route.selection.policy = plan->selection_policy;
    route.selection.token_budget = std::max<int64_t>(plan->token_budget, 1);
    route.selection.positions = positions;
    route.selection.candidates = start;
    route.selection.keep = std::min(route.selection.token_budget - 1, route.selection.candidates);
    route.selection.pass_tokens = count;
    if (count == 1) {
      route.quest = quest_spec(positions, plan->token_budget);
    } else {
      route.quest = quest_spec(start, plan->token_budget);
      route.quest.pass_tokens = count;
    }
  }
  // Token t of the pass reads `listed` positions of a list and t + 1 of its own (decode: its
  // one token is in the list already).
  const auto list_reads = [&](int64_t listed, int64_t own_tokens) {
    return heads * (count * listed + (own_tokens > 0 ? count * (count + 1) / 2 : 0));
  };
  route.layers.resize(static_cast<size_t>(config.num_layers), LayerAttention::Dense);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    LayerAttention role = plan ? plan->layers[static_cast<size_t>(l)] : LayerAttention::Dense;
    if (role == LayerAttention::Selected && !route.selects) role = LayerAttention::Dense;
    route.layers[static_cast<size_t>(l)] = role;
    route.stats.dense_positions += dense_reads;
    switch (role) {
      case LayerAttention::DenseAndSelect:
        route.selects = true;
        route.stats.attended_positions += dense_reads;
        ++route.stats.selection_layers;
        break;
      case LayerAttention::Selected:
        route.stats.attended_positions += list_reads(route.selection.keep, route.selection.pass_tokens);
        break;
      case LayerAttention::QuestPages:
        route.stats.attended_positions += list_reads(route.quest.count, route.quest.pass_tokens);
        ++route.stats.selection_layers;
        break;
      case LayerAttention::Dense:
        route.stats.attended_positions += dense_reads;
        break;
    }
  }
  return route;
}

void attend_layer(DecoderOps& ops, const DecoderRoute& route, int64_t layer, const DecoderPass& pass) {
  switch (route.layers[static_cast<size_t>(layer)]) {
    case LayerAttention::Dense:
      ops.attend_dense(layer, pass, false);
      return;
    case LayerAttention::DenseAndSelect:
      ops.attend_dense(layer, pass, true);
      ops.select_top_k(route.selection);
      return;
    case LayerAttention::Selected:
      ops.attend_lists(layer, PositionLists::Selection, pass);
      return;
    case LayerAttention::QuestPages:
      ops.quest_pages(layer, route.quest);
      ops.attend_lists(layer, PositionLists::Quest, pass);
      return;
  }
}

void run_decoder(const ModelConfig& config, DecoderOps& ops, const DecoderPass& pass, const DecoderRoute& route) {
  ops.embed(pass);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    if (pass.cancel) {
      ops.pace_layer(layer);
      if (pass.cancel->load()) {
        ops.abandon_pass();
        throw CancelledError("prefill cancelled at layer " + std::to_string(layer) + " of a " +
                             std::to_string(pass.count) + "-token pass; the sequence was left as it was");
      }
    }
    ops.rms_norm(Activation::Residual, layer, NormWeight::Input, Activation::Normed, 0);
    ops.linear(layer, LayerMatrix::Qkv, Activation::Normed, Activation::Qkv, false);
    ops.qkv_rope_append(layer, pass);
    attend_layer(ops, route, layer, pass);
    ops.linear(layer, LayerMatrix::O, Activation::Attention, Activation::Residual, true);
    ops.rms_norm(Activation::Residual, layer, NormWeight::PostAttention, Activation::Normed, 0);
    ops.gate_up_swiglu(layer, Activation::Normed);
    ops.linear(layer, LayerMatrix::Down, Activation::Gated, Activation::Residual, true);
  }
  if (pass.logit_rows > 0) {
    ops.rms_norm(Activation::Residual, -1, NormWeight::Final, Activation::Normed, pass.count - pass.logit_rows);
    ops.logits(pass.logit_rows);
  }
}

void add_stats(ForwardStats* into, const ForwardStats& stats) {
  if (!into) return;
  into->attended_positions += stats.attended_positions;
  into->dense_positions += stats.dense_positions;
  into->selection_layers += stats.selection_layers;
}

}  // namespace tidal
