#include "tidal/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "engine/attention_plan.h"
#include "engine/backend_factory.h"
#include "engine/engine_impl.h"
#include "engine/sampler.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"

namespace tidal {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Length:
      return "length";
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Cancelled:
      return "cancelled";
    case FinishReason::Callback:
      return "callback";
    case FinishReason::ContextFull:
      return "context_full";
  }
  return "unknown";
}

namespace {

void validate_config(const ModelConfig& config) {
  auto positive = [](const char* field, int64_t value) {
    if (value <= 0)
      throw ModelError(std::string("model config field ") + field + " must be positive, got " + std::to_string(value));
  };
  positive("vocab_size", config.vocab_size);
  positive("hidden_size", config.hidden_size);
  positive("intermediate_size", config.intermediate_size);
  positive("num_hidden_layers", config.num_layers);
  positive("num_attention_heads", config.num_heads);
  positive("num_key_value_heads", config.num_kv_heads);
  positive("head_dim", config.head_dim);
  positive("max_position_embeddings", config.max_position_embeddings);
  if (config.num_heads % config.num_kv_heads != 0)
    throw ModelError("num_attention_heads (" + std::to_string(config.num_heads) +
                     ") is not a multiple of num_key_value_heads (" + std::to_string(config.num_kv_heads) + ")");
  if (config.head_dim % 2 != 0)
    throw ModelError("head_dim must be even for rotary embeddings, got " + std::to_string(config.head_dim));
  check_rope_frequencies(config);
}

}  // namespace

Sequence& Engine::Impl::find(SequenceId id) {
  auto it = sequences.find(id);
  if (it == sequences.end())
    throw RequestError("unknown sequence " + std::to_string(id) + " (never created, or already released)");
  return *it->second;
}

SequenceId Engine::Impl::add(std::unique_ptr<Sequence> sequence) {
  const SequenceId id = next_id++;
  sequences[id] = std::move(sequence);
  sequence_count.store(static_cast<int64_t>(sequences.size()));
  return id;
}

void Engine::Impl::check_tokens(const int32_t* tokens, size_t count) const {
  for (size_t i = 0; i < count; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab())
      throw RequestError("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                         " is outside the vocabulary [0, " + std::to_string(vocab()) + ")");
}

void Engine::Impl::check_room(const Sequence& sequence, size_t extra) const {
  const int64_t wanted = static_cast<int64_t>(sequence.tokens.size() + extra);
  if (wanted > info.max_context)
    throw RequestError("sequence of " + std::to_string(wanted) + " tokens would exceed the context limit of " +
                       std::to_string(info.max_context) + " tokens; trim or fork the sequence, or raise max_context");
}

int64_t Engine::Impl::prefill_chunk(int64_t requested) const {
  if (requested < 0)
    throw RequestError("prefill chunk must be >= 0 tokens (0 = the engine's prefill_chunk), got " +
                       std::to_string(requested));
  return requested > 0 ? requested : options.prefill_chunk;
}

void Engine::Impl::record_prefill(int64_t tokens, double seconds) {
  std::lock_guard<std::mutex> lock(stats_mutex);
  stats.tokens_prefilled += tokens;
  stats.prefill_seconds += seconds;
}

void Engine::Impl::record_decode(double seconds, const AttentionPlan& plan, const ForwardStats& forward,
                                 int64_t context) {
  std::lock_guard<std::mutex> lock(stats_mutex);
  stats.tokens_decoded += 1;
  stats.decode_seconds += seconds;
  SelectionStats& s = stats.last_selection;
  s.mode = plan.mode;
  s.context_length = context;
  s.token_budget = plan.mode == AttentionMode::Full ? context : plan.token_budget;
  s.selection_layers_run = forward.selection_layers;
  s.attended_fraction = forward.dense_positions > 0 ? static_cast<double>(forward.attended_positions) /
                                                          static_cast<double>(forward.dense_positions)
                                                    : 1.0;
}

void Engine::Impl::run_pending(Sequence& sequence, const std::atomic<bool>* cancel, std::vector<float>* all_logits,
                               int64_t chunk, const AttentionPlan* plan) {
  if (plan && !plan->sparse_prefill) plan = nullptr;
  if (plan)
    if (const std::string refusal = backend->sparse_prefill_refusal(*plan); !refusal.empty())
      throw RequestError("sparse prefill (attention.sparse_prefill) cannot run here: " + refusal +
                         " (the CPU backend runs every mode)");
  int64_t pending = sequence.pending();
  if (pending == 0) {
    if (sequence.logits_valid) {
      if (all_logits) *all_logits = sequence.logits;
      return;
    }
    if (sequence.tokens.empty()) throw RequestError("the sequence is empty: give it tokens to prefill first");
    // Logits were dropped by a trim or a compaction: run the last token again.
    trim_cache(sequence, sequence.cache->length() - 1);
    pending = 1;
  }
  const int64_t start = sequence.cache->length();
  const bool logits_were_valid = sequence.logits_valid;
  const auto started = Clock::now();
  std::vector<float> last(static_cast<size_t>(vocab()));
  if (all_logits) all_logits->assign(static_cast<size_t>(pending * vocab()), 0.0f);
  try {
    sequence.cache->prepare_for(start + pending);  // one allocation for the whole prefill (CUDA)
    for (int64_t done = 0; done < pending;) {
      if (cancel && cancel->load())
        throw CancelledError("prefill cancelled after " + std::to_string(done) + " of " + std::to_string(pending) +
                             " tokens; the sequence was left as it was");
      const int64_t n = std::min<int64_t>(chunk, pending - done);
      const int32_t* tokens = sequence.tokens.data() + start + done;
      if (all_logits) {
        backend->forward(*sequence.cache, tokens, n, plan, LogitsWanted::All, all_logits->data() + done * vocab(),
                         nullptr, cancel);
      } else {
        const bool final_chunk = done + n == pending;
        backend->forward(*sequence.cache, tokens, n, plan, final_chunk ? LogitsWanted::Last : LogitsWanted::None,
                         last.data(), nullptr, cancel);
      }
      done += n;
    }
  } catch (...) {
    // Back to the state before the call, whose logits (still stored) apply again.
    trim_cache(sequence, start);
    sequence.logits_valid = logits_were_valid;
    throw;
  }
  // KV written under sparse attention: a KV-cache correction recomputes it.
  if (plan) sequence.first_sparse_position = std::min(sequence.first_sparse_position, start);
  if (all_logits)
    sequence.logits.assign(all_logits->end() - vocab(), all_logits->end());
  else
    sequence.logits = std::move(last);
  sequence.logits_valid = true;
  record_prefill(pending, seconds_since(started));
}

void Engine::Impl::trim_cache(Sequence& sequence, int64_t length) {
  if (length < sequence.cache->length()) {
    sequence.cache->trim(length);
    sequence.logits_valid = false;
  }
  if (sequence.first_sparse_position >= length) sequence.first_sparse_position = Sequence::kNoSparsePosition;
}

void Engine::Impl::decode_last(Sequence& sequence, const AttentionPlan& plan, const std::atomic<bool>* cancel,
                               int64_t chunk) {
  const int32_t token = sequence.tokens.back();
  if (sequence.pending() > 1) {
    sequence.tokens.pop_back();
    try {
      run_pending(sequence, cancel, nullptr, chunk > 0 ? chunk : options.prefill_chunk, &plan);
    } catch (...) {
      sequence.tokens.push_back(token);
      throw;
    }
    sequence.tokens.push_back(token);
  }
  if (cancel && cancel->load())
    throw CancelledError("cancelled before the decode step of the last token; the tokens before it were prefilled");
  const int64_t position = sequence.cache->length();
  const auto started = Clock::now();
  std::vector<float> logits(static_cast<size_t>(vocab()));
  ForwardStats forward;
  backend->forward(*sequence.cache, &token, 1, &plan, LogitsWanted::Last, logits.data(), &forward);
  sequence.logits = std::move(logits);
  sequence.logits_valid = true;
  if (plan.mode != AttentionMode::Full)
    sequence.first_sparse_position = std::min(sequence.first_sparse_position, position);
  record_decode(seconds_since(started), plan, forward, position + 1);
}

void Engine::Impl::correct_sparse_entries(Sequence& sequence) {
  if (sequence.first_sparse_position >= sequence.cache->length()) return;
  trim_cache(sequence, sequence.first_sparse_position);
  run_pending(sequence, nullptr, nullptr, options.prefill_chunk);
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::from_tensors(const ModelConfig& config, std::shared_ptr<const TensorSource> tensors,
                                             const EngineOptions& options) {
  if (!tensors) throw RequestError("no tensors given to Engine::from_tensors");
  require_available_backend(options.backend);
  if (options.threads < 0) throw RequestError("threads must be >= 0 (0 = all hardware threads)");
  if (options.prefill_chunk < 0) throw RequestError("prefill_chunk must be >= 0 tokens (0 = the backend's default)");
  validate_config(config);
  // Sliding-window attention is not implemented; within the window it equals full
  // attention, so the context is capped at the window instead of computing wrong logits.
  int64_t model_limit = config.max_position_embeddings;
  std::string limit_reason = "the model's max_position_embeddings";
  if (config.sliding_window > 0 && config.sliding_window < model_limit) {
    model_limit = config.sliding_window;
    limit_reason = "the model's sliding_window, which this engine does not apply beyond its length";
  }
  if (options.max_context < 0 || options.max_context > model_limit)
    throw RequestError("max_context " + std::to_string(options.max_context) + " is outside [0, " +
                       std::to_string(model_limit) + "] (" + limit_reason + "; 0 = that maximum)");

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.prefill_chunk == 0)
    impl->options.prefill_chunk = options.backend == "cuda" ? kCudaPrefillChunk : kCpuPrefillChunk;
  impl->config = config;
  impl->tensors = std::move(tensors);
  impl->weights = bind_model_weights(config, *impl->tensors);
  impl->backend = create_backend(impl->config, impl->weights, options);

  ModelInfo& info = impl->info;
  info.architecture = architecture_name(config.architecture);
  info.num_layers = config.num_layers;
  info.num_heads = config.num_heads;
  info.num_kv_heads = config.num_kv_heads;
  info.head_dim = config.head_dim;
  info.hidden_size = config.hidden_size;
  info.intermediate_size = config.intermediate_size;
  info.vocab_size = config.vocab_size;
  info.max_position_embeddings = config.max_position_embeddings;
  info.max_context = options.max_context > 0 ? options.max_context : model_limit;
  info.max_context = std::min<int64_t>(info.max_context, std::numeric_limits<int32_t>::max());
  info.dtype = impl->weights.dtype;
  info.weight_bytes = impl->weights.bytes;
  info.kv_bytes_per_token = impl->backend->kv_bytes_per_token();
  for (int64_t id : config.eos_token_ids) {
    info.eos_token_ids.push_back(static_cast<int32_t>(id));
    impl->eos.insert(static_cast<int32_t>(id));
  }
  info.backend = impl->backend->name();
  info.threads = impl->backend->threads();
  impl->stats.weight_bytes = info.weight_bytes;
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const ModelInfo& Engine::model_info() const { return impl_->info; }

SequenceId Engine::create_sequence() {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  auto sequence = std::make_unique<Sequence>();
  sequence->cache = impl_->backend->create_kv_cache();
  return impl_->add(std::move(sequence));
}

SequenceId Engine::fork_sequence(SequenceId source_id, int64_t length) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Sequence& source = impl_->find(source_id);
  const int64_t source_length = static_cast<int64_t>(source.tokens.size());
  if (length < 0) length = source_length;
  if (length > source_length)
    throw RequestError("cannot fork " + std::to_string(length) + " tokens of sequence " + std::to_string(source_id) +
                       ", which holds " + std::to_string(source_length));
  auto sequence = std::make_unique<Sequence>();
  sequence->tokens.assign(source.tokens.begin(), source.tokens.begin() + length);
  const int64_t cached = std::min(length, source.cache->length());
  sequence->cache = source.cache->fork(cached);
  if (cached == source.cache->length() && source.logits_valid) {
    sequence->logits = source.logits;
    sequence->logits_valid = true;
  }
  if (source.first_sparse_position < cached) sequence->first_sparse_position = source.first_sparse_position;
  return impl_->add(std::move(sequence));
}

void Engine::trim_sequence(SequenceId id, int64_t length) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Sequence& sequence = impl_->find(id);
  if (length < 0 || length > static_cast<int64_t>(sequence.tokens.size()))
    throw RequestError("cannot trim sequence " + std::to_string(id) + " of " + std::to_string(sequence.tokens.size()) +
                       " tokens to " + std::to_string(length));
  sequence.tokens.resize(static_cast<size_t>(length));
  impl_->trim_cache(sequence, std::min(length, sequence.cache->length()));
}

void Engine::release_sequence(SequenceId id) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  impl_->find(id);
  impl_->sequences.erase(id);
  impl_->sequence_count.store(static_cast<int64_t>(impl_->sequences.size()));
}

int64_t Engine::sequence_length(SequenceId id) const {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  return static_cast<int64_t>(impl_->find(id).tokens.size());
}

std::vector<int32_t> Engine::sequence_tokens(SequenceId id) const {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  return impl_->find(id).tokens;
}

std::vector<float> Engine::prefill(SequenceId id, const std::vector<int32_t>& tokens, const PrefillOptions& options,
                                   const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Sequence& sequence = impl_->find(id);
  impl_->check_tokens(tokens.data(), tokens.size());
  impl_->check_room(sequence, tokens.size());
  const int64_t chunk = impl_->prefill_chunk(options.chunk);
  const AttentionPlan plan = make_attention_plan(options.attention, impl_->config.num_layers);
  const size_t old_size = sequence.tokens.size();
  sequence.tokens.insert(sequence.tokens.end(), tokens.begin(), tokens.end());
  try {
    if (options.all_logits) {
      std::vector<float> all;
      impl_->run_pending(sequence, cancel, &all, chunk, &plan);
      return all;
    }
    impl_->run_pending(sequence, cancel, nullptr, chunk, &plan);
    return sequence.logits;
  } catch (...) {
    sequence.tokens.resize(old_size);
    throw;
  }
}

std::vector<float> Engine::decode(SequenceId id, int32_t token, const AttentionOptions& attention) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Sequence& sequence = impl_->find(id);
  impl_->check_tokens(&token, 1);
  const AttentionPlan plan = make_attention_plan(attention, impl_->config.num_layers);
  impl_->check_room(sequence, 1);
  sequence.tokens.push_back(token);
  try {
    impl_->decode_last(sequence, plan);
  } catch (...) {
    sequence.tokens.pop_back();
    impl_->trim_cache(sequence, std::min<int64_t>(sequence.cache->length(), sequence.tokens.size()));
    throw;
  }
  return sequence.logits;
}

GenerateResult Engine::generate(SequenceId id, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                                const TokenCallback& on_token, const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Impl& engine = *impl_;
  Sequence& sequence = engine.find(id);
  engine.check_tokens(prompt.data(), prompt.size());
  validate_sampling_options(options.sampling);
  if (options.max_tokens < 0) throw RequestError("max_tokens must be >= 0");
  for (int32_t stop : options.stop_tokens) engine.check_tokens(&stop, 1);
  const AttentionPlan plan = make_attention_plan(options.attention, engine.config.num_layers);
  const int64_t chunk = engine.prefill_chunk(options.prefill_chunk);
  engine.check_room(sequence, prompt.size());

  GenerateResult result;
  const auto prefill_started = Clock::now();
  const size_t old_size = sequence.tokens.size();
  result.prompt_tokens = static_cast<int64_t>(prompt.size()) + sequence.pending();
  sequence.tokens.insert(sequence.tokens.end(), prompt.begin(), prompt.end());
  // Back to the tokens before the call; KV computed for the prompt goes with them.
  auto restore = [&engine, &sequence, old_size] {
    sequence.tokens.resize(old_size);
    engine.trim_cache(sequence, std::min<int64_t>(sequence.cache->length(), static_cast<int64_t>(old_size)));
  };
  const bool sparse_first_step =
      options.attention.sparse_first_step && plan.mode != AttentionMode::Full && sequence.pending() > 0;
  try {
    // With the sparse first step: all but the last token densely, the last one as a decode step.
    if (sparse_first_step)
      engine.decode_last(sequence, plan, cancel, chunk);
    else
      engine.run_pending(sequence, cancel, nullptr, chunk, &plan);
  } catch (const CancelledError&) {
    restore();
    result.finish_reason = FinishReason::Cancelled;
    return result;
  } catch (...) {
    restore();
    throw;
  }
  result.prefill_seconds = seconds_since(prefill_started);

  std::set<int32_t> stops(options.stop_tokens.begin(), options.stop_tokens.end());
  if (options.stop_at_eos) stops.insert(engine.eos.begin(), engine.eos.end());
  const bool correcting = options.attention.mode == AttentionMode::Tidal && options.attention.correction_interval > 0;
  Sampler sampler(options.sampling);
  int64_t since_correction = 0, corrections = 0;
  const auto decode_started = Clock::now();
  auto cancelled = [cancel] { return cancel && cancel->load(); };
  for (;;) {
    if (static_cast<int64_t>(result.tokens.size()) >= options.max_tokens) {
      result.finish_reason = FinishReason::Length;
      break;
    }
    if (cancelled()) {
      result.finish_reason = FinishReason::Cancelled;
      break;
    }
    if (static_cast<int64_t>(sequence.tokens.size()) >= engine.info.max_context) {
      result.finish_reason = FinishReason::ContextFull;
      break;
    }
    const int32_t token = sampler.sample(sequence.logits.data(), engine.vocab());
    sequence.tokens.push_back(token);
    result.tokens.push_back(token);
    const bool keep_going = on_token ? on_token(token) : true;
    if (stops.count(token)) {
      result.finish_reason = FinishReason::Stop;
      break;
    }
    if (!keep_going) {
      result.finish_reason = FinishReason::Callback;
      break;
    }
    // The last token needs no forward pass: it stays pending for the next call.
    if (static_cast<int64_t>(result.tokens.size()) >= options.max_tokens) {
      result.finish_reason = FinishReason::Length;
      break;
    }
    if (cancelled()) {
      result.finish_reason = FinishReason::Cancelled;
      break;
    }
    engine.decode_last(sequence, plan);
    if (correcting && ++since_correction >= options.attention.correction_interval) {
      engine.correct_sparse_entries(sequence);
      since_correction = 0;
      ++corrections;
    }
  }
  result.decode_seconds = seconds_since(decode_started);
  {
    std::lock_guard<std::mutex> stats_lock(engine.stats_mutex);
    engine.stats.last_selection.corrections = corrections;
  }
  return result;
}

UsageStats Engine::usage() const {
  UsageStats out;
  {
    std::lock_guard<std::mutex> lock(impl_->stats_mutex);
    out = impl_->stats;
  }
  out.kv_bytes = impl_->backend->kv_bytes_in_use();
  out.kv_bytes_peak = impl_->backend->kv_bytes_peak();
  out.sequences = impl_->sequence_count.load();
  return out;
}

}  // namespace tidal
