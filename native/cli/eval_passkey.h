// Prompts of `tidal eval`: a repository-style token stream of code files the model was not
// trained on, and passkey prompts cut from it (a key line planted at a given depth, a query
// line at the end, as in tools/train/data.py's retrieval rows).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "eval_tokenizer.h"

namespace tidal::cli {

struct CodeFile {
  std::string path;  // as written in the stream's file headers
  std::string text;
};

// Files under each root (a folder or a file, relative to `base`), sorted by path, with a
// code extension (.ts .js .mjs .cpp .cc .h .hpp .cu .py), 200 B to 160 KB, no NUL byte.
// Throws RequestError when a root is missing or nothing is found.
std::vector<CodeFile> collect_code_files(const std::string& base, const std::vector<std::string>& roots);

// `<|file_sep|>path\ncontent<|file_sep|>path\ncontent...` as token ids, each file encoded on
// its own; line_end[i] says whether token i ends with a newline.
struct CodeStream {
  std::vector<int32_t> ids;
  std::vector<uint8_t> line_end;
};
CodeStream build_code_stream(const BpeTokenizer& tokenizer, const std::vector<CodeFile>& files);

struct Needle {
  std::string definition;  // the planted line, e.g. `#define PASSKEY_KAZO 123456\n`
  std::string query;       // the last prompt line, e.g. `printf("%d", PASSKEY_KAZO);  // ->`
  std::string answer;      // what should follow, e.g. ` 123456\n`
  std::string name;        // the key's name in capitals, e.g. `KAZO`
};

// A key in one of the three training shapes (string constant, dict entry, #define), a name
// of 2-3 syllables and a value of 5-8 digits.
Needle random_needle(std::mt19937_64& rng);

struct PasskeyPrompt {
  std::vector<int32_t> prompt;  // code with the needle, then "\n" + query
  std::vector<int32_t> answer;
  int64_t needle_position = 0;  // index of the needle's first token in prompt
};

// A prompt of exactly `length` tokens counting the answer: a window of `stream` starting at a
// random token, the needle inserted after the first line break at or after `depth` (0..1) of
// the window, each distractor (another key of another name) likewise at a random depth, then
// the query. Throws RequestError when the stream is too short.
PasskeyPrompt build_passkey_prompt(const BpeTokenizer& tokenizer, const CodeStream& stream, int64_t length, double depth,
                                   const Needle& needle, std::mt19937_64& rng,
                                   const std::vector<Needle>& distractors = {});

// `count` needles whose names differ from `needle`'s and from each other.
std::vector<Needle> random_distractors(std::mt19937_64& rng, const Needle& needle, int64_t count);

// A uniform integer in [0, n) that is the same on every standard library.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);

}  // namespace tidal::cli
