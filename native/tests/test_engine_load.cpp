// Engine::load over the committed reference model folders: every architecture and storage
// dtype loads, describes itself, prefills and generates in all three attention modes.
// (The logits comparison with the recorded transformers outputs lives with the fixtures.)
#include <cmath>
#include <filesystem>

#include "engine_test_models.h"
#include "harness.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

struct FixtureModel {
  const char* folder;
  const char* architecture;
  const char* dtype;
};

const FixtureModel kFixtures[] = {
    {"llama2-mha-bf16", "llama", "bf16"},  {"llama3-gqa-f32", "llama", "f32"},
    {"mistral-gqa-f16", "mistral", "f16"}, {"qwen2-tied-sharded-f32", "qwen2", "f32"},
    {"qwen3-qknorm-f32", "qwen3", "f32"},
};

}  // namespace

TIDAL_TEST(engine_loads_every_fixture_model_folder) {
  for (const FixtureModel& fixture : kFixtures) {
    const std::string dir = fixtures_dir() + "/models/" + fixture.folder;
    if (!std::filesystem::exists(dir)) {
      record_failure(__FILE__, __LINE__, "missing fixture " + dir);
      continue;
    }
    auto engine = Engine::load(dir, test_engine_options());
    const ModelInfo& info = engine->model_info();
    CHECK_EQ(info.architecture, std::string(fixture.architecture));
    CHECK_EQ(info.dtype, std::string(fixture.dtype));
    CHECK_EQ(info.num_layers, 6);
    CHECK_EQ(info.vocab_size, 512);
    CHECK(info.weight_bytes > 0);

    const auto prompt = random_tokens(40, info.vocab_size, 3);
    const SequenceId seq = engine->create_sequence();
    const std::vector<float> logits = engine->prefill(seq, prompt);
    CHECK_EQ(logits.size(), size_t(512));
    for (float v : logits) CHECK(std::isfinite(v));

    // Budget >= context: every mode produces the same greedy continuation.
    std::vector<int32_t> reference;
    for (AttentionMode mode : {AttentionMode::Full, AttentionMode::Tidal, AttentionMode::Quest}) {
      GenerateOptions options;
      options.max_tokens = 6;
      options.stop_at_eos = false;
      options.attention.mode = mode;
      options.attention.token_budget = 64;
      const SequenceId run = engine->fork_sequence(seq);
      const GenerateResult result = engine->generate(run, {}, options);
      CHECK_EQ(result.tokens.size(), size_t(6));
      if (mode == AttentionMode::Full)
        reference = result.tokens;
      else
        CHECK(result.tokens == reference);
    }
  }
}

TIDAL_TEST(engine_load_reports_missing_model_folders) {
  CHECK_THROWS_WITH(Engine::load(fixtures_dir() + "/models/no-such-model", test_engine_options()), "no-such-model");
}
