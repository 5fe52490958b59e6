// Passkey prompts of `tidal eval`: needle shapes, exact prompt length, placement after a
// line break at the asked depth, and the rest of the prompt being an untouched window of
// the code stream.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include "../cli/eval_passkey.h"
#include "harness.h"

using namespace tidal::cli;

namespace {

const BpeTokenizer& tokenizer() {
  static const BpeTokenizer t = BpeTokenizer::load(tidal_test::fixtures_dir() + "/../../models/tidal-code-mini/tokenizer.json");
  return t;
}

// A stream of made-up code: lines of varying length so line breaks fall unevenly.
CodeStream synthetic_stream(size_t lines) {
  std::vector<CodeFile> files;
  std::mt19937_64 rng(3);
  for (size_t f = 0; f < 4; ++f) {
    CodeFile file{"dir/file" + std::to_string(f) + ".py", ""};
    for (size_t i = 0; i < lines / 4; ++i) {
      file.text += std::string(uniform_below(rng, 9), ' ') + "value_" + std::to_string(i) + " = compute(" +
                   std::to_string(uniform_below(rng, 1000)) + ")";
      if (uniform_below(rng, 3) == 0) file.text += "  # " + std::string(uniform_below(rng, 40), 'x');
      file.text += "\n";
    }
    files.push_back(file);
  }
  return build_code_stream(tokenizer(), files);
}

}  // namespace

TIDAL_TEST(eval_needles_have_the_training_shapes) {
  std::mt19937_64 rng(11);
  std::set<std::string> shapes;
  for (int i = 0; i < 300; ++i) {
    const Needle n = random_needle(rng);
    std::string digits;
    for (char c : n.answer)
      if (c >= '0' && c <= '9') digits.push_back(c);
    CHECK(digits.size() >= 5 && digits.size() <= 8);
    CHECK(digits[0] != '0');
    CHECK(n.definition.find(digits) != std::string::npos);
    CHECK(n.answer.back() == '\n' && n.answer[0] == ' ');
    CHECK(n.definition.back() == '\n');
    shapes.insert(n.definition.substr(0, 4));
  }
  CHECK_EQ(shapes.size(), size_t(3));  // "SECR", "    ", "#def"
}

TIDAL_TEST(eval_passkey_prompt_places_the_needle_at_the_depth) {
  const CodeStream stream = synthetic_stream(4000);
  CHECK(stream.ids.size() > 20000);
  for (int64_t length : {300, 1000, 4096})
    for (double depth : {0.0, 0.1, 0.5, 0.9, 1.0}) {
      std::mt19937_64 rng(static_cast<uint64_t>(length) * 31 + static_cast<uint64_t>(depth * 10));
      const Needle needle = random_needle(rng);
      const PasskeyPrompt p = build_passkey_prompt(tokenizer(), stream, length, depth, needle, rng);
      CHECK_EQ(static_cast<int64_t>(p.prompt.size() + p.answer.size()), length);
      CHECK(tokenizer().decode(p.answer) == needle.answer);
      const std::vector<int32_t> planted = tokenizer().encode(needle.definition);
      const std::vector<int32_t> query = tokenizer().encode("\n" + needle.query);
      const auto at = p.prompt.begin() + p.needle_position;
      CHECK(std::equal(planted.begin(), planted.end(), at));
      CHECK(std::equal(query.begin(), query.end(), p.prompt.end() - static_cast<std::ptrdiff_t>(query.size())));
      // Without needle and query, the prompt is one contiguous window of the stream.
      std::vector<int32_t> context(p.prompt.begin(), at);
      context.insert(context.end(), at + static_cast<std::ptrdiff_t>(planted.size()),
                     p.prompt.end() - static_cast<std::ptrdiff_t>(query.size()));
      const auto found = std::search(stream.ids.begin(), stream.ids.end(), context.begin(), context.end());
      CHECK(found != stream.ids.end());
      if (found == stream.ids.end()) continue;
      const size_t start = static_cast<size_t>(found - stream.ids.begin());
      // The needle follows a line break; none lies between the asked depth and it.
      const int64_t position = p.needle_position;
      CHECK(position >= 1);
      CHECK(tokenizer().decode({context[static_cast<size_t>(position - 1)]}).back() == '\n');
      const int64_t target = static_cast<int64_t>(depth * static_cast<double>(context.size()));
      if (position >= target)
        for (int64_t i = std::max<int64_t>(target, 1); i < position; ++i) CHECK(!stream.line_end[start + static_cast<size_t>(i) - 1]);
      else
        CHECK(depth == 1.0);  // only past the last line break does it go back before the target
    }
}

TIDAL_TEST(eval_passkey_prompt_needs_enough_code) {
  const CodeStream stream = synthetic_stream(40);
  std::mt19937_64 rng(1);
  CHECK_THROWS_WITH(build_passkey_prompt(tokenizer(), stream, 100000, 0.5, random_needle(rng), rng), "--corpus");
}

TIDAL_TEST(eval_code_stream_marks_files_and_line_ends) {
  const CodeStream stream = build_code_stream(tokenizer(), {{"a.py", "x = 1\ny = 2\n"}, {"b.ts", "let z;\n"}});
  const int32_t sep = tokenizer().token_id("<|file_sep|>");
  CHECK_EQ(stream.ids.front(), sep);
  CHECK_EQ(std::count(stream.ids.begin(), stream.ids.end(), sep), 2);
  CHECK(tokenizer().decode(stream.ids) == "<|file_sep|>a.py\nx = 1\ny = 2\n<|file_sep|>b.ts\nlet z;\n");
  size_t ends = 0;
  for (size_t i = 0; i < stream.ids.size(); ++i)
    if (stream.line_end[i]) {
      ++ends;
      CHECK(tokenizer().decode({stream.ids[i]}).back() == '\n');
    }
  CHECK_EQ(ends, size_t(5));  // each header line and each code line
}

TIDAL_TEST(eval_collects_code_files_sorted_and_filtered) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("tidal_eval_corpus_" + std::to_string(::getpid()));
  fs::create_directories(dir / "pkg" / "sub");
  auto write = [&](const fs::path& p, size_t bytes) { std::ofstream(dir / p) << std::string(bytes, 'a'); };
  write("pkg/sub/b.cpp", 500);
  write("pkg/a.ts", 300);
  write("pkg/small.py", 100);      // under 200 B
  write("pkg/huge.h", 200 * 1024); // over 160 KB
  write("pkg/notes.txt", 500);     // not code
  const std::vector<CodeFile> files = collect_code_files(dir.string(), {"pkg"});
  CHECK_EQ(files.size(), size_t(2));
  if (files.size() == 2) {
    CHECK(files[0].path == "pkg/a.ts");
    CHECK(files[1].path == "pkg/sub/b.cpp");
    CHECK_EQ(files[1].text.size(), size_t(500));
  }
  CHECK_THROWS_WITH(collect_code_files(dir.string(), {"missing"}), "does not exist");
  fs::remove_all(dir);
}

TIDAL_TEST(eval_uniform_below_covers_its_range) {
  std::mt19937_64 rng(5);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const uint64_t v = uniform_below(rng, 7);
    CHECK(v < 7);
    if (v < 7) ++counts[v];
  }
  for (int c : counts) CHECK(c > 850 && c < 1150);
}

TIDAL_TEST(eval_passkey_prompt_with_distractors_keeps_length_and_needle) {
  const CodeStream stream = synthetic_stream(4000);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    const Needle needle = random_needle(rng);
    const std::vector<Needle> others = random_distractors(rng, needle, 3);
    CHECK_EQ(others.size(), size_t(3));
    std::set<std::string> names = {needle.name};
    for (const Needle& o : others) names.insert(o.name);
    CHECK_EQ(names.size(), size_t(4));
    const PasskeyPrompt p = build_passkey_prompt(tokenizer(), stream, 2000, 0.5, needle, rng, others);
    CHECK_EQ(static_cast<int64_t>(p.prompt.size() + p.answer.size()), int64_t(2000));
    const std::vector<int32_t> planted = tokenizer().encode(needle.definition);
    CHECK(std::equal(planted.begin(), planted.end(), p.prompt.begin() + p.needle_position));
    const std::string text = tokenizer().decode(p.prompt);
    for (const Needle& o : others) CHECK(text.find(o.definition) != std::string::npos);
    CHECK(text.find(needle.definition) != std::string::npos);
  }
}
