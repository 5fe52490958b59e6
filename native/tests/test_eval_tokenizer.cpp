// The C++ byte-level BPE encoder of `tidal eval` against encodings recorded with the
// Hugging Face tokenizers (Python, in test/fixtures/shipped-model; JavaScript, in
// test_eval_tokenizer_cases.json made by bench/eval/record_tokenizer_cases.mjs).
#include <fstream>
#include <random>
#include <sstream>

#include "../cli/eval_tokenizer.h"
#include "harness.h"
#include "model/json.h"

namespace {

std::string repo_path(const std::string& relative) { return tidal_test::fixtures_dir() + "/../../" + relative; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

const tidal::cli::BpeTokenizer& shipped_tokenizer() {
  static const tidal::cli::BpeTokenizer tokenizer =
      tidal::cli::BpeTokenizer::load(repo_path("models/tidal-code-mini/tokenizer.json"));
  return tokenizer;
}

std::vector<int32_t> ids_of(const tidal::json::Value& array) {
  std::vector<int32_t> out;
  for (const auto& v : array.items()) out.push_back(static_cast<int32_t>(v.as_int()));
  return out;
}

// Checks every {text, ids} case; returns how many were checked.
size_t check_cases(const tidal::json::Value& cases) {
  size_t checked = 0;
  for (const auto& c : cases.items()) {
    const std::string& text = c.find("text")->as_string();
    const std::vector<int32_t> expected = ids_of(*c.find("ids"));
    const std::vector<int32_t> got = shipped_tokenizer().encode(text);
    if (got != expected) {
      size_t first = 0;
      while (first < got.size() && first < expected.size() && got[first] == expected[first]) ++first;
      std::ostringstream message;
      message << "encoding differs at token " << first << " of " << expected.size() << " for text starting '"
              << text.substr(0, 40) << "'";
      tidal_test::record_failure(__FILE__, __LINE__, message.str());
    }
    // Byte-level BPE is lossless: decoding gives the text back.
    CHECK(shipped_tokenizer().decode(got) == text);
    ++checked;
  }
  return checked;
}

}  // namespace

TIDAL_TEST(eval_tokenizer_matches_python_tokenizers_samples) {
  const std::string json = read_text(tidal_test::fixtures_dir() + "/shipped-model/reference.json");
  const tidal::json::Value root = tidal::json::parse(json);
  CHECK_EQ(check_cases(*root.find("tokenizer_samples")), size_t(4));
}

TIDAL_TEST(eval_tokenizer_matches_javascript_tokenizers_cases) {
  const std::string json = read_text(repo_path("native/tests/test_eval_tokenizer_cases.json"));
  const tidal::json::Value root = tidal::json::parse(json);
  CHECK(check_cases(*root.find("cases")) >= size_t(40));
}

TIDAL_TEST(eval_tokenizer_special_tokens_and_lookups) {
  const auto& t = shipped_tokenizer();
  CHECK_EQ(t.vocab_size(), size_t(8192));
  CHECK_EQ(t.token_id("<|file_sep|>"), 8);
  CHECK_EQ(t.token_id("<|endoftext|>"), 0);
  CHECK_EQ(t.token_id("no such token"), -1);
  const std::vector<int32_t> ids = t.encode("<|file_sep|>x<|file_sep|>");
  CHECK(ids.size() >= 3);
  CHECK_EQ(ids.front(), 8);
  CHECK_EQ(ids.back(), 8);
  CHECK_THROWS_WITH(t.decode({8192}), "outside the tokenizer's vocabulary");
}

TIDAL_TEST(eval_tokenizer_round_trips_random_bytes) {
  // Random byte strings, invalid UTF-8 included: every byte has a token, so decode(encode(x)) == x.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(static_cast<size_t>(rng() % 64), '\0');
    for (char& c : text) c = static_cast<char>(trial % 2 ? rng() % 256 : " \n\tab1'(\xc3\xa9"[rng() % 11]);
    CHECK(shipped_tokenizer().decode(shipped_tokenizer().encode(text)) == text);
  }
}

TIDAL_TEST(eval_pre_tokenize_follows_the_pattern) {
  using tidal::cli::pre_tokenize;
  const std::vector<std::string> a = pre_tokenize("x  = 12;\n\n  y's");
  const std::vector<std::string> expected = {"x", " ", " =", " ", "1", "2", ";\n\n", " ", " y", "'s"};
  CHECK(a == expected);
  CHECK(pre_tokenize("a   ") == (std::vector<std::string>{"a", "   "}));
  CHECK(pre_tokenize("  \n  b") == (std::vector<std::string>{"  \n", " ", " b"}));
}

TIDAL_TEST(eval_tokenizer_rejects_other_tokenizers) {
  CHECK_THROWS_WITH(tidal::cli::BpeTokenizer::from_json("{\"model\": {\"type\": \"Unigram\"}}", "t.json"),
                    "the model is not BPE");
  CHECK_THROWS_WITH(tidal::cli::BpeTokenizer::load("/nonexistent/tokenizer.json"), "--tokenizer");
}
