#include "cuda/workspace.h"

#include <algorithm>

#include "cuda/quest_kernels.h"

namespace tidal::cuda {

namespace {
// Positions by which the selection scratch buffers grow.
constexpr int64_t kScratchPositions = 16384;
}  // namespace

void Workspace::prepare(const ModelConfig& config, int64_t count, int64_t positions, const AttentionPlan* plan,
                        int64_t logit_rows, cudaStream_t stream) {
  const int64_t width = config.hidden_size, inner = config.intermediate_size, heads = config.num_heads;
  const size_t t = static_cast<size_t>(count), kept = static_cast<size_t>(kKeptTokens);
  const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  // The activations of a long prefill pass (hundreds of MB at 2048 tokens of an 8B model) are
  // given back once passes are short again; a keystroke's chunk fits in what is kept.
  const auto activations = [&](DeviceBuffer& buffer, size_t per_token) {
    buffer.fit(t * per_token, kept * per_token, "activations", stream);
  };
  tokens.ensure(t * 4, "token ids", stream);
  activations(hidden, width * 4);
  activations(normed, std::max(width, inner) * 2);
  activations(qkv, (q_size + 2 * kv_size) * 4);
  activations(q_bf16, q_size * 2);
  activations(attention_out, q_size * 2);
  activations(gate_up, 2 * inner * 4);
  // Logits of every token (an evaluation's pass) are gigabytes for a large vocabulary: one row kept.
  const size_t row = static_cast<size_t>(config.vocab_size) * 4;
  logits.fit(static_cast<size_t>(std::max<int64_t>(logit_rows, 1)) * row, row, "logits", stream);
  argmax.ensure(16, "argmax", stream);
  if (plan) {
    // Sized for the next multiple of kScratchPositions: a decode step is one position longer
    // than the last, and growing these every step would reallocate them every step.
    positions = (positions + kScratchPositions - 1) / kScratchPositions * kScratchPositions;
    score_stride = positions;
    const int64_t budget = std::max<int64_t>(plan->token_budget, 1);
    scores.ensure(static_cast<size_t>(heads * positions) * 4, "selection scores", stream);
    selected.ensure(static_cast<size_t>(heads * budget) * 4, "selected positions", stream);
    const int64_t page_count = (positions + kQuestPageTokens - 1) / kQuestPageTokens;
    bounds.ensure(static_cast<size_t>(heads * page_count) * 4, "Quest page bounds", stream);
    const int64_t page_budget = std::max<int64_t>(1, budget / kQuestPageTokens);
    pages.ensure(static_cast<size_t>(heads * page_budget) * 4, "Quest pages", stream);
    quest_positions.ensure(static_cast<size_t>(heads * page_budget * kQuestPageTokens) * 4, "Quest positions", stream);
  }
}

}  // namespace tidal::cuda
