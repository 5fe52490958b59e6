// End to end: a GGUF file made from a committed model folder, loaded with Engine::load (a
// TensorSource over GgufModel plus its ModelConfig), gives the same logits as the folder.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor_source.h"
#include "engine_test_models.h"
#include "gguf_writer.h"
#include "harness.h"
#include "model/gguf_model.h"
#include "safetensors_writer.h"
#include "tidal/engine.h"

TIDAL_TEST(gguf_engine_logits_match_the_safetensors_folder) {
  for (const char* folder_name : {"llama3-gqa-f32", "qwen2-tied-sharded-f32"}) {
    const std::string folder = tidal_test::fixtures_dir() + "/models/" + folder_name;
    tidal_test::TempDir dir;
    tidal_test::write_bytes(dir.file("model.gguf"), tidal_test::gguf_image_of_folder(folder));
    // Engine::load takes a .gguf file in place of a model folder.
    auto gguf_engine = tidal::Engine::load(dir.file("model.gguf"), tidal_test::test_engine_options());
    const int64_t vocab_size = gguf_engine->model_info().vocab_size;
    auto folder_engine = tidal::Engine::load(folder, tidal_test::test_engine_options());

    const std::vector<int32_t> prompt = tidal_test::random_tokens(24, vocab_size, 5);
    const std::vector<float> a = gguf_engine->prefill(gguf_engine->create_sequence(), prompt);
    const std::vector<float> b = folder_engine->prefill(folder_engine->create_sequence(), prompt);
    CHECK_EQ(a.size(), b.size());
    // The only differences are rms_norm_eps and rope_theta stored as float32 in GGUF.
    double worst = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
    if (!(worst < 1e-4))
      ::tidal_test::record_failure(__FILE__, __LINE__,
                                   std::string(folder_name) + ": logits differ by " + std::to_string(worst));
  }
}
