// The decode engine's public C++ API: load a model, keep sequences (token history + KV
// cache), prefill, decode with full, TidalDecode or Quest attention, sample, stream tokens.
//
// Thread safety: an Engine serves one request at a time. Every method that touches
// sequences or runs the model takes the engine's request mutex, so calls from several
// threads are safe but run one after another. model_info() and usage() never wait for a
// running request. A generate() in progress is stopped from another thread through its
// `cancel` flag (checked before every decode step and between the layers of each prefill pass) or by
// returning false from its token callback.
//
// Errors are the tidal::Error family of tidal/error.h: ModelError (the model folder),
// RequestError (arguments, unknown sequences, context too long), OutOfMemoryError (the KV
// cache could not grow; the message says how many bytes were asked), CancelledError.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tidal {

struct ModelConfig;
class TensorSource;
class WebGpuExecutor;  // webgpu/webgpu_tape.h

// Default tokens per prefill pass. On CUDA, long passes are what makes prefill fast (the matrix
// products and the attention kernel fill the GPU); a cancel still stops a pass within about two
// layers, a few ms at this size. On the CPU, passes long enough for the matrix kernels' reuse.
inline constexpr int64_t kCudaPrefillChunk = 2048;
inline constexpr int64_t kCpuPrefillChunk = 256;

struct EngineOptions {
  std::string backend = "cpu";  // "cpu" (the reference backend)
  int threads = 0;              // 0 = every hardware thread
  int64_t max_context = 0;      // tokens per sequence; 0 = the model's maximum (max_position_embeddings,
                                // or sliding_window when smaller: sliding windows are not applied)
  // Tokens per prefill forward pass; 0 = the backend's default (kCudaPrefillChunk on CUDA,
  // kCpuPrefillChunk on the CPU). A cancel takes effect between the layers of a pass.
  int64_t prefill_chunk = 0;
  size_t max_kv_bytes = 0;  // KV cache memory cap over all sequences; 0 = none
  // CPU backend only: round every K/V row written to the cache as the FP8 E4M3 cache (one f16
  // scale per position and KV head, kv_fp8 below) stores it (the cache still holds floats, so this
  // measures the accuracy of such a cache, not its memory: `tidal-eval --kv-fp8-simulation`).
  bool kv_fp8_simulation = false;
  // CUDA backend: keep the KV cache as FP8 E4M3 codes with an f16 scale per (position, KV head)
  // row, half of bf16's memory (the rounding kv_fp8_simulation measures). Refused by the cpu and
  // webgpu backends; "auto" applies it when it picks CUDA (the CPU fallback keeps floats).
  bool kv_fp8 = false;
  // The device the "webgpu" backend records its ops for (the Node addon supplies one).
  std::shared_ptr<WebGpuExecutor> webgpu_executor;
};

struct ModelInfo {
  std::string architecture;  // "llama", "mistral", "qwen2", "qwen3"
  int64_t num_layers = 0;
  int64_t num_heads = 0;  // query heads
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t max_context = 0;  // the per-sequence cap this engine enforces
  std::string dtype;        // storage dtype of the matrices: "f32", "f16", "bf16", a quantised type ("q4_k") or "mixed"
  size_t weight_bytes = 0;  // bytes of the tensors the model uses
  size_t kv_bytes_per_token = 0;
  std::vector<int32_t> eos_token_ids;
  std::string backend;
  int threads = 0;
};

enum class AttentionMode { Full, Tidal, Quest };

// How the query heads of one GQA group pick tokens in a tidal selection layer.
enum class SelectionPolicy {
  PerQueryHead,  // each query head keeps its own top-k (the reference behaviour)
  PerKvHeadMax,  // one list per KV head, ranked by the max score over its query heads
  PerKvHeadSum,  // one list per KV head, ranked by the summed scores of its query heads
};

// Attention used by decode steps. Prefill is always full causal attention.
struct AttentionOptions {
  AttentionMode mode = AttentionMode::Full;
  // Tokens attended per query head in sparse layers, the current token included
  // (tidal: top budget-1 positions + current; quest: budget/16 pages, at least one).
  int64_t token_budget = 256;
  // Tidal and Quest: layers [0, dense_layers) use full attention.
  int64_t dense_layers = 2;
  // Tidal: layers that run full attention and re-select positions for the layers after
  // them. Empty = preset {dense_layers, num_layers * 13 / 32} (layers 2 and 13 of 32; for
  // shallow models the last layer re-selects, {2, 5} of 6: engine/attention_plan.cpp).
  std::vector<int64_t> selection_layers;
  SelectionPolicy selection_policy = SelectionPolicy::PerQueryHead;
  // Tidal: every N generated tokens, recompute the K/V of the last N tokens with full
  // attention and overwrite their cache entries. 0 = off.
  int64_t correction_interval = 0;
  // Tidal and Quest: generate() runs the prompt's last token, whose logits give the first
  // generated token, as a decode step with this plan instead of in the dense prefill. That
  // saves one full-attention pass over the whole cache per request (about half of a short
  // request's time to first token at 100K); the first token's logits and that token's K/V are
  // then sparse ones, as every later step's are (the correction above covers it). Off: the
  // TidalDecode setup, where the whole prompt is prefilled with full attention.
  bool sparse_first_step = false;
  // Tidal and Quest: prompt tokens prefilled after a cached context (what a keystroke
  // recomputes) run under this plan too, not with full attention. In a sparse layer each of a
  // pass's tokens attends to the positions chosen for the whole pass among those before it
  // (tidal: at the last selection layer, the top budget-1 by the highest log-softmax weight any of
  // the pass's tokens gives them; quest: the budget/16 pages whose key bound is highest for any
  // of them), and to the pass's own tokens up to itself. The CPU backend runs it; the others
  // refuse it (RequestError). Off: prefill is full attention.
  bool sparse_prefill = false;
};

struct SamplingOptions {
  float temperature = 0.0f;  // <= 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
  float top_p = 1.0f;        // keep the smallest set of most likely tokens with mass >= top_p
  uint64_t seed = 0;         // same seed, same options, same logits -> same tokens
};

struct GenerateOptions {
  int64_t max_tokens = 128;
  std::vector<int32_t> stop_tokens;  // a stop token is reported, then generation ends
  bool stop_at_eos = true;           // the model's eos ids count as stop tokens
  SamplingOptions sampling;
  AttentionOptions attention;
  int64_t prefill_chunk = 0;  // tokens per prefill pass of the prompt; 0 = EngineOptions::prefill_chunk
};

enum class FinishReason {
  Length,       // max_tokens reached
  Stop,         // a stop (or eos) token was produced
  Cancelled,    // the cancel flag was set
  Callback,     // the token callback returned false
  ContextFull,  // the sequence reached max_context
};

const char* finish_reason_name(FinishReason reason);

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated tokens, in order (a final stop token included)
  FinishReason finish_reason = FinishReason::Length;
  int64_t prompt_tokens = 0;  // tokens prefilled by this call
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

// Called with every generated token as soon as it is sampled, on the thread running
// generate() and while the engine's request mutex is held: it may call model_info() and
// usage(), not other Engine methods. Return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

using SequenceId = uint64_t;

// What the last decode step's attention read.
struct SelectionStats {
  AttentionMode mode = AttentionMode::Full;
  int64_t context_length = 0;  // positions in the cache at that step
  int64_t token_budget = 0;
  int64_t selection_layers_run = 0;  // tidal selection (or quest scoring) layers
  double attended_fraction = 1.0;    // positions read / positions full attention would read
  int64_t corrections = 0;           // KV-cache corrections run by the last generate()
};

struct UsageStats {
  size_t weight_bytes = 0;
  size_t kv_bytes = 0;  // KV cache memory in use over all sequences (shared pages once)
  size_t kv_bytes_peak = 0;
  int64_t sequences = 0;
  int64_t tokens_prefilled = 0;
  int64_t tokens_decoded = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  SelectionStats last_selection;
};

struct PrefillOptions {
  // Return [count][vocab] logits of every token processed by the call, not only the last
  // (when nothing needed processing: the last token's logits, one row).
  bool all_logits = false;
  // Tokens per forward pass (cancellation is checked between layers); 0 = EngineOptions::prefill_chunk.
  int64_t chunk = 0;
  // With attention.sparse_prefill (tidal or quest), the passes run sparse (AttentionOptions).
  AttentionOptions attention;
};

class Engine {
 public:
  // Loads `<model_dir>/config.json` and its safetensors weights. Throws ModelError.
  static std::unique_ptr<Engine> load(const std::string& model_dir, const EngineOptions& options = {});

  // Builds an engine over tensors already in memory (tests, synthetic benchmarks). The
  // source is validated like a model folder and kept alive by the engine.
  static std::unique_ptr<Engine> from_tensors(const ModelConfig& config, std::shared_ptr<const TensorSource> tensors,
                                              const EngineOptions& options = {});

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelInfo& model_info() const;

  // Sequences: a token history and the KV cache of the tokens processed so far.
  SequenceId create_sequence();
  // A new sequence holding the first `length` tokens of `source` (-1: all of them); their KV
  // cache pages are shared with the source, not copied.
  SequenceId fork_sequence(SequenceId source, int64_t length = -1);
  // Keeps the first `length` tokens.
  void trim_sequence(SequenceId sequence, int64_t length);
  void release_sequence(SequenceId sequence);
  // Tokens in the sequence (prompt and generated; the last generated token may not be in
  // the KV cache yet, it is processed by the next call).
  int64_t sequence_length(SequenceId sequence) const;
  std::vector<int32_t> sequence_tokens(SequenceId sequence) const;

  // Appends `tokens` and runs them (and any token not yet processed) through the model with
  // full attention; returns the logits of the last token ([vocab]), or of every processed
  // token ([count][vocab]) with all_logits. Throws RequestError past max_context and
  // CancelledError when `cancel` is set, read between layers (the sequence is then left as it was).
  std::vector<float> prefill(SequenceId sequence, const std::vector<int32_t>& tokens,
                             const PrefillOptions& options = {}, const std::atomic<bool>* cancel = nullptr);

  // Appends one token and runs it with the given attention; returns its logits.
  std::vector<float> decode(SequenceId sequence, int32_t token, const AttentionOptions& attention = {});

  // Prefills `prompt` (may be empty when the sequence already holds tokens), then samples up
  // to max_tokens tokens, streaming each to `on_token`. A cancelled or stopped generation
  // returns normally with its finish reason and the tokens produced so far.
  GenerateResult generate(SequenceId sequence, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                          const TokenCallback& on_token = {}, const std::atomic<bool>* cancel = nullptr);

  // Context shift (llama.cpp's idea): keeps only `ranges` of the sequence's processed
  // positions, each (start, count) with count >= 1, ascending, disjoint and within [0,
  // processed length), moved down to follow each other from position 0. The token history
  // becomes the kept tokens in order; their values move unchanged and their keys are
  // re-rotated from the old position to the new one (RoPE rotations compose), Quest page
  // bounds are rebuilt from the first moved position. Tokens not processed yet are dropped,
  // and the last token's logits are recomputed by the next call that needs them. Approximate:
  // the moved K/V were computed attending to the tokens removed, which a fresh prefill of the
  // kept tokens would not see; in exchange it costs a copy of the moved K/V, not a forward pass.
  // Ranges that stay in place (a leading range from 0) cost nothing; an empty list empties
  // the sequence. Throws RequestError for bad ranges and OutOfMemoryError when K/V pages
  // shared with a fork cannot be copied, the sequence unchanged in both cases. Should the
  // move itself fail part-way (a device error), the sequence is released and the Error says so.
  void compact_sequence(SequenceId sequence, const std::vector<std::pair<int64_t, int64_t>>& ranges);

  // Writes the sequence (token history, the K/V of its processed tokens in the backend's own
  // storage, its last logits when valid) to `path`, for load_sequence after a restart. The
  // file is written as `path + ".tmp"` and renamed once complete, so `path` never holds a
  // partial file after a crash of this process. Returns the bytes written. Throws
  // RequestError when the file cannot be written (the .tmp file is removed). `cancel` is
  // checked before each piece of K/V is written: once set, the save stops with CancelledError
  // and leaves no file (a save of a long sequence takes seconds and holds the engine).
  size_t save_sequence(SequenceId sequence, const std::string& path, const std::atomic<bool>* cancel = nullptr);

  // A new sequence from a file save_sequence wrote for the same model on the same backend
  // (engine/kv_file.h has the format). Throws RequestError saying what is wrong: a missing
  // or unreadable file, not a Tidal KV file, another format version, another model (naming
  // the field that differs), another backend or KV dtype, a truncated or corrupt file, token
  // ids outside the vocabulary, more tokens than max_context; OutOfMemoryError when the
  // K/V would exceed max_kv_bytes or the device memory.
  SequenceId load_sequence(const std::string& path);

  UsageStats usage() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tidal
