// Weights and the config that describes them must be of one model (reliability issue, cause
// 11). A config.json with fewer layers than the safetensors, or a GGUF block_count below its
// blk.N tensors, used to load and run the first layers only; tensors the config leaves unused
// now stop the load with a message naming them. Tensors a real checkpoint carries without
// needing them (RoPE inverse frequencies, a tied model's lm_head.weight) still load.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/model_weights.h"
#include "engine/synthetic_model.h"
#include "engine/tensor_source.h"
#include "engine_test_models.h"
#include "gguf_writer.h"
#include "harness.h"
#include "model/tensor_names.h"
#include "safetensors_writer.h"
#include "tidal/engine.h"
#include "tidal/error.h"

using namespace tidal;
using tidal_test::TempDir;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A copy of a committed fixture folder with `from` replaced by `to` in its config.json.
void copy_fixture_with_config_edit(const std::string& fixture, const std::string& dir, const std::string& from,
                                   const std::string& to) {
  const std::filesystem::path source = tidal_test::fixtures_dir() + "/models/" + fixture;
  for (const auto& entry : std::filesystem::directory_iterator(source))
    std::filesystem::copy_file(entry.path(), std::filesystem::path(dir) / entry.path().filename());
  std::string config = read_text(dir + "/config.json");
  const size_t at = config.find(from);
  if (at == std::string::npos) throw std::runtime_error("no '" + from + "' in " + fixture + "/config.json");
  tidal_test::write_text(dir + "/config.json", config.replace(at, from.size(), to));
}

std::string load_error(const std::string& path) {
  try {
    Engine::load(path, tidal_test::test_engine_options());
    return "";
  } catch (const ModelError& e) {
    return e.what();
  }
}

std::string from_tensors_error(const ModelConfig& config, std::shared_ptr<const TensorSource> tensors) {
  try {
    Engine::from_tensors(config, std::move(tensors), tidal_test::test_engine_options());
    return "";
  } catch (const ModelError& e) {
    return e.what();
  }
}

}  // namespace

TIDAL_TEST(cause11_config_with_fewer_layers_than_the_safetensors_is_refused) {
  TempDir llama;
  copy_fixture_with_config_edit("llama3-gqa-f32", llama.path(), "\"num_hidden_layers\": 6", "\"num_hidden_layers\": 5");
  CHECK_CONTAINS(load_error(llama.path()),
                 "model.layers.5.* (9 tensors) are in the weights but not used by config.json's 5 layers "
                 "(num_hidden_layers = 5); the config does not match the weights in '" +
                     llama.path() + "'");

  // Sharded, with biases: 12 tensors a layer, and several layers left over.
  TempDir qwen2;
  copy_fixture_with_config_edit("qwen2-tied-sharded-f32", qwen2.path(), "\"num_hidden_layers\": 6",
                                "\"num_hidden_layers\": 2");
  CHECK_CONTAINS(load_error(qwen2.path()),
                 "model.layers.2.*, model.layers.3.*, model.layers.4.* and 1 more layer (48 tensors) are in the "
                 "weights but not used by config.json's 2 layers (num_hidden_layers = 2)");
}

TIDAL_TEST(cause11_gguf_block_count_below_its_blk_tensors_is_refused) {
  // The converter writes block_count from the (edited) config and every tensor it finds.
  TempDir folder;
  copy_fixture_with_config_edit("llama3-gqa-f32", folder.path(), "\"num_hidden_layers\": 6",
                                "\"num_hidden_layers\": 5");
  TempDir dir;
  tidal_test::write_bytes(dir.file("model.gguf"), tidal_test::gguf_image_of_folder(folder.path()));
  CHECK_CONTAINS(load_error(dir.file("model.gguf")),
                 "blk.5.* (9 tensors) are in the weights but not used by the GGUF metadata's 5 layers "
                 "(llama.block_count = 5); the config does not match the weights in '" +
                     dir.file("model.gguf") + "'");
}

TIDAL_TEST(cause11_tensors_the_config_does_not_use_are_named) {
  // A llama model without attention_bias, whose weights carry an o_proj bias.
  SyntheticModelSpec spec = tidal_test::tiny_model_spec("llama");
  SyntheticModel model = make_synthetic_model(spec);
  std::shared_ptr<InMemoryTensors> tensors = model.tensors;
  tensors->add_f32("model.layers.1.self_attn.o_proj.bias", DType::F32, {spec.hidden_size},
                   std::vector<float>(static_cast<size_t>(spec.hidden_size), 0.5f));
  CHECK_CONTAINS(from_tensors_error(model.config, tensors),
                 "tensor 'model.layers.1.self_attn.o_proj.bias' is in the weights but not used by the model the "
                 "model config describes");
  tensors->add_f32("vision_tower.patch_embed.weight", DType::F32, {4}, {1, 2, 3, 4});
  CHECK_CONTAINS(from_tensors_error(model.config, tensors),
                 "2 tensors ('model.layers.1.self_attn.o_proj.bias' and 'vision_tower.patch_embed.weight') are in "
                 "the weights but not used");
}

TIDAL_TEST(cause11_tensors_checkpoints_carry_without_needing_them_still_load) {
  // Saved RoPE inverse frequencies, and a tied model's stored copy of the embedding.
  SyntheticModelSpec spec = tidal_test::tiny_model_spec("qwen2");
  SyntheticModel model = make_synthetic_model(spec);
  std::shared_ptr<InMemoryTensors> tensors = model.tensors;
  tensors->add_f32("model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {spec.head_dim / 2},
                   std::vector<float>(static_cast<size_t>(spec.head_dim / 2), 1.0f));
  tensors->add_f32("lm_head.weight", DType::F32, {spec.vocab_size, spec.hidden_size},
                   std::vector<float>(static_cast<size_t>(spec.vocab_size * spec.hidden_size), 0.25f));
  CHECK(model.config.tie_word_embeddings);
  CHECK_EQ(from_tensors_error(model.config, tensors), std::string(""));
}

TIDAL_TEST(binding_requires_exactly_the_expected_tensors_of_the_config) {
  // bind_model_weights takes its list from expected_tensors: each required entry, removed,
  // is the missing tensor the binding names (biases, q/k norms and lm_head included where the
  // config has them), and a model holding just those tensors binds.
  for (const char* kind : {"llama", "llama-bf16", "mistral-f16", "qwen2", "qwen3"}) {
    const SyntheticModelSpec spec = tidal_test::tiny_model_spec(kind);
    const SyntheticModel full = make_synthetic_model(spec);
    bind_model_weights(full.config, *full.tensors);
    size_t required = 0;
    for (const ExpectedTensor& expected : expected_tensors(full.config)) {
      if (expected.optional) {
        CHECK(expected.name == "lm_head.weight" && full.config.tie_word_embeddings);
        continue;
      }
      ++required;
      SyntheticModel model = make_synthetic_model(spec);
      model.tensors->remove(expected.name);
      std::string error;
      try {
        bind_model_weights(model.config, *model.tensors);
      } catch (const ModelError& e) {
        error = e.what();
      }
      CHECK_CONTAINS(error, "missing tensor '" + expected.name + "'");
    }
    CHECK_EQ(required, full.tensors->names().size());
  }
}
