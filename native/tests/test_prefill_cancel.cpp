// A cancel inside a prefill pass: the backend reads the flag between layers, stops, and leaves
// the cache exactly as it was; the default pass length per backend.
#include <atomic>
#include <vector>

#include "engine_test_models.h"
#include "harness.h"
#include "kv_snapshot.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

TIDAL_TEST(cpu_forward_with_cancel_set_stops_and_leaves_the_cache_as_it_was) {
  for (const std::string& kind : {std::string("llama"), std::string("qwen3")}) {
    CpuBackendFixture f(tiny_model_spec(kind));
    const ModelConfig& config = f.model.config;
    const auto before = random_tokens(11, config.vocab_size, 3);
    const auto prompt = random_tokens(19, config.vocab_size, 4);
    auto cache = f.prefilled(before);
    const KvSnapshot kept = snapshot(*f.backend, *cache, config);

    std::atomic<bool> cancel{true};
    std::vector<float> logits(static_cast<size_t>(config.vocab_size), -7.0f);
    CHECK_THROWS_WITH(f.backend->forward(*cache, prompt.data(), static_cast<int64_t>(prompt.size()), nullptr,
                                         LogitsWanted::Last, logits.data(), nullptr, &cancel),
                      "prefill cancelled at layer 0");
    CHECK_EQ(cache->length(), static_cast<int64_t>(before.size()));
    const KvSnapshot after = snapshot(*f.backend, *cache, config);
    CHECK(after.data == kept.data);
    for (float value : logits) CHECK_EQ(value, -7.0f);  // nothing written

    // The same pass without the flag equals one on a cache that was never interrupted.
    cancel = false;
    f.backend->forward(*cache, prompt.data(), static_cast<int64_t>(prompt.size()), nullptr, LogitsWanted::Last,
                       logits.data(), nullptr, &cancel);
    auto fresh = f.prefilled(before);
    std::vector<float> expected(logits.size(), 3.0f);
    f.backend->forward(*fresh, prompt.data(), static_cast<int64_t>(prompt.size()), nullptr, LogitsWanted::Last,
                       expected.data(), nullptr);
    CHECK(bitwise_equal(logits, expected));
    CHECK(snapshot(*f.backend, *cache, config).data == snapshot(*f.backend, *fresh, config).data);
  }
}

TIDAL_TEST(cpu_forward_of_one_token_does_not_read_the_cancel_flag) {
  // A decode step is one pass of one token; generate() reads the flag before each step itself.
  CpuBackendFixture f(tiny_model_spec("llama"));
  auto cache = f.prefilled(random_tokens(9, f.model.config.vocab_size, 5));
  std::atomic<bool> cancel{true};
  const int32_t token = 17;
  std::vector<float> logits(static_cast<size_t>(f.model.config.vocab_size), -7.0f);
  f.backend->forward(*cache, &token, 1, nullptr, LogitsWanted::Last, logits.data(), nullptr, &cancel);
  CHECK_EQ(cache->length(), 10);
  CHECK(logits[0] != -7.0f);
}

TIDAL_TEST(engine_prefill_cancelled_inside_its_only_pass_keeps_the_sequence) {
  // One pass (chunk = the whole prompt), the flag set before the call: the sequence, its cache
  // and its logits are as before (a decode after it equals a prefill of the same tokens).
  SyntheticModel model = make_synthetic_model(tiny_model_spec("qwen2"));
  auto engine = Engine::from_tensors(model.config, model.tensors, test_engine_options());
  const auto before = random_tokens(13, model.config.vocab_size, 6);
  const SequenceId seq = engine->create_sequence();
  engine->prefill(seq, before);
  std::atomic<bool> cancel{true};
  PrefillOptions one_pass;
  one_pass.chunk = 64;
  CHECK_THROWS_WITH(engine->prefill(seq, random_tokens(40, model.config.vocab_size, 7), one_pass, &cancel),
                    "cancelled");
  CHECK_EQ(engine->sequence_length(seq), static_cast<int64_t>(before.size()));
  cancel = false;
  const int32_t next = 21;
  const std::vector<float> stepped = engine->decode(seq, next);
  const SequenceId fresh = engine->create_sequence();
  std::vector<int32_t> all = before;
  all.push_back(next);
  CHECK(bitwise_equal(stepped, engine->prefill(fresh, all)));
}

TIDAL_TEST(engine_prefill_chunk_option_is_validated_and_zero_means_the_backend_default) {
  SyntheticModel model = make_synthetic_model(tiny_model_spec("llama"));
  EngineOptions negative = test_engine_options();
  negative.prefill_chunk = -1;
  CHECK_THROWS_WITH(Engine::from_tensors(model.config, model.tensors, negative), "prefill_chunk must be >= 0");
  // 0 (the default) takes the CPU's default pass length: the same logits as passes of that length.
  EngineOptions by_default = test_engine_options();
  by_default.prefill_chunk = 0;
  EngineOptions explicit_chunk = test_engine_options();
  explicit_chunk.prefill_chunk = kCpuPrefillChunk;
  auto a = Engine::from_tensors(model.config, model.tensors, by_default);
  auto b = Engine::from_tensors(model.config, model.tensors, explicit_chunk);
  const auto tokens = random_tokens(kCpuPrefillChunk + 9, model.config.vocab_size, 8);
  CHECK(bitwise_equal(a->prefill(a->create_sequence(), tokens), b->prefill(b->create_sequence(), tokens)));
}
