// A byte-level BPE encoder for a Hugging Face tokenizer.json of the kind the embedded model
// ships (Qwen2-style pre-tokenization, byte-level alphabet, ranked merges, added special
// tokens). It lets `tidal eval` build prompts from text; it is not a general tokenizer:
// load() rejects normalizers, other models and other pre-tokenizers with a message.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tidal::cli {

// Splits UTF-8 text the way the pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// does (leftmost, first alternative that matches). Invalid UTF-8 bytes count as one
// non-letter, non-number, non-space character each.
std::vector<std::string> pre_tokenize(const std::string& text);

bool is_unicode_letter(uint32_t code_point);
bool is_unicode_number(uint32_t code_point);
bool is_unicode_space(uint32_t code_point);

class BpeTokenizer {
 public:
  // Reads tokenizer.json. Throws tidal::ModelError naming what is unsupported.
  static BpeTokenizer load(const std::string& path);
  static BpeTokenizer from_json(const std::string& json_text, const std::string& description);

  // Special tokens written in the text become their ids; everything else is BPE-encoded.
  std::vector<int32_t> encode(const std::string& text) const;
  // Raw bytes of the tokens (special tokens as their text).
  std::string decode(const std::vector<int32_t>& ids) const;
  // Id of a vocabulary or added token given as text (byte-level form for vocabulary
  // entries, e.g. "Ċ"), or -1.
  int32_t token_id(const std::string& token) const;
  size_t vocab_size() const { return id_bytes_.size(); }

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> bytes_to_id_;   // raw bytes of a vocabulary token
  std::unordered_map<std::string, int32_t> text_to_id_;    // vocabulary key as written, and added tokens
  std::map<std::pair<std::string, std::string>, int32_t> merge_rank_;  // raw byte pieces -> rank
  std::vector<std::string> id_bytes_;                       // id -> raw bytes (or added token text)
  std::vector<std::pair<std::string, int32_t>> added_;      // added tokens, longest first
  mutable std::unordered_map<std::string, std::vector<int32_t>> word_cache_;
};

}  // namespace tidal::cli
