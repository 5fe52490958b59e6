// Scoring of `tidal eval`: one full-attention prefill per sample, then each attention
// configuration decodes from a fork of that sequence (TidalDecode and Quest act only on
// decode steps, so the prefill is shared).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tidal/engine.h"

namespace tidal::cli {

struct EvalConfig {
  AttentionOptions attention;
  std::string label() const;  // "full", "tidal 2,4 b256", "quest b256"
  std::string selection() const;  // "2,4" for tidal, "-" otherwise
};

// full; tidal at every budget for every selection-layer choice; quest at every budget.
std::vector<EvalConfig> make_eval_configs(const std::vector<int64_t>& budgets,
                                          const std::vector<std::vector<int64_t>>& selection_choices, bool with_quest);

// Prefills all prompt tokens but the last with full attention; then, per configuration, a
// fork decodes the last prompt token and greedily the answer (stopping at the first wrong
// token), so every answer token is predicted by a decode step under that configuration.
// Returns, per configuration, whether the whole answer came out.
std::vector<bool> score_passkey(Engine& engine, const std::vector<int32_t>& prompt, const std::vector<int32_t>& answer,
                                const std::vector<EvalConfig>& configs);

struct NllSum {
  double nll = 0.0;    // sum of -log p(token) in nats
  int64_t tokens = 0;
};

// Teacher-forced negative log-likelihood of window[prefix..] : window[0, prefix - 1) is
// prefilled with full attention; then tokens window[prefix - 1 .. end - 1) are decoded one by
// one under each configuration and score the next token. Element 0 of the result is the
// same tokens scored from one full-attention prefill of the whole window (all logits), a
// reference the `full` decode must match.
std::vector<NllSum> score_perplexity(Engine& engine, const std::vector<int32_t>& window, int64_t prefix,
                                     const std::vector<EvalConfig>& configs);

// -log softmax(logits)[token], in double precision.
double negative_log_likelihood(const float* logits, int64_t vocab, int32_t token);
int32_t argmax_token(const std::vector<float>& logits);

}  // namespace tidal::cli
