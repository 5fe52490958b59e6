// The engine against Hugging Face transformers: test/fixtures/models/<name>/ hold small
// random-weight models of every supported architecture and the logits transformers computed
// for fixed token sequences (tools/fixtures/make_reference_models.py). The reference ran in
// float32 over the stored weights, as the CPU backend does, so the only differences are
// summation order: the bound is a relative L2 error below 2e-5 per sequence (measured: about
// 2e-6 for prefill and 5e-6 for decode steps).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine_test_models.h"
#include "harness.h"
#include "model/json.h"
#include "model/mapped_file.h"
#include "tidal/engine.h"

namespace {

constexpr double kRelativeErrorBound = 2e-5;

const char* const kFixtureModels[] = {
    "llama3-gqa-f32", "llama2-mha-bf16", "mistral-gqa-f16", "qwen2-tied-sharded-f32", "qwen3-qknorm-f32",
};

struct Reference {
  int64_t vocab = 0;
  std::vector<std::vector<int32_t>> sequences;
  std::vector<int64_t> offsets;  // in floats
  std::vector<float> logits;
  std::vector<int32_t> greedy_prompt;
  std::vector<int32_t> greedy_tokens;
};

std::vector<int32_t> int_list(const tidal::json::Value& array) {
  std::vector<int32_t> out;
  for (const auto& item : array.items()) out.push_back(int32_t(item.as_int()));
  return out;
}

Reference load_reference(const std::string& dir) {
  Reference ref;
  auto json_file = tidal::MappedFile::open(dir + "/reference.json");
  tidal::json::Value root =
      tidal::json::parse(std::string_view(reinterpret_cast<const char*>(json_file->data()), json_file->size()));
  ref.vocab = root.find("vocab_size")->as_int();
  for (const auto& sequence : root.find("sequences")->items()) {
    ref.sequences.push_back(int_list(*sequence.find("tokens")));
    ref.offsets.push_back(sequence.find("logits_offset")->as_int());
  }
  auto logits_file = tidal::MappedFile::open(dir + "/" + root.find("logits_file")->as_string());
  ref.logits.resize(logits_file->size() / sizeof(float));
  std::memcpy(ref.logits.data(), logits_file->data(), ref.logits.size() * sizeof(float));
  const auto* greedy = root.find("greedy");
  ref.greedy_prompt = int_list(*greedy->find("prompt"));
  ref.greedy_tokens = int_list(*greedy->find("new_tokens"));
  return ref;
}

// ||a - b|| / ||b|| over `count` floats.
double relative_l2(const float* a, const float* b, size_t count) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

std::string model_dir(const char* name) { return tidal_test::fixtures_dir() + "/models/" + name; }

}  // namespace

TIDAL_TEST(reference_prefill_logits_match_transformers_for_every_architecture) {
  for (const char* name : kFixtureModels) {
    Reference ref = load_reference(model_dir(name));
    auto engine = tidal::Engine::load(model_dir(name), tidal_test::test_engine_options());
    CHECK_EQ(engine->model_info().vocab_size, ref.vocab);
    double worst = 0;
    for (size_t s = 0; s < ref.sequences.size(); ++s) {
      const auto& tokens = ref.sequences[s];
      auto sequence = engine->create_sequence();
      tidal::PrefillOptions options;
      options.all_logits = true;
      std::vector<float> logits(tokens.size() * ref.vocab, NAN);  // poisoned
      logits = engine->prefill(sequence, tokens, options);
      CHECK_EQ(logits.size(), tokens.size() * size_t(ref.vocab));
      if (logits.size() != tokens.size() * size_t(ref.vocab)) continue;
      double error = relative_l2(logits.data(), ref.logits.data() + ref.offsets[s], logits.size());
      worst = std::max(worst, error);
      CHECK(error < kRelativeErrorBound);
      engine->release_sequence(sequence);
    }
    std::printf("     %-24s prefill logits, worst relative L2 error %.2e\n", name, worst);
  }
}

TIDAL_TEST(reference_decode_steps_match_transformers_logits_position_by_position) {
  for (const char* name : kFixtureModels) {
    Reference ref = load_reference(model_dir(name));
    auto engine = tidal::Engine::load(model_dir(name), tidal_test::test_engine_options());
    const auto& tokens = ref.sequences.back();  // the longest sequence
    const size_t half = tokens.size() / 2;
    auto sequence = engine->create_sequence();
    engine->prefill(sequence, std::vector<int32_t>(tokens.begin(), tokens.begin() + half));
    double worst = 0;
    for (size_t position = half; position < tokens.size(); ++position) {
      std::vector<float> logits = engine->decode(sequence, tokens[position]);
      const float* expected = ref.logits.data() + ref.offsets.back() + position * ref.vocab;
      worst = std::max(worst, relative_l2(logits.data(), expected, size_t(ref.vocab)));
    }
    CHECK(worst < kRelativeErrorBound);
    std::printf("     %-24s decode logits,  worst relative L2 error %.2e\n", name, worst);
  }
}

TIDAL_TEST(reference_greedy_generation_matches_transformers_generate) {
  for (const char* name : kFixtureModels) {
    Reference ref = load_reference(model_dir(name));
    auto engine = tidal::Engine::load(model_dir(name), tidal_test::test_engine_options());
    for (auto mode : {tidal::AttentionMode::Full, tidal::AttentionMode::Tidal, tidal::AttentionMode::Quest}) {
      auto sequence = engine->create_sequence();
      tidal::GenerateOptions options;
      options.max_tokens = int64_t(ref.greedy_tokens.size());
      options.stop_at_eos = false;
      options.attention.mode = mode;
      options.attention.token_budget = 4096;  // covers the whole context: must equal full attention
      std::vector<int32_t> streamed;
      auto result = engine->generate(sequence, ref.greedy_prompt, options, [&](int32_t token) {
        streamed.push_back(token);
        return true;
      });
      CHECK(result.tokens == ref.greedy_tokens);
      CHECK(streamed == ref.greedy_tokens);
      engine->release_sequence(sequence);
    }
  }
}

TIDAL_TEST(reference_sparse_modes_at_full_budget_give_the_full_attention_logits_exactly) {
  Reference ref = load_reference(model_dir("llama3-gqa-f32"));
  auto engine = tidal::Engine::load(model_dir("llama3-gqa-f32"), tidal_test::test_engine_options());
  const auto& tokens = ref.sequences.back();
  std::vector<std::vector<float>> by_mode;
  for (auto mode : {tidal::AttentionMode::Full, tidal::AttentionMode::Tidal, tidal::AttentionMode::Quest}) {
    auto sequence = engine->create_sequence();
    engine->prefill(sequence, std::vector<int32_t>(tokens.begin(), tokens.end() - 8));
    tidal::AttentionOptions attention;
    attention.mode = mode;
    attention.token_budget = int64_t(tokens.size()) + 16;
    std::vector<float> all;
    for (size_t position = tokens.size() - 8; position < tokens.size(); ++position) {
      auto logits = engine->decode(sequence, tokens[position], attention);
      all.insert(all.end(), logits.begin(), logits.end());
    }
    by_mode.push_back(std::move(all));
    engine->release_sequence(sequence);
  }
  CHECK(by_mode[0] == by_mode[1]);
  CHECK(by_mode[0] == by_mode[2]);
}
