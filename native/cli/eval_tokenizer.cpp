#include "eval_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include "model/json.h"
#include "tidal/error.h"

namespace tidal::cli {

namespace {

struct CodePointRange {
  uint32_t first, last;
};
#include "eval_unicode_ranges.inc"

template <size_t N>
bool in_ranges(const CodePointRange (&table)[N], uint32_t cp) {
  const CodePointRange* end = table + N;
  const CodePointRange* it = std::upper_bound(table, end, cp, [](uint32_t v, const CodePointRange& r) { return v < r.first; });
  return it != table && cp <= (it - 1)->last;
}

// One decoded character: its code point (0xFFFFFFFF for an invalid byte) and byte span.
struct Char {
  uint32_t cp;
  size_t begin, end;
};

constexpr uint32_t kInvalid = 0xFFFFFFFFu;

std::vector<Char> decode_utf8(const std::string& s) {
  std::vector<Char> out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    uint32_t cp = length == 1 ? c : length == 2 ? (c & 0x1F) : length == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = length != 0 && i + length <= s.size();
    for (size_t k = 1; ok && k < length; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) ok = false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (ok && ((length == 2 && cp < 0x80) || (length == 3 && cp < 0x800) || (length == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
               (cp >= 0xD800 && cp <= 0xDFFF)))
      ok = false;
    if (!ok) {
      out.push_back({kInvalid, i, i + 1});
      ++i;
    } else {
      out.push_back({cp, i, i + length});
      i += length;
    }
  }
  return out;
}

bool letter(uint32_t cp) { return cp != kInvalid && is_unicode_letter(cp); }
bool number(uint32_t cp) { return cp != kInvalid && is_unicode_number(cp); }
bool space(uint32_t cp) { return cp != kInvalid && is_unicode_space(cp); }
bool line_break(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// Length in characters of the match starting at `at` (always >= 1).
size_t match_at(const std::vector<Char>& t, size_t at) {
  const size_t n = t.size();
  auto cp = [&](size_t i) { return i < n ? t[i].cp : kInvalid; };
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (cp(at) == '\'' && at + 1 < n) {
    auto lower = [](uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
    const uint32_t a = lower(cp(at + 1)), b = at + 2 < n ? lower(cp(at + 2)) : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  {
    size_t i = at;
    if (i < n && !line_break(cp(i)) && !letter(cp(i)) && !number(cp(i)) && i + 1 < n && letter(cp(i + 1))) ++i;
    if (i < n && letter(cp(i))) {
      while (i < n && letter(cp(i))) ++i;
      return i - at;
    }
  }
  // \p{N}
  if (number(cp(at))) return 1;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  {
    auto symbol = [&](size_t i) { return i < n && !space(cp(i)) && !letter(cp(i)) && !number(cp(i)); };
    size_t i = at;
    if (cp(i) == ' ' && symbol(i + 1)) ++i;
    if (symbol(i)) {
      while (symbol(i)) ++i;
      while (i < n && line_break(cp(i))) ++i;
      return i - at;
    }
  }
  // The whitespace alternatives all start with the maximal run of white space.
  size_t run_end = at;
  while (run_end < n && space(cp(run_end))) ++run_end;
  if (run_end > at) {
    // \s*[\r\n]+ : up to and including the last line break of the run
    for (size_t i = run_end; i > at; --i)
      if (line_break(cp(i - 1))) return i - at;
    // \s+(?!\S) : the whole run at the end of the text, else all but its last character
    if (run_end == n) return run_end - at;
    if (run_end - at >= 2) return run_end - at - 1;
    // \s+
    return run_end - at;
  }
  // No alternative matches (cannot happen: every character is a letter, number, space or
  // symbol); keep the character alone.
  return 1;
}

// GPT-2's reversible map from bytes to printable code points.
std::vector<uint32_t> byte_to_code_point() {
  std::vector<uint32_t> map(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    map[b] = printable ? b : next++;
  }
  return map;
}

// Byte-level token text ("Ġfoo") back to raw bytes (" foo"); throws on characters outside
// the byte alphabet.
std::string byte_level_to_bytes(const std::string& text, const std::string& description) {
  static const std::vector<uint32_t> forward = byte_to_code_point();
  static const std::vector<int> inverse = [] {
    std::vector<int> inv(512, -1);
    for (int b = 0; b < 256; ++b) inv[forward[static_cast<size_t>(b)]] = b;
    return inv;
  }();
  std::string out;
  for (const Char& c : decode_utf8(text)) {
    if (c.cp == kInvalid || c.cp >= inverse.size() || inverse[c.cp] < 0)
      throw ModelError(description + ": vocabulary entry '" + text +
                       "' is not in the byte-level alphabet; this tokenizer is not a byte-level BPE");
    out.push_back(static_cast<char>(inverse[c.cp]));
  }
  return out;
}

}  // namespace

bool is_unicode_letter(uint32_t cp) { return in_ranges(kLetterRanges, cp); }
bool is_unicode_number(uint32_t cp) { return in_ranges(kNumberRanges, cp); }
bool is_unicode_space(uint32_t cp) {
  // The White_Space property.
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

std::vector<std::string> pre_tokenize(const std::string& text) {
  const std::vector<Char> chars = decode_utf8(text);
  std::vector<std::string> pieces;
  size_t at = 0;
  while (at < chars.size()) {
    const size_t length = match_at(chars, at);
    const size_t begin = chars[at].begin, end = chars[at + length - 1].end;
    pieces.push_back(text.substr(begin, end - begin));
    at += length;
  }
  return pieces;
}

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError("cannot read " + path + "; pass --tokenizer with the model's tokenizer.json");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return from_json(buffer.str(), path);
}

BpeTokenizer BpeTokenizer::from_json(const std::string& json_text, const std::string& description) {
  const json::Value root = json::parse(json_text);
  auto unsupported = [&](const std::string& what) {
    return ModelError(description + ": " + what + "; `tidal eval` encodes only byte-level BPE tokenizers " +
                      "with Qwen2-style pre-tokenization (like the embedded model's)");
  };
  const json::Value* model = root.find("model");
  if (!model || !model->is_object()) throw unsupported("no \"model\" object");
  const json::Value* type = model->find("type");
  if (!type || !type->is_string() || type->as_string() != "BPE") throw unsupported("the model is not BPE");
  const json::Value* normalizer = root.find("normalizer");
  if (normalizer && !normalizer->is_null()) throw unsupported("it has a normalizer");
  const json::Value* pre = root.find("pre_tokenizer");
  if (!pre || json_text.find("ByteLevel") == std::string::npos ||
      json_text.find("\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+") == std::string::npos)
    throw unsupported("its pre-tokenizer is not the Qwen2 pattern followed by ByteLevel");

  BpeTokenizer t;
  const json::Value* vocab = model->find("vocab");
  if (!vocab || !vocab->is_object()) throw unsupported("model.vocab is not an object");
  int64_t max_id = -1;
  for (size_t i = 0; i < vocab->size(); ++i) max_id = std::max(max_id, (*vocab)[i].as_int());
  const json::Value* added = root.find("added_tokens");
  if (added && added->is_array())
    for (const json::Value& a : added->items()) max_id = std::max(max_id, a.find("id") ? a.find("id")->as_int() : -1);
  if (max_id < 0 || max_id > std::numeric_limits<int32_t>::max()) throw unsupported("no usable vocabulary ids");
  t.id_bytes_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (size_t i = 0; i < vocab->size(); ++i) {
    const int32_t id = static_cast<int32_t>((*vocab)[i].as_int());
    const std::string bytes = byte_level_to_bytes(vocab->key(i), description);
    t.bytes_to_id_[bytes] = id;
    t.text_to_id_[vocab->key(i)] = id;
    t.id_bytes_[static_cast<size_t>(id)] = bytes;
  }
  const json::Value* merges = model->find("merges");
  if (!merges || !merges->is_array()) throw unsupported("model.merges is not an array");
  int32_t rank = 0;
  for (const json::Value& m : merges->items()) {
    std::string left, right;
    if (m.is_array() && m.size() == 2) {
      left = m[0].as_string();
      right = m[1].as_string();
    } else if (m.is_string()) {
      const size_t cut = m.as_string().find(' ');
      if (cut == std::string::npos) throw unsupported("a merge has no space: '" + m.as_string() + "'");
      left = m.as_string().substr(0, cut);
      right = m.as_string().substr(cut + 1);
    } else {
      throw unsupported("a merge is neither [a, b] nor \"a b\"");
    }
    t.merge_rank_.emplace(std::make_pair(byte_level_to_bytes(left, description), byte_level_to_bytes(right, description)),
                          rank++);
  }
  if (added && added->is_array())
    for (const json::Value& a : added->items()) {
      const json::Value* content = a.find("content");
      const json::Value* id = a.find("id");
      if (!content || !id) throw unsupported("an added token lacks content or id");
      t.added_.emplace_back(content->as_string(), static_cast<int32_t>(id->as_int()));
      t.text_to_id_[content->as_string()] = static_cast<int32_t>(id->as_int());
      t.id_bytes_[static_cast<size_t>(id->as_int())] = content->as_string();
    }
  std::sort(t.added_.begin(), t.added_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

int32_t BpeTokenizer::token_id(const std::string& token) const {
  auto it = text_to_id_.find(token);
  return it == text_to_id_.end() ? -1 : it->second;
}

void BpeTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  auto cached = word_cache_.find(word);
  if (cached != word_cache_.end()) {
    out.insert(out.end(), cached->second.begin(), cached->second.end());
    return;
  }
  std::vector<std::string> symbols;
  for (char c : word) symbols.emplace_back(1, c);
  while (symbols.size() > 1) {
    int32_t best = std::numeric_limits<int32_t>::max();
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find({symbols[i], symbols[i + 1]});
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        best_at = i;
      }
    }
    if (best == std::numeric_limits<int32_t>::max()) break;
    symbols[best_at] += symbols[best_at + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
  }
  std::vector<int32_t> ids;
  for (const std::string& s : symbols) {
    auto it = bytes_to_id_.find(s);
    if (it == bytes_to_id_.end()) throw ModelError("the tokenizer has no token for a byte sequence of length " +
                                                   std::to_string(s.size()) + "; its byte alphabet is incomplete");
    ids.push_back(it->second);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (word_cache_.size() < 200000) word_cache_.emplace(word, std::move(ids));
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> out;
  size_t segment_start = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end > segment_start)
      for (const std::string& word : pre_tokenize(text.substr(segment_start, end - segment_start))) encode_word(word, out);
  };
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& a : added_)
      if (!a.first.empty() && a.first[0] == text[i] && text.compare(i, a.first.size(), a.first) == 0) {
        hit = &a;
        break;
      }
    if (hit) {
      flush(i);
      out.push_back(hit->second);
      i += hit->first.size();
      segment_start = i;
    } else {
      ++i;
    }
  }
  flush(text.size());
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= id_bytes_.size())
      throw RequestError("token id " + std::to_string(id) + " is outside the tokenizer's vocabulary");
    out += id_bytes_[static_cast<size_t>(id)];
  }
  return out;
}

}  // namespace tidal::cli
