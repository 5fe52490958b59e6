// Saving and loading sequences (Engine::save_sequence / load_sequence, engine/kv_file.h): a
// round trip gives the same tokens and bitwise the same logits in a new engine, and every
// way a file can be wrong is a RequestError saying which.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/kv_file.h"
#include "engine/model_fingerprint.h"
#include "engine_test_models.h"
#include "harness.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

namespace {

// A file name of its own in the system's temporary directory, removed with the object.
struct TempPath {
  explicit TempPath(const std::string& name)
      : path((std::filesystem::temp_directory_path() / ("tidal-kv-test-" + std::to_string(::getpid()) + "-" + name))
                 .string()) {}
  ~TempPath() {
    std::remove(path.c_str());
    std::remove((path + ".tmp").c_str());
  }
  std::string path;
};

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

AttentionOptions mode(AttentionMode m) {
  AttentionOptions a;
  a.mode = m;
  a.token_budget = 32;
  return a;
}

// A file of the given header whose K/V are zeros, for the cases an engine cannot produce.
void write_crafted(const std::string& path, const KvFileHeader& header, const std::vector<int32_t>& tokens) {
  const size_t bytes =
      static_cast<size_t>(header.layers * 2 * header.kv_heads * header.cached_count) *
      (static_cast<size_t>(header.head_dim) * kv_element_bytes(header.kv_dtype) + kv_row_extra_bytes(header.kv_dtype));
  write_kv_file(path, header, tokens, {}, [&](KvByteSink& sink) {
    const std::vector<char> zeros(bytes);
    sink.write(zeros.data(), zeros.size());
  });
}

}  // namespace

TIDAL_TEST(engine_saved_sequence_loads_with_the_same_tokens_and_logits) {
  for (const std::string& kind : {std::string("llama3"), std::string("qwen3"), std::string("mistral-f16")}) {
    SyntheticModelSpec spec = tiny_model_spec(kind);
    auto saver = make_test_engine(spec);
    auto loader = make_test_engine(spec);
    TempPath file(kind + ".kv");
    const SequenceId seq = saver->create_sequence();
    saver->prefill(seq, random_tokens(70, spec.vocab_size, 21));
    saver->decode(seq, 3);
    const size_t bytes = saver->save_sequence(seq, file.path);
    CHECK_EQ(bytes, static_cast<size_t>(std::filesystem::file_size(file.path)));
    CHECK(!std::filesystem::exists(file.path + ".tmp"));
    const SequenceId loaded = loader->load_sequence(file.path);
    CHECK(loader->sequence_tokens(loaded) == saver->sequence_tokens(seq));
    CHECK_EQ(loader->usage().kv_bytes, saver->usage().kv_bytes);
    const int64_t prefilled = loader->usage().tokens_prefilled;
    CHECK(bitwise_equal(loader->prefill(loaded, {}), saver->prefill(seq, {})));  // the saved logits
    CHECK_EQ(loader->usage().tokens_prefilled, prefilled);
    for (AttentionMode m : {AttentionMode::Full, AttentionMode::Quest, AttentionMode::Tidal})
      CHECK(bitwise_equal(loader->decode(loaded, 17, mode(m)), saver->decode(seq, 17, mode(m))));
  }
}

TIDAL_TEST(engine_saved_sequence_keeps_pending_tokens_and_missing_logits) {
  SyntheticModelSpec spec = tiny_model_spec("qwen2");
  auto saver = make_test_engine(spec);
  auto loader = make_test_engine(spec);
  TempPath file("pending.kv");
  GenerateOptions generate;
  generate.max_tokens = 3;
  generate.stop_at_eos = false;
  // The last generated token is pending (not in the K/V yet).
  const SequenceId seq = saver->create_sequence();
  saver->generate(seq, random_tokens(40, spec.vocab_size, 22), generate);
  saver->save_sequence(seq, file.path);
  const SequenceId loaded = loader->load_sequence(file.path);
  CHECK(loader->sequence_tokens(loaded) == saver->sequence_tokens(seq));
  CHECK(loader->generate(loaded, {}, generate).tokens == saver->generate(seq, {}, generate).tokens);
  // After a compaction the logits are invalid: the loaded sequence recomputes them the same way.
  saver->compact_sequence(seq, {{0, 10}, {20, 20}});
  saver->save_sequence(seq, file.path);
  const SequenceId compacted = loader->load_sequence(file.path);
  CHECK(bitwise_equal(loader->prefill(compacted, {}), saver->prefill(seq, {})));
  // An empty sequence round-trips too.
  const SequenceId empty = saver->create_sequence();
  saver->save_sequence(empty, file.path);
  CHECK_EQ(loader->sequence_length(loader->load_sequence(file.path)), 0);
}

TIDAL_TEST(engine_load_sequence_rejects_bad_files_with_clear_errors) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  TempPath good("good.kv"), bad("bad.kv");
  const SequenceId seq = engine->create_sequence();
  const std::vector<int32_t> tokens = random_tokens(72, spec.vocab_size, 23);
  engine->prefill(seq, tokens);
  engine->save_sequence(seq, good.path);
  const std::vector<char> bytes = read_bytes(good.path);
  const int64_t sequences = engine->usage().sequences;

  CHECK_THROWS_WITH(engine->load_sequence(good.path + ".missing"), "cannot open KV file");
  write_bytes(bad.path, std::vector<char>(100, 'x'));
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "is not a Tidal KV file");
  std::vector<char> patched = bytes;
  patched[8] = 9;
  write_bytes(bad.path, patched);
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "format version 9");

  // Cut files: inside the header, inside the K/V, the end marker missing; and extra bytes.
  write_bytes(bad.path, std::vector<char>(bytes.begin(), bytes.begin() + 30));
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "ends inside its header");
  write_bytes(bad.path, std::vector<char>(bytes.begin(), bytes.end() - 5000));
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "is truncated");
  write_bytes(bad.path, std::vector<char>(bytes.begin(), bytes.end() - 1));
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "is truncated");
  patched = bytes;
  patched.push_back(0);
  write_bytes(bad.path, patched);
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "bytes follow");
  // A flipped byte in the tokens; a broken end marker.
  patched = bytes;
  const size_t tokens_at =
      std::string(bytes.begin(), bytes.end()).find(std::string(reinterpret_cast<const char*>(tokens.data()), 16));
  CHECK(tokens_at != std::string::npos);
  patched[tokens_at + 1] ^= 1;
  write_bytes(bad.path, patched);
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "checksum");
  patched = bytes;
  patched[patched.size() - 20] ^= 1;
  write_bytes(bad.path, patched);
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "end marker");

  // Another model: other weights of the same shape, another shape.
  SyntheticModelSpec other_weights = spec;
  other_weights.seed = spec.seed + 1;
  CHECK_THROWS_WITH(make_test_engine(other_weights)->load_sequence(good.path), "another model (weight_sample_hash");
  SyntheticModelSpec other_shape = spec;
  other_shape.hidden_size = 64;
  CHECK_THROWS_WITH(make_test_engine(other_shape)->load_sequence(good.path),
                    "hidden_size: the file has 48, this model has 64");
  SyntheticModelSpec other_rope = spec;
  other_rope.rope_theta = 20000.0;
  CHECK_THROWS_WITH(make_test_engine(other_rope)->load_sequence(good.path), "rope_theta");

  // Limits of the engine loading it: its context, its memory cap.
  EngineOptions short_context = test_engine_options();
  short_context.max_context = 50;
  CHECK_THROWS_WITH(make_test_engine(spec, short_context)->load_sequence(good.path), "more than this engine's context");
  EngineOptions small_cap = test_engine_options();
  small_cap.max_kv_bytes = 16 * engine->model_info().kv_bytes_per_token;
  auto capped = make_test_engine(spec, small_cap);
  bool out_of_memory = false;
  try {
    capped->load_sequence(good.path);
  } catch (const OutOfMemoryError&) {
    out_of_memory = true;
  }
  CHECK(out_of_memory);
  CHECK_EQ(capped->usage().sequences, 0);
  CHECK_EQ(capped->usage().kv_bytes, size_t(0));

  // Files an engine of this backend would not write: another backend's, bad token ids.
  SyntheticModel model = make_synthetic_model(spec);
  const ModelWeights weights = bind_model_weights(model.config, *model.tensors);
  KvFileHeader header;
  header.backend = "cuda";
  header.kv_dtype = "bf16";
  header.layers = spec.num_layers;
  header.kv_heads = spec.num_kv_heads;
  header.head_dim = spec.head_dim;
  header.model = model_fingerprint(model.config, weights);
  header.token_count = header.cached_count = 3;
  write_crafted(bad.path, header, {1, 2, 3});
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "saved by the cuda backend (bf16 K/V)");
  header.backend = "cpu";
  header.kv_dtype = "f32";
  write_crafted(bad.path, header, {1, int32_t(spec.vocab_size), 3});
  CHECK_THROWS_WITH(engine->load_sequence(bad.path), "token id 96 at index 1, outside the vocabulary");
  write_crafted(bad.path, header, {1, 2, 3});
  CHECK_EQ(engine->sequence_length(engine->load_sequence(bad.path)), 3);  // the same, well formed

  CHECK_EQ(engine->usage().sequences, sequences + 1);
}

TIDAL_TEST(model_fingerprint_covers_every_rope_frequency_bit) {
  // Keys rotated with other frequencies are other keys: one frequency one step away in f32
  // is another model, whatever theta and rope_scaling say.
  SyntheticModel model = make_synthetic_model(tiny_model_spec("llama3"));
  const ModelWeights weights = bind_model_weights(model.config, *model.tensors);
  const ModelFingerprint base = model_fingerprint(model.config, weights);
  CHECK_EQ(fingerprint_difference(base, model_fingerprint(model.config, weights)), std::string(""));
  for (size_t i : {size_t(0), model.config.rope_frequencies.size() - 1}) {
    ModelConfig nudged = model.config;
    nudged.rope_frequencies[i] = std::nextafter(nudged.rope_frequencies[i], 0.0f);
    const std::string difference = fingerprint_difference(base, model_fingerprint(nudged, weights));
    CHECK_EQ(difference.substr(0, 45), std::string("rope_frequencies: the file has 6 pairs, hash "));
  }
}

TIDAL_TEST(engine_save_sequence_errors_leave_no_file) {
  SyntheticModelSpec spec = tiny_model_spec("llama");
  auto engine = make_test_engine(spec);
  const SequenceId seq = engine->create_sequence();
  engine->prefill(seq, random_tokens(20, spec.vocab_size, 24));
  TempPath directory("no-such-directory");
  const std::string path = directory.path + "/sequence.kv";
  CHECK_THROWS_WITH(engine->save_sequence(seq, path), "cannot create KV file");
  CHECK(!std::filesystem::exists(path));
  CHECK(!std::filesystem::exists(path + ".tmp"));
  CHECK_THROWS_WITH(engine->save_sequence(seq + 100, directory.path), "unknown sequence");
}
