// inspect_model: what a model folder or .gguf file holds, from headers only. Intact fixtures
// give the config the engine loads with and the tensors' sizes; each kind of broken model
// gives a problem of the right kind instead of an exception; corrupt headers at random
// offsets never crash; a 16 GB (sparse) file is inspected without reading its weights.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gguf_writer.h"
#include "harness.h"
#include "model/gguf_model.h"
#include "model/model_config.h"
#include "model/model_inspect.h"
#include "model/weight_store.h"
#include "safetensors_writer.h"

using tidal::ModelInspection;
using tidal::ModelProblemKind;
using tidal_test::TempDir;

namespace {

const char* const kFolders[] = {"llama2-mha-bf16", "llama3-gqa-f32", "mistral-gqa-f16", "qwen2-tied-sharded-f32",
                                "qwen3-qknorm-f32"};

std::string fixture(const std::string& name) { return tidal_test::fixtures_dir() + "/models/" + name; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A copy of a fixture folder's files in `dir`.
void copy_folder(const std::string& from, const TempDir& dir) {
  for (const char* name :
       {"config.json", "model.safetensors", "model.safetensors.index.json", "model-00001-of-00004.safetensors",
        "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"}) {
    std::ifstream probe(from + "/" + name);
    if (probe) tidal_test::write_text(dir.file(name), read_file(from + "/" + name));
  }
}

bool has_problem(const ModelInspection& inspection, ModelProblemKind kind, const std::string& fragment) {
  for (const auto& p : inspection.problems)
    if (p.kind == kind && p.message.find(fragment) != std::string::npos) return true;
  return false;
}

std::string problems_text(const ModelInspection& inspection) {
  std::string text;
  for (const auto& p : inspection.problems)
    text += std::string(tidal::model_problem_kind_name(p.kind)) + ": " + p.message + " | ";
  return text.empty() ? "(none)" : text;
}

#define CHECK_PROBLEM(inspection, kind, fragment)                                                             \
  do {                                                                                                        \
    const ModelInspection& tidal_i_ = (inspection);                                                           \
    if (!has_problem(tidal_i_, kind, fragment))                                                               \
      ::tidal_test::record_failure(__FILE__, __LINE__,                                                        \
                                   std::string("expected a ") + tidal::model_problem_kind_name(kind) +        \
                                       " problem with '" + (fragment) + "', got " + problems_text(tidal_i_)); \
  } while (0)

void check_same_config(const tidal::ModelConfig& a, const tidal::ModelConfig& b) {
  CHECK(a.architecture == b.architecture);
  CHECK_EQ(a.num_layers, b.num_layers);
  CHECK_EQ(a.hidden_size, b.hidden_size);
  CHECK_EQ(a.intermediate_size, b.intermediate_size);
  CHECK_EQ(a.num_heads, b.num_heads);
  CHECK_EQ(a.num_kv_heads, b.num_kv_heads);
  CHECK_EQ(a.head_dim, b.head_dim);
  CHECK_EQ(a.vocab_size, b.vocab_size);
  CHECK_EQ(a.max_position_embeddings, b.max_position_embeddings);
  CHECK_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  CHECK_EQ(a.rope_scaling.type, b.rope_scaling.type);
}

}  // namespace

TIDAL_TEST(inspect_fixture_folders_match_what_the_engine_loads) {
  for (const char* name : kFolders) {
    const ModelInspection inspection = tidal::inspect_model(fixture(name));
    CHECK_EQ(problems_text(inspection), std::string("(none)"));
    CHECK_EQ(inspection.format, std::string("safetensors"));
    CHECK(inspection.has_config);
    check_same_config(inspection.config, tidal::load_model_config(fixture(name)));
    const tidal::WeightStore store = tidal::WeightStore::open(fixture(name));
    CHECK_EQ(inspection.weight_bytes, uint64_t(store.total_bytes()));
    CHECK_EQ(inspection.loaded_weight_bytes, inspection.weight_bytes);
    CHECK_EQ(inspection.tensor_count, int64_t(store.size()));
    int64_t elements = 0;
    for (const std::string& tensor : store.names()) elements += store.get(tensor).numel();
    CHECK_EQ(inspection.parameters, elements);
    CHECK_EQ(inspection.dtypes.size(), size_t(1));
    // Every tensor the engine binds is present with its shape, and nothing else is stored but
    // optional tensors (a tied model's lm_head.weight).
    size_t required = 0, optional_stored = 0;
    for (const tidal::ExpectedTensor& t : tidal::expected_tensors(inspection.config)) {
      if (!t.optional) {
        ++required;
        CHECK(store.has(t.name) && store.get(t.name).shape == t.shape);
      } else if (store.has(t.name)) {
        ++optional_stored;
      }
    }
    CHECK_EQ(required + optional_stored, store.size());
  }
  CHECK_EQ(tidal::inspect_model(fixture("llama2-mha-bf16")).dtypes[0], std::string("BF16"));
  CHECK_EQ(tidal::inspect_model(fixture("llama2-mha-bf16")).architecture, std::string("LlamaForCausalLM"));
}

TIDAL_TEST(inspect_gguf_image_of_a_folder) {
  for (const char* name : {"llama3-gqa-f32", "qwen2-tied-sharded-f32"}) {
    TempDir dir;
    tidal_test::write_bytes(dir.file("model.gguf"), tidal_test::gguf_image_of_folder(fixture(name)));
    const ModelInspection inspection = tidal::inspect_model(dir.file("model.gguf"));
    CHECK_EQ(problems_text(inspection), std::string("(none)"));
    CHECK_EQ(inspection.format, std::string("gguf"));
    check_same_config(inspection.config,
                      tidal::gguf_model_config(tidal::GgufFile::open(dir.file("model.gguf")).contents()));
    CHECK_EQ(inspection.config.vocab_size, tidal::load_model_config(fixture(name)).vocab_size);
    // The folder's tensors, plus rope_freqs.weight where GGUF stores Llama 3 RoPE scaling.
    const tidal::GgufFile file = tidal::GgufFile::open(dir.file("model.gguf"));
    const tidal::GgufTensorInfo* freqs = file.find_tensor("rope_freqs.weight");
    CHECK_EQ(inspection.weight_bytes,
             uint64_t(tidal::WeightStore::open(fixture(name)).total_bytes()) + (freqs ? freqs->bytes : 0));
  }
}

TIDAL_TEST(inspect_reports_broken_folders_by_kind) {
  CHECK_PROBLEM(tidal::inspect_model("/nonexistent-tidal-model"), ModelProblemKind::Missing, "does not exist");
  {
    TempDir dir;
    copy_folder(fixture("mistral-gqa-f16"), dir);
    ::unlink(dir.file("config.json").c_str());
    const ModelInspection inspection = tidal::inspect_model(dir.path());
    CHECK_PROBLEM(inspection, ModelProblemKind::Missing, "config.json");
    CHECK(!inspection.has_config);
    CHECK(inspection.tensor_count > 0);  // the weights are still described
  }
  {
    TempDir dir;
    copy_folder(fixture("mistral-gqa-f16"), dir);
    ::unlink(dir.file("model.safetensors").c_str());
    CHECK_PROBLEM(tidal::inspect_model(dir.path()), ModelProblemKind::Missing, "no model weights");
  }
  {
    TempDir dir;
    copy_folder(fixture("qwen2-tied-sharded-f32"), dir);
    ::unlink(dir.file("model-00003-of-00004.safetensors").c_str());
    CHECK_PROBLEM(tidal::inspect_model(dir.path()), ModelProblemKind::Missing, "model-00003-of-00004.safetensors");
  }
  {
    TempDir dir;
    copy_folder(fixture("mistral-gqa-f16"), dir);
    CHECK_EQ(::truncate(dir.file("model.safetensors").c_str(), 300000), 0);
    CHECK_PROBLEM(tidal::inspect_model(dir.path()), ModelProblemKind::Truncated, "truncated");
  }
  auto with_config = [](const std::string& from_fixture, const std::string& find, const std::string& replace,
                        const TempDir& dir) {
    copy_folder(fixture(from_fixture), dir);
    std::string text = read_file(dir.file("config.json"));
    const size_t at = text.find(find);
    if (at == std::string::npos) throw std::runtime_error("config.json has no '" + find + "'");
    text.replace(at, find.size(), replace);
    tidal_test::write_text(dir.file("config.json"), text);
  };
  {
    TempDir dir;
    with_config("mistral-gqa-f16", "\"model_type\": \"mistral\"", "\"model_type\": \"gemma2\"", dir);
    const ModelInspection inspection = tidal::inspect_model(dir.path());
    CHECK_PROBLEM(inspection, ModelProblemKind::Unsupported, "gemma2");
    CHECK(!inspection.has_config);
  }
  {
    TempDir dir;
    with_config("mistral-gqa-f16", "\"num_hidden_layers\": 6", "\"num_hidden_layers\": 7", dir);
    CHECK_PROBLEM(tidal::inspect_model(dir.path()), ModelProblemKind::Mismatch,
                  "missing tensor 'model.layers.6.input_layernorm.weight'");
  }
  {
    TempDir dir;
    with_config("mistral-gqa-f16", "\"num_hidden_layers\": 6", "\"num_hidden_layers\": 5", dir);
    CHECK_PROBLEM(tidal::inspect_model(dir.path()), ModelProblemKind::Mismatch,
                  "model.layers.5.* (9 tensors) are in the weights but not used by config.json's 5 layers "
                  "(num_hidden_layers = 5)");
  }
  {
    TempDir dir;
    with_config("mistral-gqa-f16", "\"intermediate_size\": 176", "\"intermediate_size\": 180", dir);
    CHECK_PROBLEM(
        tidal::inspect_model(dir.path()), ModelProblemKind::Mismatch,
        "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [176, 64], expected [180, 64] from config.json");
  }
}

TIDAL_TEST(inspect_reports_gguf_problems_by_kind) {
  // A small qwen2 GGUF: every tensor of one layer, F16 embedding (or Q4_K), attn_q in a chosen
  // type; tied, or with its own output matrix (Q6_K).
  auto image = [](const std::string& arch, uint32_t q_type, int64_t tokens, bool q4k_embedding = false,
                  bool untied = false) {
    tidal_test::GgufWriter w;
    w.add_string("general.architecture", arch);
    w.add_string("general.name", "tiny");
    const std::string p = arch + ".";
    w.add_u32(p + "block_count", 1);
    w.add_u32(p + "embedding_length", 256);
    w.add_u32(p + "feed_forward_length", 256);
    w.add_u32(p + "attention.head_count", 4);
    w.add_u32(p + "attention.head_count_kv", 2);
    std::vector<std::string> vocab;
    for (int64_t i = 0; i < tokens; ++i) vocab.push_back("t" + std::to_string(i));
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string_array("tokenizer.ggml.tokens", vocab);
    auto f32 = [&](const std::string& name, std::vector<uint64_t> ne) {
      uint64_t n = 1;
      for (uint64_t d : ne) n *= d;
      w.add_tensor(name, tidal_test::kGgmlF32, ne, std::vector<uint8_t>(n * 4, 0));
    };
    if (q4k_embedding)
      w.add_tensor("token_embd.weight", tidal_test::kGgmlQ4_K, {256, 64}, std::vector<uint8_t>(64 * 144, 0));
    else
      w.add_tensor("token_embd.weight", tidal_test::kGgmlF16, {256, 64}, std::vector<uint8_t>(256 * 64 * 2, 0));
    f32("blk.0.attn_norm.weight", {256});
    const size_t q_bytes = q_type == tidal_test::kGgmlQ4_K   ? 256 * 144
                           : q_type == tidal_test::kGgmlQ2_K ? 256 * 84
                                                             : 256 * 256 * 4;
    w.add_tensor("blk.0.attn_q.weight", q_type, {256, 256}, std::vector<uint8_t>(q_bytes, 0));
    f32("blk.0.attn_q.bias", {256});
    f32("blk.0.attn_k.weight", {256, 128});
    f32("blk.0.attn_k.bias", {128});
    f32("blk.0.attn_v.weight", {256, 128});
    f32("blk.0.attn_v.bias", {128});
    f32("blk.0.attn_output.weight", {256, 256});
    f32("blk.0.ffn_norm.weight", {256});
    f32("blk.0.ffn_gate.weight", {256, 256});
    f32("blk.0.ffn_up.weight", {256, 256});
    f32("blk.0.ffn_down.weight", {256, 256});
    f32("output_norm.weight", {256});
    if (untied)
      w.add_tensor("output.weight", tidal_test::kGgmlQ6_K, {256, static_cast<uint64_t>(tokens)},
                   std::vector<uint8_t>(static_cast<size_t>(tokens) * 210, 0));
    return w.bytes();
  };
  TempDir dir;
  tidal_test::write_bytes(dir.file("ok.gguf"), image("qwen2", tidal_test::kGgmlQ4_K, 64));
  const ModelInspection ok = tidal::inspect_model(dir.file("ok.gguf"));
  CHECK_EQ(problems_text(ok), std::string("(none)"));
  CHECK_EQ(ok.name, std::string("tiny"));
  CHECK_EQ(ok.tokenizer_tokens, int64_t(64));
  CHECK_EQ(ok.dtypes.size(), size_t(3));
  CHECK_EQ(ok.dtypes[0], std::string("F32"));
  // A Q4_K matrix stays in its blocks on the CPU and on the GPU; everything else is bf16 on
  // the GPU, 2 bytes a value (the F16 embedding too).
  CHECK_EQ(ok.loaded_weight_bytes, ok.weight_bytes);
  CHECK_EQ(ok.gpu_weight_bytes, uint64_t(ok.parameters - 256 * 256) * 2 + 256 * 144);
  // A Q4_K embedding stays in its blocks on the GPU too.
  tidal_test::write_bytes(dir.file("q4k-embedding.gguf"), image("qwen2", tidal_test::kGgmlQ4_K, 64, true));
  const ModelInspection q4k_embedding = tidal::inspect_model(dir.file("q4k-embedding.gguf"));
  CHECK_EQ(problems_text(q4k_embedding), std::string("(none)"));
  CHECK_EQ(q4k_embedding.gpu_weight_bytes,
           uint64_t(q4k_embedding.parameters - 256 * 256 - 64 * 256) * 2 + 256 * 144 + 64 * 144);
  // With an output matrix of its own, the embedding stays in host memory (the CUDA backend's
  // default): the GPU holds the Q6_K output matrix and none of the embedding.
  tidal_test::write_bytes(dir.file("untied.gguf"), image("qwen2", tidal_test::kGgmlQ4_K, 64, true, true));
  const ModelInspection untied = tidal::inspect_model(dir.file("untied.gguf"));
  CHECK_EQ(problems_text(untied), std::string("(none)"));
  CHECK_EQ(untied.gpu_weight_bytes, uint64_t(untied.parameters - 256 * 256 - 2 * 64 * 256) * 2 + 256 * 144 + 64 * 210);

  tidal_test::write_bytes(dir.file("q2k.gguf"), image("qwen2", tidal_test::kGgmlQ2_K, 64));
  CHECK_PROBLEM(tidal::inspect_model(dir.file("q2k.gguf")), ModelProblemKind::Unsupported, "stores tensors as Q2_K");
  tidal_test::write_bytes(dir.file("phi3.gguf"), image("phi3", tidal_test::kGgmlF32, 64));
  const ModelInspection phi3 = tidal::inspect_model(dir.file("phi3.gguf"));
  CHECK_PROBLEM(phi3, ModelProblemKind::Unsupported, "unsupported architecture 'phi3'");
  CHECK_EQ(phi3.architecture, std::string("phi3"));
  tidal_test::write_bytes(dir.file("long-vocab.gguf"), image("qwen2", tidal_test::kGgmlF32, 70));
  CHECK_PROBLEM(tidal::inspect_model(dir.file("long-vocab.gguf")), ModelProblemKind::Mismatch,
                "the tokenizer has 70 tokens but the embedding token_embd.weight only 64 rows");
  std::vector<uint8_t> bytes = image("qwen2", tidal_test::kGgmlF32, 64);
  bytes.resize(bytes.size() - 1000);
  tidal_test::write_bytes(dir.file("cut.gguf"), bytes);
  CHECK_PROBLEM(tidal::inspect_model(dir.file("cut.gguf")), ModelProblemKind::Truncated,
                "runs past the end of the file");
  tidal_test::write_text(dir.file("model.safetensors"), "{}");
  CHECK_PROBLEM(tidal::inspect_model(dir.file("model.safetensors")), ModelProblemKind::Unsupported,
                "is not a GGUF file");
}

// Every prefix and random single-byte corruptions of a GGUF image and of a safetensors
// header: inspection returns (with problems, or none where the bytes happen to stay valid).
TIDAL_TEST(inspect_never_throws_on_corrupt_headers) {
  std::mt19937 random(20261217);
  const std::vector<uint8_t> gguf = tidal_test::gguf_image_of_folder(fixture("llama3-gqa-f32"));
  TempDir dir;
  const std::string file = dir.file("m.gguf");
  size_t refused = 0, runs = 0;
  auto inspect = [&](const std::vector<uint8_t>& bytes) {
    tidal_test::write_bytes(file, bytes);
    try {
      const ModelInspection inspection = tidal::inspect_model(file);
      refused += inspection.problems.empty() ? 0 : 1;
      ++runs;
    } catch (const std::exception& e) {
      ::tidal_test::record_failure(__FILE__, __LINE__, std::string("inspect_model threw: ") + e.what());
    }
  };
  // Truncations inside the header (every 7th byte) and in the data.
  tidal_test::write_bytes(file, gguf);
  // Unmapped again at once: Windows refuses to rewrite a file while it is mapped.
  const size_t header = tidal::GgufFile::open(file).contents().data_offset;
  for (size_t cut = 0; cut < header; cut += 7) inspect(std::vector<uint8_t>(gguf.begin(), gguf.begin() + cut));
  CHECK_EQ(refused, runs);
  for (int i = 0; i < 40; ++i) {
    const size_t cut = header + random() % (gguf.size() - header);
    inspect(std::vector<uint8_t>(gguf.begin(), gguf.begin() + cut));
  }
  CHECK_EQ(refused, runs);
  // Random bytes flipped in the header.
  for (int i = 0; i < 400; ++i) {
    std::vector<uint8_t> bytes = gguf;
    for (int flips = 1 + random() % 3; flips > 0; --flips) bytes[random() % header] = uint8_t(random());
    inspect(bytes);
  }
  CHECK(refused > runs / 2);
}

// A 16 GB GGUF (sparse on disk): only the header is read, so it takes milliseconds.
TIDAL_TEST(inspect_a_16_gb_file_reads_only_its_header) {
#ifdef __EMSCRIPTEN__
  // 32-bit WebAssembly: Emscripten 3.1.6's file layer keeps only the low 32 bits of the length
  // given to resize_file (16 GB + n becomes n mod 4 GiB), so the file cannot be made.
  std::printf("    skipped under WebAssembly: a 32-bit build cannot make a 16 GB file\n");
  return;
#endif
  TempDir dir;
  const std::string file = dir.file("big.gguf");
  tidal_test::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 1);
  w.add_u32("llama.embedding_length", 4096);
  w.add_u32("llama.feed_forward_length", 11008);
  w.add_u32("llama.attention.head_count", 32);
  w.add_u32("llama.attention.head_count_kv", 8);
  const uint64_t vocab = 1000000;
  struct Tensor {
    const char* name;
    std::vector<uint64_t> ne;
  };
  const std::vector<Tensor> tensors = {
      {"token_embd.weight", {4096, vocab}},   {"output.weight", {4096, 128000}},
      {"output_norm.weight", {4096}},         {"blk.0.attn_norm.weight", {4096}},
      {"blk.0.attn_q.weight", {4096, 4096}},  {"blk.0.attn_k.weight", {4096, 1024}},
      {"blk.0.attn_v.weight", {4096, 1024}},  {"blk.0.attn_output.weight", {4096, 4096}},
      {"blk.0.ffn_norm.weight", {4096}},      {"blk.0.ffn_gate.weight", {4096, 11008}},
      {"blk.0.ffn_up.weight", {4096, 11008}}, {"blk.0.ffn_down.weight", {11008, 4096}},
  };
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    tidal_test::GgufTensorEntry entry;
    entry.name = t.name;
    entry.type = tidal_test::kGgmlF32;
    entry.ne = t.ne;
    entry.offset = offset;
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    offset = (offset + n * 4 + 31) / 32 * 32;
    w.add_tensor(entry);
  }
  // output.weight is [128000, 4096] but the vocabulary is 1M rows: one mismatch to report.
  const std::vector<uint8_t> head = w.bytes();
  tidal_test::write_bytes(file, std::vector<uint8_t>(head.begin(), head.begin() + (w.header_end() + 31) / 32 * 32));
  const uint64_t size = (w.header_end() + 31) / 32 * 32 + offset;
  CHECK(size > (uint64_t(16) << 30));
  std::filesystem::resize_file(file, size);  // 64-bit everywhere (MinGW's truncate takes a 32-bit long)
  const auto start = std::chrono::steady_clock::now();
  const ModelInspection inspection = tidal::inspect_model(file);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 1.0);
  CHECK_EQ(inspection.config.vocab_size, int64_t(vocab));
  CHECK(inspection.weight_bytes > (uint64_t(16) << 30));
  CHECK_EQ(inspection.problems.size(), size_t(1));
  CHECK_PROBLEM(inspection, ModelProblemKind::Mismatch,
                "tensor 'output.weight' has shape [128000, 4096], expected [1000000, 4096]");
#ifndef _WIN32
  struct stat info {};
  CHECK_EQ(::stat(file.c_str(), &info), 0);
  CHECK(uint64_t(info.st_blocks) * 512 < (uint64_t(64) << 20));  // sparse: nothing was written
#endif
}
