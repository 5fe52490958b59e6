#include "eval_scoring.h"

#include <algorithm>
#include <cmath>

#include "tidal/error.h"

namespace tidal::cli {

namespace {

std::string join(const std::vector<int64_t>& values) {
  std::string out;
  for (int64_t v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

// Releases the sequence when it goes out of scope, so an exception leaks no KV cache.
struct ScopedSequence {
  Engine& engine;
  SequenceId id;
  ~ScopedSequence() { engine.release_sequence(id); }
};

}  // namespace

std::string EvalConfig::selection() const {
  return attention.mode == AttentionMode::Tidal ? join(attention.selection_layers) : "-";
}

std::string EvalConfig::label() const {
  switch (attention.mode) {
    case AttentionMode::Full: return "full";
    case AttentionMode::Tidal: return "tidal " + selection() + " b" + std::to_string(attention.token_budget);
    case AttentionMode::Quest: return "quest b" + std::to_string(attention.token_budget);
  }
  return "?";
}

std::vector<EvalConfig> make_eval_configs(const std::vector<int64_t>& budgets,
                                          const std::vector<std::vector<int64_t>>& selection_choices, bool with_quest) {
  std::vector<EvalConfig> configs;
  EvalConfig full;
  full.attention.mode = AttentionMode::Full;
  configs.push_back(full);
  for (const auto& layers : selection_choices)
    for (int64_t budget : budgets) {
      EvalConfig c;
      c.attention.mode = AttentionMode::Tidal;
      c.attention.token_budget = budget;
      c.attention.selection_layers = layers;
      configs.push_back(c);
    }
  if (with_quest)
    for (int64_t budget : budgets) {
      EvalConfig c;
      c.attention.mode = AttentionMode::Quest;
      c.attention.token_budget = budget;
      configs.push_back(c);
    }
  return configs;
}

int32_t argmax_token(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

double negative_log_likelihood(const float* logits, int64_t vocab, int32_t token) {
  double max = logits[0];
  for (int64_t i = 1; i < vocab; ++i) max = std::max(max, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  return std::log(sum) + max - static_cast<double>(logits[token]);
}

std::vector<bool> score_passkey(Engine& engine, const std::vector<int32_t>& prompt, const std::vector<int32_t>& answer,
                                const std::vector<EvalConfig>& configs) {
  if (prompt.size() < 2 || answer.empty()) throw RequestError("a passkey sample needs a prompt of 2+ tokens and an answer");
  ScopedSequence base{engine, engine.create_sequence()};
  engine.prefill(base.id, std::vector<int32_t>(prompt.begin(), prompt.end() - 1));
  std::vector<bool> correct;
  for (const EvalConfig& config : configs) {
    ScopedSequence fork{engine, engine.fork_sequence(base.id)};
    int32_t token = prompt.back();
    bool all = true;
    for (int32_t expected : answer) {
      token = argmax_token(engine.decode(fork.id, token, config.attention));
      if (token != expected) {
        all = false;
        break;
      }
    }
    correct.push_back(all);
  }
  return correct;
}

std::vector<NllSum> score_perplexity(Engine& engine, const std::vector<int32_t>& window, int64_t prefix,
                                     const std::vector<EvalConfig>& configs) {
  const int64_t length = static_cast<int64_t>(window.size());
  if (prefix < 2 || prefix >= length) throw RequestError("perplexity prefix must be in [2, window length)");
  const int64_t vocab = engine.model_info().vocab_size;
  std::vector<NllSum> out;
  {
    // Reference: one prefill of the whole window, all logits.
    ScopedSequence whole{engine, engine.create_sequence()};
    PrefillOptions options;
    options.all_logits = true;
    const std::vector<float> logits = engine.prefill(whole.id, window, options);
    NllSum sum;
    for (int64_t t = prefix - 1; t + 1 < length; ++t) {
      sum.nll += negative_log_likelihood(logits.data() + t * vocab, vocab, window[static_cast<size_t>(t + 1)]);
      ++sum.tokens;
    }
    out.push_back(sum);
  }
  ScopedSequence base{engine, engine.create_sequence()};
  engine.prefill(base.id, std::vector<int32_t>(window.begin(), window.begin() + (prefix - 1)));
  for (const EvalConfig& config : configs) {
    ScopedSequence fork{engine, engine.fork_sequence(base.id)};
    NllSum sum;
    for (int64_t t = prefix - 1; t + 1 < length; ++t) {
      const std::vector<float> logits = engine.decode(fork.id, window[static_cast<size_t>(t)], config.attention);
      sum.nll += negative_log_likelihood(logits.data(), vocab, window[static_cast<size_t>(t + 1)]);
      ++sum.tokens;
    }
    out.push_back(sum);
  }
  return out;
}

}  // namespace tidal::cli
