// End to end: a GGUF file made from a committed model folder, loaded with Engine::load (a
// TensorSource over GgufModel plus its ModelConfig), gives the same logits as the folder; a
// file of quantised matrices gives, kept quantised, the logits of its dequantised weights.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor_source.h"
#include "engine_test_models.h"
#include "gguf_writer.h"
#include "harness.h"
#include "model/gguf_model.h"
#include "model/half.h"
#include "model/quant.h"
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

namespace {

// Random blocks of a ggml type with finite f16 scales of a moderate size (model/quant.h).
std::vector<uint8_t> random_quantised(uint32_t ggml_type, size_t blocks, uint32_t seed) {
  const tidal::GgmlTypeInfo* info = tidal::ggml_type_info(ggml_type);
  std::vector<uint8_t> out(blocks * info->block_bytes);
  tidal::SamplingRandom random(seed);
  for (uint8_t& b : out) b = static_cast<uint8_t>(random.next());
  auto put_f16 = [&](size_t at, float value) {
    const uint16_t h = tidal::f32_to_f16(value);
    std::memcpy(out.data() + at, &h, 2);
  };
  for (size_t b = 0; b < blocks; ++b) {
    const size_t at = b * info->block_bytes;
    const float d = 0.004f + 0.004f * static_cast<float>(random.uniform());
    if (ggml_type == tidal_test::kGgmlQ6_K) {
      put_f16(at + 208, 0.25f * d);
    } else {
      put_f16(at, d);
      if (ggml_type == tidal_test::kGgmlQ4_K) put_f16(at + 2, 0.5f * d);
    }
  }
  return out;
}

}  // namespace

TIDAL_TEST(gguf_engine_keeps_quantised_matrices_with_the_dequantised_logits) {
  // A Q4_K_M-like llama file: Q8_0 embedding and attention, Q4_K gate|up, Q6_K down and
  // output. Kept in their blocks (the default) the engine gives bit for bit the logits of the
  // same file dequantised to f32 on load, with the weights' memory the file's blocks.
  const uint32_t layers = 2, hidden = 256, ffn = 512, heads = 4, kv_heads = 2, vocab = 96;
  tidal_test::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", layers);
  w.add_u32("llama.embedding_length", hidden);
  w.add_u32("llama.feed_forward_length", ffn);
  w.add_u32("llama.attention.head_count", heads);
  w.add_u32("llama.attention.head_count_kv", kv_heads);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_u32("llama.context_length", 2048);
  uint32_t seed = 1;
  size_t quantised_bytes = 0;
  auto matrix = [&](const std::string& name, uint32_t type, uint64_t cols, uint64_t rows) {
    const tidal::GgmlTypeInfo* info = tidal::ggml_type_info(type);
    const std::vector<uint8_t> bytes = random_quantised(type, cols * rows / info->block_elements, seed++);
    quantised_bytes += bytes.size();
    w.add_tensor(name, type, {cols, rows}, bytes);
  };
  auto norm = [&](const std::string& name) {
    std::vector<float> values = tidal_test::random_floats(hidden, seed++, 0.8f, 1.2f);
    quantised_bytes += values.size() * 4;
    w.add_tensor(name, tidal_test::kGgmlF32, {hidden}, tidal_test::f32_bytes(values));
  };
  const uint32_t head_dim = hidden / heads;
  matrix("token_embd.weight", tidal_test::kGgmlQ8_0, hidden, vocab);
  for (uint32_t l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", tidal_test::kGgmlQ8_0, hidden, heads * head_dim);
    matrix(p + "attn_k.weight", tidal_test::kGgmlQ8_0, hidden, kv_heads * head_dim);
    matrix(p + "attn_v.weight", tidal_test::kGgmlQ6_K, hidden, kv_heads * head_dim);
    matrix(p + "attn_output.weight", tidal_test::kGgmlQ4_K, heads * head_dim, hidden);
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", tidal_test::kGgmlQ4_K, hidden, ffn);
    matrix(p + "ffn_up.weight", tidal_test::kGgmlQ4_K, hidden, ffn);
    matrix(p + "ffn_down.weight", tidal_test::kGgmlQ6_K, ffn, hidden);
  }
  norm("output_norm.weight");
  matrix("output.weight", tidal_test::kGgmlQ6_K, hidden, vocab);
  tidal_test::TempDir dir;
  tidal_test::write_bytes(dir.file("q.gguf"), w.bytes());

  auto kept = tidal::Engine::load(dir.file("q.gguf"), tidal_test::test_engine_options());
  tidal::GgufLoadOptions dequantise;
  dequantise.keep_quantized = false;
  tidal::GgufModel model = tidal::GgufModel::open(dir.file("q.gguf"), dequantise);
  const tidal::ModelConfig config = model.config();
  auto full = tidal::Engine::from_tensors(config, std::make_shared<tidal::GgufTensors>(std::move(model)),
                                          tidal_test::test_engine_options());
  CHECK_EQ(kept->model_info().weight_bytes, quantised_bytes);
  CHECK(full->model_info().weight_bytes > 5 * quantised_bytes);  // f32: 4 bytes a value
  CHECK_EQ(kept->model_info().dtype, "mixed");

  const std::vector<int32_t> prompt = tidal_test::random_tokens(40, vocab, 9);
  const tidal::SequenceId a = kept->create_sequence(), b = full->create_sequence();
  std::vector<float> la = kept->prefill(a, prompt), lb = full->prefill(b, prompt);
  bool finite = !la.empty();
  for (float v : la) finite = finite && std::isfinite(v);
  CHECK(finite);
  CHECK(la == lb);
  for (int32_t token : {3, 50, 7}) {
    la = kept->prefill(a, {token});
    lb = full->prefill(b, {token});
    CHECK(la == lb);
  }
}
