// GGUF files as models: the config from `<arch>.*` metadata, GGUF tensor names mapped to
// Hugging Face names, llama Q/K rows put back in Hugging Face order, tokenizer metadata.
// The strongest check rebuilds a committed safetensors fixture as a GGUF file the way the
// llama.cpp converter lays it out and requires the exact original tensors back.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gguf_writer.h"
#include "harness.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/half.h"
#include "model/model_config.h"
#include "model/rope_frequencies.h"
#include "model/weight_store.h"
#include "safetensors_writer.h"
#include "tidal/error.h"

using tidal::GgufModel;
using tidal_test::GgufWriter;
using tidal_test::TempDir;

namespace {

std::vector<float> to_f32(const tidal::TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  tidal::convert_to_f32(t, out.data());
  return out;
}

void add_llama_metadata(GgufWriter& w, const char* arch, uint32_t layers, uint32_t hidden, uint32_t ffn, uint32_t heads,
                        uint32_t kv_heads, float eps = 1e-6f, float rope_base = 1000000.0f, uint32_t context = 4096) {
  const std::string p = std::string(arch) + ".";
  w.add_string("general.architecture", arch);
  w.add_u32(p + "block_count", layers);
  w.add_u32(p + "embedding_length", hidden);
  w.add_u32(p + "feed_forward_length", ffn);
  w.add_u32(p + "attention.head_count", heads);
  w.add_u32(p + "attention.head_count_kv", kv_heads);
  w.add_f32(p + "attention.layer_norm_rms_epsilon", eps);
  w.add_f32(p + "rope.freq_base", rope_base);
  w.add_u32(p + "context_length", context);
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

GgufModel open_image(const TempDir& dir, const std::vector<uint8_t>& image) {
  tidal_test::write_bytes(dir.file("m.gguf"), image);
  return GgufModel::open(dir.file("m.gguf"));
}

}  // namespace

TIDAL_TEST(gguf_model_name_mapping_both_ways) {
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("token_embd.weight"), "model.embed_tokens.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("output.weight"), "lm_head.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("output_norm.weight"), "model.norm.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.12.ffn_down.weight"), "model.layers.12.mlp.down_proj.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.0.attn_q.bias"), "model.layers.0.self_attn.q_proj.bias");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.3.attn_output.weight"), "model.layers.3.self_attn.o_proj.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.3.attn_norm.weight"), "model.layers.3.input_layernorm.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.3.ffn_norm.weight"), "model.layers.3.post_attention_layernorm.weight");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.x.attn_q.weight"), "");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("blk.01.attn_q.weight"), "");
  CHECK_EQ(tidal::gguf_to_hf_tensor_name("rope_freqs.weight"), "");
  CHECK_EQ(tidal::hf_to_gguf_tensor_name("model.layers.7.mlp.gate_proj.weight"), "blk.7.ffn_gate.weight");
  CHECK_EQ(tidal::hf_to_gguf_tensor_name("model.layers.7.self_attn.k_proj.weight"), "blk.7.attn_k.weight");
  CHECK_EQ(tidal::hf_to_gguf_tensor_name("lm_head.weight"), "output.weight");
  CHECK_EQ(tidal::hf_to_gguf_tensor_name("model.layers.7.unknown"), "");
}

TIDAL_TEST(gguf_model_qk_permutation_matches_the_converter) {
  // One head of 4 rows: Hugging Face rows (0, 1 | 2, 3) pair row j with row j + 2; the
  // converter interleaves them as 0, 2, 1, 3.
  std::vector<float> rows = {0, 1, 2, 3};
  std::vector<float> gguf(4), back(4);
  tidal::gguf_permute_qk_rows(rows.data(), gguf.data(), 4, 1, 1);
  CHECK(gguf == std::vector<float>({0, 2, 1, 3}));
  CHECK(tidal_test::converter_permute(rows, 4, 1) == gguf);
  // Two heads of 6 rows, 3 columns.
  std::vector<float> m = random_values(36, 9);
  std::vector<float> mine(36), undone(36);
  tidal::gguf_permute_qk_rows(m.data(), mine.data(), 12, 3, 2);
  CHECK(mine == tidal_test::converter_permute(m, 12, 2));
  tidal::gguf_unpermute_qk_rows(mine.data(), undone.data(), 12, 3, 2);
  CHECK(undone == m);
  CHECK_THROWS_WITH(tidal::gguf_permute_qk_rows(m.data(), mine.data(), 12, 3, 4), "12 rows do not split into 4 heads");
}

TIDAL_TEST(gguf_model_fixture_round_trip_gives_back_the_safetensors_tensors) {
  const std::string folder = tidal_test::fixtures_dir() + "/models/llama3-gqa-f32";
  tidal::WeightStore store = tidal::WeightStore::open(folder);
  tidal::ModelConfig hf = tidal::load_model_config(folder);

  GgufWriter w;
  add_llama_metadata(w, "llama", static_cast<uint32_t>(hf.num_layers), static_cast<uint32_t>(hf.hidden_size),
                     static_cast<uint32_t>(hf.intermediate_size), static_cast<uint32_t>(hf.num_heads),
                     static_cast<uint32_t>(hf.num_kv_heads), static_cast<float>(hf.rms_norm_eps),
                     static_cast<float>(hf.rope_theta), static_cast<uint32_t>(hf.max_position_embeddings));
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < hf.vocab_size; ++i) tokens.push_back("t" + std::to_string(i));
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  CHECK_EQ(hf.rope_scaling.type, "llama3");
  w.add_tensor("rope_freqs.weight", tidal_test::kGgmlF32, {static_cast<uint64_t>(hf.head_dim / 2)},
               tidal_test::f32_bytes(tidal_test::llama3_divisors(hf)));
  for (const std::string& name : store.names()) {
    const tidal::TensorView& t = store.get(name);
    std::vector<float> values = to_f32(t);
    const std::string gguf_name = tidal_test::converter_tensor_name(name);
    CHECK(!gguf_name.empty());
    CHECK_EQ(tidal::hf_to_gguf_tensor_name(name), gguf_name);
    if (name.find("q_proj") != std::string::npos)
      values = tidal_test::converter_permute(values, t.shape[0], hf.num_heads);
    if (name.find("k_proj") != std::string::npos)
      values = tidal_test::converter_permute(values, t.shape[0], hf.num_kv_heads);
    std::vector<uint64_t> ne(t.shape.rbegin(), t.shape.rend());
    w.add_tensor(gguf_name, tidal_test::kGgmlF32, ne, tidal_test::f32_bytes(values));
  }
  TempDir dir;
  GgufModel model = open_image(dir, w.bytes());

  const tidal::ModelConfig& c = model.config();
  CHECK(c.architecture == tidal::Architecture::Llama);
  CHECK_EQ(c.model_type, "llama");
  CHECK_EQ(c.vocab_size, hf.vocab_size);
  CHECK_EQ(c.hidden_size, hf.hidden_size);
  CHECK_EQ(c.intermediate_size, hf.intermediate_size);
  CHECK_EQ(c.num_layers, hf.num_layers);
  CHECK_EQ(c.num_heads, hf.num_heads);
  CHECK_EQ(c.num_kv_heads, hf.num_kv_heads);
  CHECK_EQ(c.head_dim, hf.head_dim);
  CHECK_EQ(c.max_position_embeddings, hf.max_position_embeddings);
  CHECK_NEAR(c.rms_norm_eps, hf.rms_norm_eps, 1e-12);
  CHECK_EQ(c.rope_theta, hf.rope_theta);
  CHECK_EQ(c.tie_word_embeddings, hf.tie_word_embeddings);
  CHECK_EQ(c.attention_bias, false);
  // The file gives per-pair divisors, not Llama 3 parameters; the frequencies are the
  // folder's, to the f32 rounding of the stored divisors.
  CHECK_EQ(c.rope_scaling.type, "per-pair");
  CHECK_EQ(c.rope_frequencies.size(), hf.rope_frequencies.size());
  for (size_t i = 0; i < c.rope_frequencies.size() && i < hf.rope_frequencies.size(); ++i)
    CHECK_NEAR(c.rope_frequencies[i], hf.rope_frequencies[i], 0x1p-23 * hf.rope_frequencies[i]);
  CHECK(c.bos_token_ids == std::vector<int64_t>({1}));
  CHECK(c.eos_token_ids == std::vector<int64_t>({2}));
  CHECK_EQ(model.rope_freq_factors().size(), static_cast<size_t>(hf.head_dim / 2));
  CHECK(model.unmapped_names() == std::vector<std::string>({"rope_freqs.weight"}));

  CHECK(model.names() == store.names());
  size_t compared = 0;
  for (const std::string& name : store.names()) {
    const tidal::TensorView* got = model.find(name);
    CHECK(got != nullptr);
    if (!got) continue;
    CHECK_EQ(got->name, name);
    CHECK(got->shape == store.get(name).shape);
    std::vector<float> a = to_f32(*got), b = to_f32(store.get(name));
    CHECK_EQ(a.size(), b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    ++compared;
  }
  CHECK(compared >= 9u * static_cast<size_t>(hf.num_layers));
  CHECK(model.find("model.layers.0.self_attn.q_proj.bias") == nullptr);
  // Permuted tensors are converted copies; others are views of the mapping.
  CHECK(model.find("model.layers.0.mlp.up_proj.weight")->data == model.file().find_tensor("blk.0.ffn_up.weight")->data);
  CHECK(model.find("model.layers.0.self_attn.q_proj.weight")->data !=
        model.file().find_tensor("blk.0.attn_q.weight")->data);
}

TIDAL_TEST(gguf_model_qwen2_keeps_rows_and_ties_embeddings) {
  GgufWriter w;
  add_llama_metadata(w, "qwen2", 1, 8, 16, 2, 1);
  const std::vector<float> q = random_values(64, 1), q_bias = random_values(8, 2), embed = random_values(40, 3);
  w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {8, 5}, tidal_test::f32_bytes(embed));
  w.add_tensor("blk.0.attn_q.weight", tidal_test::kGgmlF32, {8, 8}, tidal_test::f32_bytes(q));
  w.add_tensor("blk.0.attn_q.bias", tidal_test::kGgmlF32, {8}, tidal_test::f32_bytes(q_bias));
  TempDir dir;
  GgufModel model = open_image(dir, w.bytes());
  const tidal::ModelConfig& c = model.config();
  CHECK(c.architecture == tidal::Architecture::Qwen2);
  CHECK_EQ(c.attention_bias, true);
  CHECK_EQ(c.o_proj_bias, false);
  CHECK_EQ(c.tie_word_embeddings, true);
  CHECK_EQ(c.vocab_size, 5);
  CHECK_EQ(c.head_dim, 4);
  CHECK_EQ(c.rope_theta, 1000000.0);
  CHECK_EQ(c.rope_scaling.type, "none");
  CHECK(to_f32(*model.find("model.layers.0.self_attn.q_proj.weight")) == q);
  CHECK(to_f32(*model.find("model.layers.0.self_attn.q_proj.bias")) == q_bias);
  CHECK(model.find("lm_head.weight") == nullptr);
  CHECK(tidal::shape_string(model.find("model.embed_tokens.weight")->shape) == "[5, 8]");
}

TIDAL_TEST(gguf_model_keeps_quantised_matrices_and_unpermutes_llama_rows) {
  // attn_q as Q8_0 (rows of 32: its rows move as whole blocks), attn_k as F16 (needs the row
  // reordering, so copied), ffn_up as Q6_K and attn_v as BF16 (views into the file).
  GgufWriter w;
  add_llama_metadata(w, "llama", 1, 32, 256, 2, 1);
  std::mt19937 rng(5);
  std::vector<uint8_t> q8(32 * 34);
  for (size_t b = 0; b < 32; ++b) {
    uint16_t d = tidal::f32_to_f16(0.01f * static_cast<float>(b + 1));
    q8[b * 34] = static_cast<uint8_t>(d);
    q8[b * 34 + 1] = static_cast<uint8_t>(d >> 8);
    for (int i = 0; i < 32; ++i) q8[b * 34 + 2 + i] = static_cast<uint8_t>(rng());
  }
  const std::vector<float> k = random_values(16 * 32, 6), v = random_values(16 * 32, 7);
  std::vector<uint8_t> q6(32 * 210);
  for (size_t b = 0; b < 32; ++b) {
    for (int i = 0; i < 208; ++i) q6[b * 210 + i] = static_cast<uint8_t>(rng());
    q6[b * 210 + 208] = 0x00;  // d = 2^-10 as f16 (0x1400)
    q6[b * 210 + 209] = 0x14;
  }
  w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {32, 4}, tidal_test::f32_bytes(random_values(128, 8)));
  w.add_tensor("blk.0.attn_q.weight", tidal_test::kGgmlQ8_0, {32, 32}, q8);
  w.add_tensor("blk.0.attn_k.weight", tidal_test::kGgmlF16, {32, 16}, tidal_test::f16_bytes(k));
  w.add_tensor("blk.0.attn_v.weight", tidal_test::kGgmlBF16, {32, 16}, tidal_test::bf16_bytes(v));
  w.add_tensor("blk.0.ffn_up.weight", tidal_test::kGgmlQ6_K, {256, 32}, q6);
  TempDir dir;
  GgufModel model = open_image(dir, w.bytes());

  std::vector<float> q_rows(32 * 32), q_expected(32 * 32);
  tidal::gguf_tensor_to_f32(*model.file().find_tensor("blk.0.attn_q.weight"), q_rows.data());
  tidal::gguf_unpermute_qk_rows(q_rows.data(), q_expected.data(), 32, 32, 2);
  const tidal::TensorView* q = model.find("model.layers.0.self_attn.q_proj.weight");
  CHECK(q->dtype == tidal::DType::Q8_0);
  CHECK_EQ(q->bytes, 32u * 34u);
  CHECK(q->shape == std::vector<int64_t>({32, 32}));
  CHECK(to_f32(*q) == q_expected);
  // Row 1 of Hugging Face head 0 is GGUF row 2 (pairs interleaved): block 2 has d = 0.03.
  CHECK_EQ(to_f32(*q)[32], q_rows[64]);

  std::vector<float> k_half(k.size());
  for (size_t i = 0; i < k.size(); ++i) k_half[i] = tidal::f16_to_f32(tidal::f32_to_f16(k[i]));
  std::vector<float> k_expected(k.size());
  tidal::gguf_unpermute_qk_rows(k_half.data(), k_expected.data(), 16, 32, 1);
  const tidal::TensorView* kv = model.find("model.layers.0.self_attn.k_proj.weight");
  CHECK(kv->dtype == tidal::DType::F16);  // rows moved, type kept
  CHECK(to_f32(*kv) == k_expected);

  const tidal::TensorView* vv = model.find("model.layers.0.self_attn.v_proj.weight");
  CHECK(vv->dtype == tidal::DType::BF16);
  CHECK_EQ(to_f32(*vv)[5], tidal::bf16_to_f32(tidal::f32_to_bf16(v[5])));

  const tidal::TensorView* up = model.find("model.layers.0.mlp.up_proj.weight");
  CHECK(up->shape == std::vector<int64_t>({32, 256}));
  std::vector<float> up_expected(256 * 32);
  tidal::gguf_tensor_to_f32(*model.file().find_tensor("blk.0.ffn_up.weight"), up_expected.data());
  CHECK(to_f32(*up) == up_expected);
  CHECK(up->dtype == tidal::DType::Q6_K);
  CHECK(up->data == model.file().find_tensor("blk.0.ffn_up.weight")->data);  // no copy
  CHECK(model.find("model.layers.0.mlp.up_proj.weight") == up);

  // Without keep_quantized: dequantised to F32, exactly the kept blocks' values.
  tidal::GgufLoadOptions dequantise;
  dequantise.keep_quantized = false;
  GgufModel full = GgufModel::open(dir.file("m.gguf"), dequantise);
  const tidal::TensorView* q32 = full.find("model.layers.0.self_attn.q_proj.weight");
  CHECK(q32->dtype == tidal::DType::F32);
  CHECK(to_f32(*q32) == q_expected);
  CHECK(full.find("model.layers.0.mlp.up_proj.weight")->dtype == tidal::DType::F32);

  // Dequantising to BF16 rounds each F32 value once.
  tidal::GgufLoadOptions options;
  options.keep_quantized = false;
  options.dequantized_dtype = tidal::DType::BF16;
  GgufModel half = GgufModel::open(dir.file("m.gguf"), options);
  const tidal::TensorView* q16 = half.find("model.layers.0.self_attn.q_proj.weight");
  CHECK(q16->dtype == tidal::DType::BF16);
  CHECK_EQ(q16->bytes, 32u * 32u * 2u);
  std::vector<float> q16_values = to_f32(*q16);
  for (size_t i = 0; i < q_expected.size(); ++i)
    CHECK_EQ(q16_values[i], tidal::bf16_to_f32(tidal::f32_to_bf16(q_expected[i])));
  CHECK(half.find("model.layers.0.self_attn.k_proj.weight")->dtype == tidal::DType::F16);
}

TIDAL_TEST(gguf_model_rejects_unsupported_or_incomplete_metadata) {
  TempDir dir;
  auto error_of = [&](const GgufWriter& w) -> std::string {
    try {
      open_image(dir, w.bytes());
      return "";
    } catch (const tidal::ModelError& e) {
      return e.what();
    }
  };
  {
    GgufWriter w;
    w.add_string("general.architecture", "gemma");
    std::string e = error_of(w);
    CHECK(e.find("unsupported architecture 'gemma' (general.architecture); supported: llama, qwen2") !=
          std::string::npos);
    CHECK(e.find("m.gguf") != std::string::npos);
  }
  {
    GgufWriter w;
    CHECK(error_of(w).find("'general.architecture' is missing") != std::string::npos);
  }
  {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.embedding_length", 8);
    CHECK(error_of(w).find("required metadata 'llama.block_count' is missing") != std::string::npos);
  }
  {
    GgufWriter w;
    add_llama_metadata(w, "llama", 1, 8, 16, 3, 2);
    w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {8, 2}, tidal_test::f32_bytes(random_values(16, 1)));
    CHECK(error_of(w).find("is not a multiple of llama.attention.head_count_kv") != std::string::npos);
  }
  {
    GgufWriter w;
    add_llama_metadata(w, "llama", 1, 8, 16, 2, 1);
    w.add_string("llama.rope.scaling.type", "yarn");
    w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {8, 2}, tidal_test::f32_bytes(random_values(16, 1)));
    CHECK(error_of(w).find("unsupported RoPE scaling 'yarn'") != std::string::npos);
  }
  {
    // rope_freqs.weight: one finite positive divisor per pair (head_dim 4: two), else refused.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const struct {
      std::vector<uint64_t> ne;
      std::vector<float> divisors;
      const char* error;
    } bad[] = {
        {{3}, {1.0f, 1.0f, 1.0f}, "rope_freqs.weight has shape [3]; expected [2], one divisor per rotated pair"},
        {{2, 1}, {1.0f, 1.0f}, "rope_freqs.weight has shape [1, 2]; expected [2]"},
        {{2}, {1.0f, 0.0f}, "rope_freqs.weight holds 0 for pair 1; every divisor must be a finite positive number"},
        {{2}, {nan, 1.0f}, "rope_freqs.weight holds nan for pair 0"},
        {{2}, {1.0f, -4.0f}, "rope_freqs.weight holds -4 for pair 1"},
    };
    for (const auto& k : bad) {
      GgufWriter w;
      add_llama_metadata(w, "llama", 1, 8, 16, 2, 1);
      w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {8, 2}, tidal_test::f32_bytes(random_values(16, 1)));
      w.add_tensor("rope_freqs.weight", tidal_test::kGgmlF32, k.ne, tidal_test::f32_bytes(k.divisors));
      const std::string e = error_of(w);
      if (e.find(k.error) == std::string::npos || e.find("m.gguf") == std::string::npos)
        ::tidal_test::record_failure(__FILE__, __LINE__, "expected '" + std::string(k.error) + "', got '" + e + "'");
    }
  }
  {
    GgufWriter w;
    add_llama_metadata(w, "llama", 1, 8, 16, 2, 1);
    w.add_u32("llama.attention.head_count", 0);
    std::string e = error_of(w);
    CHECK(e.find("duplicate metadata key 'llama.attention.head_count'") != std::string::npos);
  }
  {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 1);
    w.add_u32("llama.embedding_length", 8);
    w.add_u32("llama.feed_forward_length", 16);
    w.add_u32("llama.attention.head_count", 0);
    CHECK(error_of(w).find("'llama.attention.head_count' = 0 is out of range") != std::string::npos);
  }
  {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_string("llama.block_count", "one");
    CHECK(error_of(w).find("'llama.block_count' must be an integer, found string \"one\"") != std::string::npos);
  }
}

TIDAL_TEST(gguf_model_exposes_tokenizer_metadata) {
  GgufWriter w;
  add_llama_metadata(w, "qwen2", 1, 8, 16, 2, 1);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "qwen2");
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "ab", "<|endoftext|>", "<|im_end|>"});
  w.add_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 3, 3});
  w.add_f32_array("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f, 0.0f, 0.0f});
  w.add_string_array("tokenizer.ggml.merges", {"a b"});
  w.add_u32("tokenizer.ggml.bos_token_id", 3);
  w.add_u32("tokenizer.ggml.eos_token_id", 4);
  w.add_u32("tokenizer.ggml.padding_token_id", 3);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");
  w.add_string("tokenizer.chat_template.tool_use", "{{ tools }}");
  TempDir dir;
  GgufModel model = open_image(dir, w.bytes());
  const tidal::GgufTokenizerMetadata& t = model.tokenizer();
  CHECK_EQ(t.model, "gpt2");
  CHECK_EQ(t.pre, "qwen2");
  CHECK_EQ(t.tokens.size(), 5u);
  CHECK_EQ(t.tokens[3], "<|endoftext|>");
  CHECK(t.token_types == std::vector<int32_t>({1, 1, 1, 3, 3}));
  CHECK_EQ(t.scores[2], -2.0f);
  CHECK(t.merges == std::vector<std::string>({"a b"}));
  CHECK(t.bos_id && *t.bos_id == 3);
  CHECK(t.eos_id && *t.eos_id == 4);
  CHECK(t.padding_id && *t.padding_id == 3);
  CHECK(!t.unknown_id);
  CHECK(t.add_bos && !*t.add_bos);
  CHECK(!t.add_eos);
  CHECK_EQ(t.chat_template, "{% for m in messages %}{{ m.content }}{% endfor %}");
  CHECK_EQ(t.named_chat_templates.size(), 1u);
  CHECK_EQ(t.named_chat_templates.at("tool_use"), "{{ tools }}");
  CHECK_EQ(model.config().vocab_size, 5);  // no token_embd: from the token list
  CHECK(model.config().eos_token_ids == std::vector<int64_t>({4}));

  GgufWriter bad;
  bad.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  bad.add_f32_array("tokenizer.ggml.scores", {0.0f});
  std::vector<uint8_t> image = bad.bytes();
  tidal::GgufContents c = tidal::parse_gguf(image.data(), image.size(), "t.gguf");
  CHECK_THROWS_WITH(tidal::read_gguf_tokenizer(c),
                    "tokenizer.ggml.scores has 1 entries but tokenizer.ggml.tokens has 2");
  GgufWriter bad_id;
  bad_id.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  bad_id.add_u32("tokenizer.ggml.eos_token_id", 7);
  image = bad_id.bytes();
  c = tidal::parse_gguf(image.data(), image.size(), "t.gguf");
  CHECK_THROWS_WITH(tidal::read_gguf_tokenizer(c), "'tokenizer.ggml.eos_token_id' = 7 is not a token id");
}

TIDAL_TEST(gguf_model_rope_frequencies_are_the_divisors_applied_as_given) {
  // Any positive divisors, whether or not a Llama 3 rule produced them: frequency i is
  // theta^(-2i/d) / divisor_i. Then Llama-3.1-8B's divisors (head_dim 128) as a converter
  // stores them, which give the config.json frequencies to one unit in the last place.
  {
    GgufWriter w;
    add_llama_metadata(w, "llama", 1, 8, 16, 2, 1, 1e-6f, 10000.0f);
    w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {8, 2}, tidal_test::f32_bytes(random_values(16, 1)));
    w.add_tensor("rope_freqs.weight", tidal_test::kGgmlF32, {2}, tidal_test::f32_bytes({3.0f, 0.5f}));
    TempDir dir;
    GgufModel model = open_image(dir, w.bytes());
    const tidal::ModelConfig& c = model.config();
    CHECK_EQ(c.rope_scaling.type, "per-pair");
    CHECK(c.rope_frequencies == std::vector<float>({static_cast<float>(1.0 / 3.0), static_cast<float>(0.01 / 0.5)}));
  }
  {
    tidal::ModelConfig hf;
    hf.head_dim = 128;
    hf.rope_theta = 500000.0;
    hf.rope_scaling.type = "llama3";
    hf.rope_scaling.factor = 8.0;
    hf.rope_scaling.low_freq_factor = 1.0;
    hf.rope_scaling.high_freq_factor = 4.0;
    hf.rope_scaling.original_max_position_embeddings = 8192;
    tidal::resolve_rope_frequencies(hf);
    const std::vector<float> divisors = tidal_test::llama3_divisors(hf);

    GgufWriter w;
    add_llama_metadata(w, "llama", 1, 128, 16, 1, 1, 1e-5f, 500000.0f);
    w.add_tensor("token_embd.weight", tidal_test::kGgmlF32, {128, 2}, tidal_test::f32_bytes(random_values(256, 1)));
    w.add_tensor("rope_freqs.weight", tidal_test::kGgmlF32, {64}, tidal_test::f32_bytes(divisors));
    TempDir dir;
    GgufModel model = open_image(dir, w.bytes());
    const std::vector<float>& got = model.config().rope_frequencies;
    CHECK_EQ(got.size(), size_t(64));
    for (size_t i = 0; i < got.size(); ++i) {
      const long double plain = std::pow(500000.0L, -2.0L * static_cast<long double>(i) / 128.0L);
      const long double expected = plain / divisors[i];
      CHECK(std::fabs(static_cast<long double>(got[i]) - expected) <= expected * 0x1p-24L * (1.0L + 1e-9L));
      CHECK_NEAR(got[i], hf.rope_frequencies[i], 0x1p-23 * hf.rope_frequencies[i]);
    }
  }
}
