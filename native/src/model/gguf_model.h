// A GGUF model file seen as the engine sees a Hugging Face folder: a ModelConfig, tensors
// under Hugging Face names (model.layers.N.self_attn.q_proj.weight, ...) in row-major
// order, and the tokenizer metadata needed to build a tokenizer.json later.
//
// Tensor names: GGUF's "blk.N.attn_q.weight" style maps to the Hugging Face name (see
// gguf_to_hf_tensor_name). Shapes: GGUF lists dimensions innermost first, so the row-major
// shape is ne reversed; the bytes need no reordering.
//
// Q/K rows of llama-architecture files: the llama.cpp converter reorders the rows of each
// attention head of q_proj and k_proj (weights and biases) so that its RoPE, which rotates
// adjacent pairs (x[2j], x[2j+1]), matches Hugging Face's rotate-half RoPE, which rotates
// (x[j], x[j + D/2]). Within a head of D rows, GGUF row 2j + i holds Hugging Face row
// i * D/2 + j (i in {0, 1}, j < D/2). Loading undoes this, so the tensors equal the
// original checkpoint's. qwen2 files are written without the reordering.
//
// Llama 3 RoPE scaling: GGUF files carry it as `rope_freqs.weight`, one divisor per rotated
// pair, instead of the parameters. gguf_model_config takes the frequencies as the file gives
// them, theta^(-2i/d) / divisor_i, and reports the scaling as "per-pair".
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/model_config.h"
#include "model/weight_store.h"

namespace tidal {

struct GgufTokenizerMetadata {
  std::string model;                 // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte BPE), ...
  std::string pre;                   // tokenizer.ggml.pre: pre-tokenizer name ("llama-bpe", "qwen2", ...)
  std::vector<std::string> tokens;   // tokenizer.ggml.tokens
  std::vector<float> scores;         // tokenizer.ggml.scores, empty when absent
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type, empty when absent
  std::vector<std::string> merges;   // tokenizer.ggml.merges, empty when absent
  std::optional<int64_t> bos_id;
  std::optional<int64_t> eos_id;
  std::optional<int64_t> eot_id;  // tokenizer.ggml.eot_token_id
  std::optional<int64_t> unknown_id;
  std::optional<int64_t> padding_id;
  std::optional<bool> add_bos;  // tokenizer.ggml.add_bos_token
  std::optional<bool> add_eos;
  std::optional<bool> add_space_prefix;                     // tokenizer.ggml.add_space_prefix (SentencePiece)
  std::string chat_template;                                // tokenizer.chat_template, empty when absent
  std::map<std::string, std::string> named_chat_templates;  // tokenizer.chat_template.<name>
};

// Reads the tokenizer.* keys. Throws tidal::ModelError naming the key for a wrong value
// type, arrays whose lengths disagree with the token list, or ids outside the vocabulary.
GgufTokenizerMetadata read_gguf_tokenizer(const GgufContents& gguf);

// Builds the ModelConfig of a llama or qwen2 GGUF file from `<arch>.*` metadata and tensor
// shapes, with its rope_frequencies resolved. Throws tidal::ModelError for other
// architectures (listing the supported ones), missing or out-of-range fields (naming the
// key), unsupported RoPE scaling, and a rope_freqs.weight of the wrong shape or with a
// zero, negative or non-finite divisor.
ModelConfig gguf_model_config(const GgufContents& gguf);

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; "" for names without
// a Hugging Face counterpart (rope_freqs.weight, unknown tensors).
std::string gguf_to_hf_tensor_name(const std::string& gguf_name);

// The inverse mapping; "" for names without a GGUF counterpart.
std::string hf_to_gguf_tensor_name(const std::string& hf_name);

// Rows of one tensor reordered as the llama.cpp converter does for llama Q/K (`heads` heads
// of rows/heads rows each, `row_elements` values per row; 1 for a bias), and its inverse.
// Exposed for tests and for writers. Throws tidal::ModelError when rows do not split into
// heads of an even size.
void gguf_permute_qk_rows(const float* hf_rows, float* gguf_rows, int64_t rows, int64_t row_elements, int64_t heads);
void gguf_unpermute_qk_rows(const float* gguf_rows, float* hf_rows, int64_t rows, int64_t row_elements, int64_t heads);

struct GgufLoadOptions {
  // Block-quantised matrices (Q4_0 ... Q6_K) stay in their blocks, as views into the file (the
  // CPU products read them block by block; the CUDA backend converts them as it uploads).
  // Off, or for a quantised vector, they are dequantised when first used.
  bool keep_quantized = true;
  // What dequantised tensors become: F32 keeps every dequantised value exactly; F16 / BF16
  // halve the memory at a rounding of each value. F32/F16/BF16 tensors in the file keep their
  // own type.
  DType dequantized_dtype = DType::F32;
};

class GgufModel {
 public:
  // Opens and validates the file, builds the config and tokenizer metadata, and maps every
  // tensor name. Throws tidal::ModelError.
  static GgufModel open(const std::string& path, const GgufLoadOptions& options = {});

  GgufModel(GgufModel&&) noexcept;
  GgufModel& operator=(GgufModel&&) noexcept;
  ~GgufModel();

  const ModelConfig& config() const;
  const GgufTokenizerMetadata& tokenizer() const;
  const GgufFile& file() const;
  // Hugging Face names of every mapped tensor, sorted.
  std::vector<std::string> names() const;
  // GGUF tensors without a Hugging Face counterpart (e.g. rope_freqs.weight).
  std::vector<std::string> unmapped_names() const;
  // Per-pair RoPE frequency divisors from rope_freqs.weight; empty when absent.
  const std::vector<float>& rope_freq_factors() const;

  // The tensor under its Hugging Face name, or null. F32/F16/BF16 tensors and (with
  // options.keep_quantized) quantised matrices are views straight into the mapping, except
  // llama Q/K, whose rows are reordered into a copy of the same type; other quantised tensors
  // are dequantised (to options.dequantized_dtype) on first use and kept. Views stay valid while the model lives; safe
  // to call from many threads. Throws tidal::ModelError when the stored type cannot be converted.
  const TensorView* find(const std::string& hf_name) const;

 private:
  struct State;
  GgufModel();
  std::unique_ptr<State> state_;
};

}  // namespace tidal
