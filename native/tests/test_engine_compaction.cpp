// KV-cache compaction (Engine::compact_sequence, Backend::compact on the CPU backend): kept
// positions in place are untouched, moved keys equal a float64 rotation of the original keys
// and values move unchanged, layer 0 (whose K/V depend on nothing but the token and its
// position) matches a fresh prefill of the kept tokens, the rest is close to one; bad ranges,
// forks sharing pages, the memory cap and Quest page bounds.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cpu/paged_kv_cache.h"
#include "cpu/rope.h"
#include "engine/attention_plan.h"
#include "engine_test_models.h"
#include "harness.h"
#include "kv_snapshot.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

// The float64 reference: `key` rotated by delta * inv_freq_i on every rotate-half pair.
std::vector<double> rotated(const float* key, int64_t head_dim, const std::vector<float>& frequencies, int64_t delta) {
  const int64_t half = head_dim / 2;
  std::vector<double> out(static_cast<size_t>(head_dim));
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(delta) * static_cast<double>(frequencies[static_cast<size_t>(i)]);
    const double x1 = key[i], x2 = key[i + half];
    out[static_cast<size_t>(i)] = x1 * std::cos(angle) - x2 * std::sin(angle);
    out[static_cast<size_t>(i + half)] = x2 * std::cos(angle) + x1 * std::sin(angle);
  }
  return out;
}

// For every position after compaction, the position it came from.
std::vector<int64_t> sources_of(const KvRanges& ranges) {
  std::vector<int64_t> out;
  for (const auto& [start, count] : ranges)
    for (int64_t i = 0; i < count; ++i) out.push_back(start + i);
  return out;
}

std::vector<int32_t> kept_tokens(const std::vector<int32_t>& tokens, const KvRanges& ranges) {
  std::vector<int32_t> out;
  for (int64_t source : sources_of(ranges)) out.push_back(tokens[static_cast<size_t>(source)]);
  return out;
}

bool rows_equal(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * 4) == 0;
}

AttentionOptions quest(int64_t budget) {
  AttentionOptions a;
  a.mode = AttentionMode::Quest;
  a.token_budget = budget;
  return a;
}

}  // namespace

TIDAL_TEST(cpu_compaction_keeps_the_leading_range_and_rerotates_moved_keys) {
  for (const std::string& kind : {std::string("llama3"), std::string("qwen3"), std::string("llama-mha")}) {
    CpuBackendFixture f(tiny_model_spec(kind));
    const ModelConfig& config = f.model.config;
    const auto tokens = random_tokens(100, config.vocab_size, 11);
    auto cache = f.prefilled(tokens);
    const KvSnapshot before = snapshot(*f.backend, *cache, config);
    const KvRanges ranges = {{0, 21}, {37, 30}, {90, 10}};
    f.backend->compact(*cache, ranges);
    CHECK_EQ(cache->length(), 61);
    const KvSnapshot after = snapshot(*f.backend, *cache, config);
    const std::vector<float>& frequencies = config.rope_frequencies;
    const std::vector<int64_t> sources = sources_of(ranges);
    int64_t unchanged = 0, moved = 0;
    double worst = 0;
    for (int64_t layer = 0; layer < config.num_layers; ++layer)
      for (int64_t head = 0; head < config.num_kv_heads; ++head)
        for (int64_t position = 0; position < 61; ++position) {
          const int64_t source = sources[static_cast<size_t>(position)];
          const float* key = after.key(layer, head, position);
          CHECK(rows_equal(after.value(layer, head, position), before.value(layer, head, source), config.head_dim));
          if (source == position) {
            unchanged += rows_equal(key, before.key(layer, head, source), config.head_dim);
            continue;
          }
          ++moved;
          const std::vector<double> reference =
              rotated(before.key(layer, head, source), config.head_dim, frequencies, position - source);
          for (int64_t i = 0; i < config.head_dim; ++i) {
            const double error = std::fabs(key[i] - reference[static_cast<size_t>(i)]);
            worst = std::fmax(worst, error / std::fmax(std::fabs(reference[static_cast<size_t>(i)]), 1e-30));
          }
        }
    CHECK_EQ(unchanged, config.num_layers * config.num_kv_heads * 21);
    CHECK_EQ(moved, config.num_layers * config.num_kv_heads * 40);
    // One rounding of a double result to f32.
    CHECK(worst <= 1.2e-7);
  }
}

TIDAL_TEST(cpu_compaction_rebuilds_quest_bounds_and_decodes_like_a_cache_loaded_with_the_same_kv) {
  CpuBackendFixture f(tiny_model_spec("deep"));
  const ModelConfig& config = f.model.config;
  auto cache = f.prefilled(random_tokens(150, config.vocab_size, 12));
  f.backend->compact(*cache, {{0, 40}, {70, 50}, {130, 20}});
  CHECK_EQ(cache->length(), 110);
  // A cache written with the same K/V from scratch (load_kv computes every page's bounds).
  MemorySink sink;
  f.backend->save_kv(*cache, sink);
  auto fresh = f.backend->create_kv_cache();
  MemorySource source(sink.bytes());
  f.backend->load_kv(*fresh, 110, source);
  const KvSnapshot kv = snapshot(*f.backend, *cache, config);
  auto& a = dynamic_cast<cpu::PagedKvCache&>(*cache);
  auto& b = dynamic_cast<cpu::PagedKvCache&>(*fresh);
  bool bounds_equal = true, bounds_right = true;
  for (int64_t page = 0; page < a.page_count(); ++page)
    for (int64_t layer = 0; layer < config.num_layers; ++layer)
      for (int64_t head = 0; head < config.num_kv_heads; ++head) {
        bounds_equal &= rows_equal(a.key_min(page, layer, head), b.key_min(page, layer, head), config.head_dim) &&
                        rows_equal(a.key_max(page, layer, head), b.key_max(page, layer, head), config.head_dim);
        for (int64_t i = 0; i < config.head_dim; ++i) {
          float lo = INFINITY, hi = -INFINITY;
          for (int64_t p = page * 16; p < std::min<int64_t>(110, page * 16 + 16); ++p) {
            lo = std::fmin(lo, kv.key(layer, head, p)[i]);
            hi = std::fmax(hi, kv.key(layer, head, p)[i]);
          }
          bounds_right &= a.key_min(page, layer, head)[i] == lo && a.key_max(page, layer, head)[i] == hi;
        }
      }
  CHECK(bounds_equal);
  CHECK(bounds_right);
  AttentionOptions tidal;
  tidal.mode = AttentionMode::Tidal;
  tidal.token_budget = 24;
  for (const AttentionOptions& options : {quest(32), tidal, AttentionOptions{}}) {
    const AttentionPlan plan = make_attention_plan(options, config.num_layers);
    for (int32_t token : {3, 50}) {
      std::vector<float> x(static_cast<size_t>(config.vocab_size)), y(x.size());
      f.backend->forward(*cache, &token, 1, &plan, LogitsWanted::Last, x.data(), nullptr);
      f.backend->forward(*fresh, &token, 1, &plan, LogitsWanted::Last, y.data(), nullptr);
      CHECK(bitwise_equal(x, y));
    }
  }
}

// Layer 0's keys and values depend only on the token and its position, so there compaction
// is exact up to the rotation's rounding; a one-layer model therefore decodes as after a
// fresh prefill of the kept tokens.
TIDAL_TEST(compaction_is_exact_where_the_removed_tokens_cannot_have_influenced) {
  for (const std::string& kind : {std::string("llama3"), std::string("qwen2"), std::string("qwen3")}) {
    CpuBackendFixture f(tiny_model_spec(kind));
    const ModelConfig& config = f.model.config;
    const auto tokens = random_tokens(90, config.vocab_size, 13);
    const KvRanges ranges = {{0, 30}, {50, 40}};
    auto cache = f.prefilled(tokens);
    f.backend->compact(*cache, ranges);
    const KvSnapshot compacted = snapshot(*f.backend, *cache, config);
    const KvSnapshot fresh = snapshot(*f.backend, *f.prefilled(kept_tokens(tokens, ranges)), config);
    bool values_equal = true;
    double key_error = 0;
    for (int64_t head = 0; head < config.num_kv_heads; ++head)
      for (int64_t position = 0; position < 70; ++position) {
        values_equal &= rows_equal(compacted.value(0, head, position), fresh.value(0, head, position), config.head_dim);
        for (int64_t i = 0; i < config.head_dim; ++i)
          key_error =
              std::fmax(key_error, std::fabs(compacted.key(0, head, position)[i] - fresh.key(0, head, position)[i]));
      }
    CHECK(values_equal);
    // The fresh prefill forms its angles in f32 (position * inv_freq): ~1e-5 at these positions.
    CHECK(key_error < 5e-5);
  }
  SyntheticModelSpec one_layer = tiny_model_spec("llama3");
  one_layer.num_layers = 1;
  auto engine = make_test_engine(one_layer);
  const auto tokens = random_tokens(90, one_layer.vocab_size, 14);
  const KvRanges ranges = {{0, 30}, {50, 40}};
  const SequenceId compacted = engine->create_sequence();
  engine->prefill(compacted, tokens);
  engine->compact_sequence(compacted, ranges);
  const SequenceId fresh = engine->create_sequence();
  engine->prefill(fresh, kept_tokens(tokens, ranges));
  CHECK(engine->sequence_tokens(compacted) == kept_tokens(tokens, ranges));
  CHECK(max_relative_difference(engine->decode(compacted, 7), engine->decode(fresh, 7)) < 1e-4);
}

TIDAL_TEST(engine_compaction_to_a_prefix_equals_trim_and_keeping_everything_changes_nothing) {
  SyntheticModelSpec spec = tiny_model_spec("qwen2");
  auto engine = make_test_engine(spec);
  const auto tokens = random_tokens(45, spec.vocab_size, 15);
  const SequenceId seq = engine->create_sequence();
  const std::vector<float> original = engine->prefill(seq, tokens);
  const int64_t prefilled = engine->usage().tokens_prefilled;
  engine->compact_sequence(seq, {{0, 20}, {20, 25}});  // adjacent ranges from 0: nothing moves
  CHECK(bitwise_equal(engine->prefill(seq, {}), original));
  CHECK_EQ(engine->usage().tokens_prefilled, prefilled);  // the logits stayed valid
  engine->compact_sequence(seq, {{0, 30}});
  const SequenceId fresh = engine->create_sequence();
  CHECK(bitwise_equal(engine->prefill(seq, {}),
                      engine->prefill(fresh, std::vector<int32_t>(tokens.begin(), tokens.begin() + 30))));
  CHECK(bitwise_equal(engine->decode(seq, 4), engine->decode(fresh, 4)));
}

TIDAL_TEST(engine_compaction_of_a_middle_range_is_close_to_a_fresh_prefill) {
  for (const std::string& kind : {std::string("llama"), std::string("llama3"), std::string("qwen3")}) {
    SyntheticModelSpec spec = tiny_model_spec(kind);
    auto engine = make_test_engine(spec);
    const auto tokens = random_tokens(120, spec.vocab_size, 16);
    const KvRanges ranges = {{0, 40}, {80, 40}};
    const SequenceId compacted = engine->create_sequence();
    engine->prefill(compacted, tokens);
    engine->compact_sequence(compacted, ranges);
    const SequenceId fresh = engine->create_sequence();
    engine->prefill(fresh, kept_tokens(tokens, ranges));
    const std::vector<float> a = engine->decode(compacted, 9), b = engine->decode(fresh, 9);
    bool finite = true;
    for (float v : a) finite &= std::isfinite(v);
    const double divergence = max_relative_difference(a, b);
    std::printf("    %s: logits after compaction vs a fresh prefill of the kept tokens: max rel diff %.3e\n",
                kind.c_str(), divergence);
    CHECK(finite);
    CHECK(divergence > 0.0);  // approximate: the moved K/V saw the removed tokens
    CHECK(divergence < 1.0);
  }
}

TIDAL_TEST(engine_compaction_rejects_bad_ranges_and_leaves_the_sequence_unchanged) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  const auto tokens = random_tokens(30, spec.vocab_size, 17);
  const SequenceId seq = engine->create_sequence();
  const std::vector<float> original = engine->prefill(seq, tokens);
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{0, 0}}), "is empty");
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{-1, 3}}), "outside the 30 processed positions");
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{25, 6}}), "outside");
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{30, 1}}), "outside");
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{0, 10}, {5, 3}}), "must not overlap");
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{10, 5}, {0, 3}}), "ascending");
  CHECK_THROWS_WITH(engine->compact_sequence(seq + 100, {{0, 3}}), "unknown sequence");
  CHECK(engine->sequence_tokens(seq) == tokens);
  CHECK(bitwise_equal(engine->prefill(seq, {}), original));

  // Pending tokens are dropped, and ranges may not reach them.
  GenerateOptions generate;
  generate.max_tokens = 2;
  generate.stop_at_eos = false;
  engine->generate(seq, {}, generate);  // 32 tokens, the last one pending
  CHECK_EQ(engine->sequence_length(seq), 32);
  CHECK_THROWS_WITH(engine->compact_sequence(seq, {{0, 32}}), "outside the 31 processed positions");
  const std::vector<int32_t> held = engine->sequence_tokens(seq);
  engine->compact_sequence(seq, {{0, 10}, {20, 11}});
  std::vector<int32_t> expected(held.begin(), held.begin() + 10);
  expected.insert(expected.end(), held.begin() + 20, held.begin() + 31);
  CHECK(engine->sequence_tokens(seq) == expected);
  CHECK_EQ(engine->prefill(seq, {}).size(), size_t(spec.vocab_size));  // the last token runs again
  engine->compact_sequence(seq, {});
  CHECK_EQ(engine->sequence_length(seq), 0);
  engine->prefill(seq, {1, 2, 3});
}

TIDAL_TEST(engine_compaction_copies_pages_shared_with_forks_first) {
  SyntheticModelSpec spec = tiny_model_spec("qwen2");
  auto engine = make_test_engine(spec);
  const auto tokens = random_tokens(64, spec.vocab_size, 18);
  const SequenceId source = engine->create_sequence();
  engine->prefill(source, tokens);
  const SequenceId fork = engine->fork_sequence(source);
  const size_t shared = engine->usage().kv_bytes;
  engine->compact_sequence(fork, {{0, 10}, {30, 34}});  // rewrites pages 0-2 of the fork
  CHECK_EQ(engine->usage().kv_bytes, shared + 3 * 16 * engine->model_info().kv_bytes_per_token);
  const SequenceId fresh = engine->create_sequence();
  engine->prefill(fresh, tokens);
  for (int32_t next : {5, 60}) CHECK(bitwise_equal(engine->decode(source, next), engine->decode(fresh, next)));
  CHECK_EQ(engine->sequence_length(fork), 44);
}

TIDAL_TEST(engine_compaction_out_of_memory_leaves_the_sequence_unchanged) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  EngineOptions options = test_engine_options();
  options.max_kv_bytes = 4 * 16 * make_test_engine(spec)->model_info().kv_bytes_per_token;  // four pages
  auto engine = make_test_engine(spec, options);
  const auto tokens = random_tokens(64, spec.vocab_size, 19);
  const SequenceId source = engine->create_sequence();
  const std::vector<float> logits = engine->prefill(source, tokens);
  const SequenceId fork = engine->fork_sequence(source);  // shares all four pages
  CHECK_THROWS_WITH(engine->compact_sequence(fork, {{0, 8}, {40, 24}}), "bytes");
  CHECK(engine->sequence_tokens(fork) == tokens);
  CHECK(bitwise_equal(engine->prefill(fork, {}), logits));
  engine->release_sequence(source);  // the pages are the fork's alone: no copy needed now
  engine->compact_sequence(fork, {{0, 8}, {40, 24}});
  CHECK_EQ(engine->sequence_length(fork), 32);
  const SequenceId fresh = engine->create_sequence();
  CHECK_THROWS_WITH(engine->prefill(fresh, tokens), "bytes");  // the cap still holds
}

TIDAL_TEST(engine_quest_decoding_after_compaction_reads_rebuilt_page_bounds) {
  SyntheticModelSpec spec = tiny_model_spec("deep");
  auto engine = make_test_engine(spec);
  const auto tokens = random_tokens(160, spec.vocab_size, 20);
  const KvRanges ranges = {{0, 35}, {61, 70}, {140, 20}};
  const SequenceId compacted = engine->create_sequence();
  engine->prefill(compacted, tokens);
  engine->compact_sequence(compacted, ranges);
  // A budget covering every page must equal full attention bitwise: the bounds of every page
  // are read, and no position past the new end leaks in.
  const SequenceId copy = engine->fork_sequence(compacted);
  CHECK(bitwise_equal(engine->decode(compacted, 8, quest(4096)), engine->decode(copy, 8)));
  CHECK_EQ(engine->sequence_length(compacted), 126);
}
