#include "eval_passkey.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tidal/error.h"

namespace tidal::cli {

namespace fs = std::filesystem;

namespace {

bool is_code_file(const fs::path& path) {
  static const char* const kExtensions[] = {".ts", ".js", ".mjs", ".cpp", ".cc", ".h", ".hpp", ".cu", ".py"};
  const std::string extension = path.extension().string();
  return std::find(std::begin(kExtensions), std::end(kExtensions), extension) != std::end(kExtensions);
}

const char* const kSyllables[] = {"ka", "zo", "ri", "mu", "te", "lan", "vor", "qui", "ber", "ost", "nix", "dal",
                                  "pre", "sul", "gam", "tor", "wen", "yel", "fap", "hob", "jid", "cru", "ely", "mon"};

}  // namespace

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  // Rejection sampling keeps it unbiased.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = rng();
  while (v >= limit);
  return v % n;
}

std::vector<CodeFile> collect_code_files(const std::string& base, const std::vector<std::string>& roots) {
  std::vector<std::pair<std::string, fs::path>> found;
  for (const std::string& root : roots) {
    const fs::path full = fs::path(base) / root;
    std::error_code error;
    if (!fs::exists(full, error))
      throw RequestError("code folder " + full.string() + " does not exist; pass --corpus with folders of source files");
    if (fs::is_regular_file(full)) {
      found.emplace_back(root, full);
      continue;
    }
    for (fs::recursive_directory_iterator it(full), end; it != end; ++it)
      if (it->is_regular_file() && is_code_file(it->path()))
        found.emplace_back((fs::path(root) / fs::relative(it->path(), full)).generic_string(), it->path());
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  std::vector<CodeFile> files;
  for (const auto& [name, path] : found) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    if (text.size() < 200 || text.size() > 160 * 1024 || text.find('\0') != std::string::npos) continue;
    files.push_back({name, std::move(text)});
  }
  if (files.empty()) throw RequestError("no source files (200 B to 160 KB) under the --corpus folders");
  return files;
}

CodeStream build_code_stream(const BpeTokenizer& tokenizer, const std::vector<CodeFile>& files) {
  const int32_t file_sep = tokenizer.token_id("<|file_sep|>");
  if (file_sep < 0) throw ModelError("the tokenizer has no <|file_sep|> token, which the eval prompts need");
  CodeStream stream;
  for (const CodeFile& file : files) {
    stream.ids.push_back(file_sep);
    const std::vector<int32_t> ids = tokenizer.encode(file.path + "\n" + file.text);
    stream.ids.insert(stream.ids.end(), ids.begin(), ids.end());
  }
  stream.line_end.reserve(stream.ids.size());
  for (int32_t id : stream.ids) {
    const std::string bytes = tokenizer.decode({id});
    stream.line_end.push_back(!bytes.empty() && bytes.back() == '\n' && id != file_sep);
  }
  return stream;
}

Needle random_needle(std::mt19937_64& rng) {
  std::string name;
  const uint64_t syllables = 2 + uniform_below(rng, 2);
  for (uint64_t i = 0; i < syllables; ++i) name += kSyllables[uniform_below(rng, std::size(kSyllables))];
  std::string upper = name;
  for (char& c : upper) c = static_cast<char>(c - 'a' + 'A');
  const uint64_t digits = 5 + uniform_below(rng, 4);
  std::string value(1, static_cast<char>('1' + uniform_below(rng, 9)));
  while (value.size() < digits) value.push_back(static_cast<char>('0' + uniform_below(rng, 10)));
  switch (uniform_below(rng, 3)) {
    case 0:
      return {"SECRET_KEY_" + upper + " = \"" + value + "\"\n", "print(SECRET_KEY_" + upper + ")  # ->",
              " \"" + value + "\"\n", upper};
    case 1:
      return {"    \"" + name + "\": " + value + ",\n", "print(CONFIG[\"" + name + "\"])  # ->", " " + value + "\n",
              upper};
    default:
      return {"#define PASSKEY_" + upper + " " + value + "\n", "printf(\"%d\", PASSKEY_" + upper + ");  // ->",
              " " + value + "\n", upper};
  }
}

std::vector<Needle> random_distractors(std::mt19937_64& rng, const Needle& needle, int64_t count) {
  std::vector<Needle> out;
  std::vector<std::string> names = {needle.name};
  while (static_cast<int64_t>(out.size()) < count) {
    Needle other = random_needle(rng);
    if (std::find(names.begin(), names.end(), other.name) != names.end()) continue;
    names.push_back(other.name);
    out.push_back(std::move(other));
  }
  return out;
}

PasskeyPrompt build_passkey_prompt(const BpeTokenizer& tokenizer, const CodeStream& stream, int64_t length, double depth,
                                   const Needle& needle, std::mt19937_64& rng, const std::vector<Needle>& distractors) {
  const std::vector<int32_t> query = tokenizer.encode("\n" + needle.query);
  const std::vector<int32_t> answer = tokenizer.encode(needle.answer);
  struct Planted {
    double depth;
    std::vector<int32_t> ids;
    bool is_needle;
  };
  std::vector<Planted> planted = {{depth, tokenizer.encode(needle.definition), true}};
  for (const Needle& d : distractors)
    planted.push_back({static_cast<double>(uniform_below(rng, 1000001)) / 1e6, tokenizer.encode(d.definition), false});
  int64_t planted_tokens = 0;
  for (const Planted& p : planted) planted_tokens += static_cast<int64_t>(p.ids.size());
  const int64_t context_length = length - static_cast<int64_t>(query.size() + answer.size()) - planted_tokens;
  if (context_length < 1 || context_length >= static_cast<int64_t>(stream.ids.size()))
    throw RequestError("a " + std::to_string(length) + "-token passkey prompt needs more code than the corpus's " +
                       std::to_string(stream.ids.size()) + " tokens; add folders to --corpus or use shorter --contexts");
  const int64_t start =
      static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(static_cast<int64_t>(stream.ids.size()) - context_length)));
  // Where a piece goes: after the first line break at or past its depth (or, past the last
  // line break, after the last one before it; at the end of a window without any).
  auto insertion_point = [&](double at_depth) {
    const int64_t target = static_cast<int64_t>(at_depth * static_cast<double>(context_length));
    for (int64_t i = std::max<int64_t>(target, 1); i < context_length; ++i)
      if (stream.line_end[static_cast<size_t>(start + i - 1)]) return i;
    for (int64_t i = std::min<int64_t>(target, context_length); i >= 1; --i)
      if (stream.line_end[static_cast<size_t>(start + i - 1)]) return i;
    return context_length;
  };
  std::vector<std::pair<int64_t, size_t>> cuts;  // (window offset, planted index)
  for (size_t i = 0; i < planted.size(); ++i) cuts.emplace_back(insertion_point(planted[i].depth), i);
  std::stable_sort(cuts.begin(), cuts.end());
  PasskeyPrompt out;
  const auto window = stream.ids.begin() + start;
  int64_t previous = 0;
  for (const auto& [at, index] : cuts) {
    out.prompt.insert(out.prompt.end(), window + previous, window + at);
    if (planted[index].is_needle) out.needle_position = static_cast<int64_t>(out.prompt.size());
    out.prompt.insert(out.prompt.end(), planted[index].ids.begin(), planted[index].ids.end());
    previous = at;
  }
  out.prompt.insert(out.prompt.end(), window + previous, window + context_length);
  out.prompt.insert(out.prompt.end(), query.begin(), query.end());
  out.answer = answer;
  return out;
}

}  // namespace tidal::cli
