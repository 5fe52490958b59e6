// `tidal eval`: accuracy of full, TidalDecode and Quest attention on the embedded model (or
// any model with a byte-level BPE tokenizer.json): passkey retrieval by context length and
// depth, and teacher-forced perplexity on held-out code. Prints Markdown tables.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cli_command.h"
#include "engine/tensor_source.h"
#include "eval_passkey.h"
#include "eval_report.h"
#include "eval_scoring.h"
#include "eval_tokenizer.h"
#include "model/model_config.h"
#include "tidal/option_limits.h"
#include "tidal/error.h"

namespace tidal::cli {

namespace {

const char* const kDefaultCorpus = "src,native/src,native/cli,native/include,native/addon";

std::vector<std::vector<int64_t>> parse_selection_choices(const std::string& text) {
  std::vector<std::vector<int64_t>> out;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ';')) out.push_back(parse_integer_list(item, "--selection-choices", 0, limits::kMaxLayerIndex));
  if (out.empty()) throw UsageError("--selection-choices needs at least one list, e.g. 2;2,4");
  return out;
}

std::vector<double> parse_depths(const std::string& text) {
  std::vector<double> out;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v >= 0.0 && v <= 1.0))
      throw UsageError("--depths takes fractions in [0, 1] separated by commas, e.g. 0.1,0.5,0.9");
    out.push_back(v);
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RequestError("cannot read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

ConfigKey key_of(const EvalConfig& config) {
  const char* mode = config.attention.mode == AttentionMode::Full    ? "full"
                     : config.attention.mode == AttentionMode::Tidal ? "tidal"
                                                                     : "quest";
  return {mode, config.selection(), config.attention.mode == AttentionMode::Full ? 0 : config.attention.token_budget};
}

// One seed per sample, so that runs split over machines (by --contexts) draw the same samples.
std::mt19937_64 sample_rng(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  std::seed_seq sequence{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(a),
                         static_cast<uint32_t>(b), static_cast<uint32_t>(c)};
  return std::mt19937_64(sequence);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run_eval(Arguments& arguments) {
  EvalResults results;
  const int64_t trained_length = arguments.integer("--trained-length", 8192, 1, limits::kMaxPositions);
  const std::string output = arguments.text("--output", "");
  const std::vector<std::string> load = arguments.text_list("--load", {});
  if (!load.empty()) {
    arguments.reject_unused();
    for (const std::string& path : load) append_results(read_file(path), path, results);
  } else {
    const std::string model_dir = arguments.required_text("--model");
    const std::string tokenizer_path = arguments.text("--tokenizer", model_dir + "/tokenizer.json");
    const std::vector<std::string> corpus = arguments.text_list("--corpus", {});
    const std::string corpus_base = arguments.text("--corpus-base", ".");
    const std::vector<int64_t> contexts =
        arguments.integer_list("--contexts", {4096, 8192, 16384, 32768}, 1, limits::kMaxContext);
    const std::vector<double> depths = parse_depths(arguments.text("--depths", "0.1,0.3,0.5,0.7,0.9"));
    const int64_t trials = arguments.integer("--trials", 4, 0, limits::kMaxCount);
    const int64_t distractors = arguments.integer("--distractors", 0, 0, limits::kMaxDistractors);
    // Trials [first_trial, trials): a later run adds trials without repeating earlier ones.
    const int64_t first_trial = arguments.integer("--first-trial", 0, 0, limits::kMaxCount);
    const std::vector<int64_t> budgets =
        arguments.integer_list("--budgets", {64, 128, 256, 512, 1024, 2048, 4096}, 1, limits::kMaxTokenBudget);
    const auto selections = parse_selection_choices(arguments.text("--selection-choices", "2;2,4;2,3"));
    const bool with_quest = !arguments.flag("--no-quest");
    const int64_t ppl_windows = arguments.integer("--perplexity-windows", 2, 0, limits::kMaxCount);
    const int64_t ppl_length = arguments.integer("--perplexity-length", 4096, 3, limits::kMaxContext);
    const int64_t ppl_scored = arguments.integer("--perplexity-scored", 256, 1, limits::kMaxContext);
    const uint64_t seed = static_cast<uint64_t>(arguments.integer("--seed", 1234, 0, limits::kMaxSeed));
    const std::string save = arguments.text("--save", "");
    const std::string shard_text = arguments.text("--shard", "0/1");
    int64_t shard = 0, shards = 1;
    if (std::sscanf(shard_text.c_str(), "%lld/%lld", reinterpret_cast<long long*>(&shard),
                    reinterpret_cast<long long*>(&shards)) != 2 ||
        shards < 1 || shard < 0 || shard >= shards)
      throw UsageError("--shard takes I/N with 0 <= I < N, e.g. 0/4");
    EngineOptions options;
    options.threads = static_cast<int>(arguments.integer("--threads", 0, 0, limits::kMaxThreads));
    const int64_t max_positions = arguments.integer("--max-positions", 0, 0, limits::kMaxPositions);
    arguments.reject_unused();
    if (ppl_windows > 0 && (ppl_scored < 1 || ppl_scored + 2 > ppl_length))
      throw UsageError("--perplexity-scored must be in [1, --perplexity-length - 2]");

    // Records are appended to --save as each sample finishes, so a run stopped early keeps them.
    std::ofstream saved;
    if (!save.empty()) {
      saved.open(save, std::ios::binary | std::ios::trunc);
      if (!saved) throw RequestError("cannot write " + save);
    }
    auto keep = [&](const EvalResults& sample) {
      results.passkey.insert(results.passkey.end(), sample.passkey.begin(), sample.passkey.end());
      results.perplexity.insert(results.perplexity.end(), sample.perplexity.begin(), sample.perplexity.end());
      if (saved.is_open()) saved << serialize_results(sample) << std::flush;
    };
    int64_t sample_index = 0;  // samples are dealt round-robin to the --shard processes
    auto mine = [&] { return sample_index++ % shards == shard; };

    const auto started = std::chrono::steady_clock::now();
    const BpeTokenizer tokenizer = BpeTokenizer::load(tokenizer_path);
    std::vector<std::string> roots = corpus;
    if (roots.empty()) {
      std::istringstream in(kDefaultCorpus);
      for (std::string item; std::getline(in, item, ',');) roots.push_back(item);
    }
    const std::vector<CodeFile> files = collect_code_files(corpus_base, roots);
    const CodeStream stream = build_code_stream(tokenizer, files);
    std::fprintf(stderr, "corpus: %zu files, %zu tokens (tokenized in %.1f s)\n", files.size(), stream.ids.size(),
                 seconds_since(started));

    ModelConfig config = load_model_config(model_dir);
    int64_t longest = ppl_windows > 0 ? ppl_length : 0;
    for (int64_t c : contexts) longest = std::max(longest, c);
    if (max_positions > 0) config.max_position_embeddings = max_positions;
    if (longest > config.max_position_embeddings)
      throw UsageError("context " + std::to_string(longest) + " is past the model's " +
                       std::to_string(config.max_position_embeddings) +
                       " positions; pass --max-positions N to test RoPE extrapolation beyond them");
    options.max_context = longest;
    std::unique_ptr<Engine> engine =
        Engine::from_tensors(config, std::make_shared<WeightStoreTensors>(WeightStore::open(model_dir)), options);
    const std::vector<EvalConfig> configs = make_eval_configs(budgets, selections, with_quest);
    std::fprintf(stderr, "model %s: %lld layers, %d threads; %zu attention configurations\n", model_dir.c_str(),
                 static_cast<long long>(engine->model_info().num_layers), engine->model_info().threads, configs.size());

    for (int64_t context : contexts) {
      const auto context_started = std::chrono::steady_clock::now();
      int64_t full_hits = 0, samples = 0;
      for (int64_t trial = first_trial; trial < trials; ++trial)
        for (size_t d = 0; d < depths.size(); ++d) {
          if (!mine()) continue;
          std::mt19937_64 rng = sample_rng(seed, static_cast<uint64_t>(context), d, static_cast<uint64_t>(trial));
          const Needle needle = random_needle(rng);
          const std::vector<Needle> others = random_distractors(rng, needle, distractors);
          const PasskeyPrompt sample = build_passkey_prompt(tokenizer, stream, context, depths[d], needle, rng, others);
          const std::vector<bool> correct = score_passkey(*engine, sample.prompt, sample.answer, configs);
          EvalResults sample_results;
          for (size_t c = 0; c < configs.size(); ++c)
            sample_results.passkey.push_back({context, depths[d], trial, key_of(configs[c]), correct[c]});
          keep(sample_results);
          full_hits += correct[0];
          ++samples;
        }
      std::fprintf(stderr, "passkey %lld: full attention %lld/%lld (%.1f s)\n", static_cast<long long>(context),
                   static_cast<long long>(full_hits), static_cast<long long>(samples), seconds_since(context_started));
    }

    for (int64_t w = 0; w < ppl_windows; ++w) {
      if (!mine()) continue;
      const auto window_started = std::chrono::steady_clock::now();
      std::mt19937_64 rng = sample_rng(seed, 0xC0DE, static_cast<uint64_t>(w), 0);
      if (static_cast<int64_t>(stream.ids.size()) <= ppl_length)
        throw RequestError("the corpus is shorter than --perplexity-length; add folders to --corpus");
      const int64_t start = static_cast<int64_t>(
          uniform_below(rng, static_cast<uint64_t>(static_cast<int64_t>(stream.ids.size()) - ppl_length)));
      const std::vector<int32_t> window(stream.ids.begin() + start, stream.ids.begin() + start + ppl_length);
      const std::vector<NllSum> sums = score_perplexity(*engine, window, ppl_length - ppl_scored, configs);
      EvalResults window_results;
      window_results.perplexity.push_back({w, ppl_length, {"full-prefill", "-", 0}, sums[0].nll, sums[0].tokens});
      for (size_t c = 0; c < configs.size(); ++c)
        window_results.perplexity.push_back({w, ppl_length, key_of(configs[c]), sums[c + 1].nll, sums[c + 1].tokens});
      keep(window_results);
      std::fprintf(stderr, "perplexity window %lld: full %.3f (%.1f s)\n", static_cast<long long>(w),
                   std::exp(sums[1].nll / static_cast<double>(sums[1].tokens)), seconds_since(window_started));
    }
    if (saved.is_open() && !saved) throw RequestError("cannot write " + save);
  }
  const std::string report = render_report(results, trained_length);
  std::fputs(report.c_str(), stdout);
  if (!output.empty()) {
    std::ofstream out(output, std::ios::binary);
    out << report;
    if (!out) throw RequestError("cannot write " + output);
  }
  return 0;
}

}  // namespace

TIDAL_CLI_COMMAND(eval, "eval", "passkey accuracy and perplexity of full, tidal and quest attention",
                  "--model DIR [--tokenizer FILE] [--corpus src,native/src] [--corpus-base DIR] "
                  "[--contexts 4096,8192,16384,32768] [--depths 0.1,0.3,0.5,0.7,0.9] [--trials N] [--first-trial N] [--distractors N] "
                  "[--budgets 64,128,...,4096] [--selection-choices '2;2,4;2,3'] [--no-quest] "
                  "[--perplexity-windows N] [--perplexity-length N] [--perplexity-scored N] [--seed S] "
                  "[--threads N] [--max-positions N] [--trained-length N] [--shard I/N] [--save FILE] [--output FILE.md]\n"
                  "   or: tidal eval --load a.tsv,b.tsv [--trained-length N] [--output FILE.md]",
                  {"--no-quest"}, run_eval);

}  // namespace tidal::cli
