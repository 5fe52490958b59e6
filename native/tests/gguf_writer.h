// Test helper: builds GGUF file images (version 3 by default) from metadata and tensors,
// well-formed or, through the raw hooks, deliberately broken, and converts a Hugging Face
// model folder into a GGUF image laid out as the llama.cpp converter does. Header-only;
// independent of the parser under test (it encodes the format from its description, not
// through gguf.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/weight_store.h"
#include "safetensors_writer.h"

namespace tidal_test {

// Value type ids of the GGUF format.
enum GgufTypeId : uint32_t {
  kGgufU8 = 0,
  kGgufI8 = 1,
  kGgufU16 = 2,
  kGgufI16 = 3,
  kGgufU32 = 4,
  kGgufI32 = 5,
  kGgufF32 = 6,
  kGgufBool = 7,
  kGgufString = 8,
  kGgufArray = 9,
  kGgufU64 = 10,
  kGgufI64 = 11,
  kGgufF64 = 12,
};

// ggml tensor type ids.
enum GgmlTypeId : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ8_0 = 8,
  kGgmlQ2_K = 10,
  kGgmlQ4_K = 12,
  kGgmlQ6_K = 14,
  kGgmlBF16 = 30,
};

inline void put_le(std::vector<uint8_t>& out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
inline void put_u32(std::vector<uint8_t>& out, uint32_t v) { put_le(out, v, 4); }
inline void put_u64(std::vector<uint8_t>& out, uint64_t v) { put_le(out, v, 8); }
inline void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put_u64(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
inline void put_f32(std::vector<uint8_t>& out, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  put_u32(out, bits);
}
inline void put_f64(std::vector<uint8_t>& out, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  put_u64(out, bits);
}

struct GgufTensorEntry {
  std::string name;
  uint32_t type = kGgmlF32;
  std::vector<uint64_t> ne;  // innermost first
  std::vector<uint8_t> bytes;
  std::optional<uint64_t> offset;  // forced offset (for broken files); else laid out in order
  std::optional<uint32_t> n_dims;  // forced dimension count written before ne
};

class GgufWriter {
 public:
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count_override;
  std::optional<uint64_t> metadata_count_override;

  // A metadata entry from its type id and already-encoded value bytes.
  void add_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& value) {
    std::vector<uint8_t> entry;
    put_string(entry, key);
    put_u32(entry, type);
    entry.insert(entry.end(), value.begin(), value.end());
    metadata_.push_back(entry);
  }
  void add_u8(const std::string& k, uint8_t v) { add_scalar(k, kGgufU8, v, 1); }
  void add_i8(const std::string& k, int8_t v) { add_scalar(k, kGgufI8, static_cast<uint8_t>(v), 1); }
  void add_u16(const std::string& k, uint16_t v) { add_scalar(k, kGgufU16, v, 2); }
  void add_i16(const std::string& k, int16_t v) { add_scalar(k, kGgufI16, static_cast<uint16_t>(v), 2); }
  void add_u32(const std::string& k, uint32_t v) { add_scalar(k, kGgufU32, v, 4); }
  void add_i32(const std::string& k, int32_t v) { add_scalar(k, kGgufI32, static_cast<uint32_t>(v), 4); }
  void add_u64(const std::string& k, uint64_t v) { add_scalar(k, kGgufU64, v, 8); }
  void add_i64(const std::string& k, int64_t v) { add_scalar(k, kGgufI64, static_cast<uint64_t>(v), 8); }
  void add_bool(const std::string& k, bool v) { add_scalar(k, kGgufBool, v ? 1 : 0, 1); }
  void add_f32(const std::string& k, float v) {
    std::vector<uint8_t> b;
    put_f32(b, v);
    add_raw(k, kGgufF32, b);
  }
  void add_f64(const std::string& k, double v) {
    std::vector<uint8_t> b;
    put_f64(b, v);
    add_raw(k, kGgufF64, b);
  }
  void add_string(const std::string& k, const std::string& v) {
    std::vector<uint8_t> b;
    put_string(b, v);
    add_raw(k, kGgufString, b);
  }
  void add_string_array(const std::string& k, const std::vector<std::string>& items) {
    std::vector<uint8_t> b;
    for (const std::string& s : items) put_string(b, s);
    add_raw(k, kGgufArray, array_value(kGgufString, items.size(), b));
  }
  void add_f32_array(const std::string& k, const std::vector<float>& items) {
    std::vector<uint8_t> b;
    for (float f : items) put_f32(b, f);
    add_raw(k, kGgufArray, array_value(kGgufF32, items.size(), b));
  }
  void add_i32_array(const std::string& k, const std::vector<int32_t>& items) {
    std::vector<uint8_t> b;
    for (int32_t v : items) put_u32(b, static_cast<uint32_t>(v));
    add_raw(k, kGgufArray, array_value(kGgufI32, items.size(), b));
  }

  // The encoded value of an array: element type, count, then the encoded elements.
  static std::vector<uint8_t> array_value(uint32_t element_type, uint64_t count, const std::vector<uint8_t>& elements) {
    std::vector<uint8_t> b;
    put_u32(b, element_type);
    put_u64(b, count);
    b.insert(b.end(), elements.begin(), elements.end());
    return b;
  }

  void add_tensor(GgufTensorEntry tensor) { tensors_.push_back(std::move(tensor)); }
  void add_tensor(const std::string& name, uint32_t type, std::vector<uint64_t> ne, std::vector<uint8_t> bytes) {
    GgufTensorEntry t;
    t.name = name;
    t.type = type;
    t.ne = std::move(ne);
    t.bytes = std::move(bytes);
    tensors_.push_back(std::move(t));
  }

  // Alignment the data is laid out with; also written as general.alignment when set.
  void set_alignment(uint32_t alignment) {
    alignment_ = alignment;
    add_u32("general.alignment", alignment);
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    put_u32(out, version);
    put_u64(out, tensor_count_override.value_or(tensors_.size()));
    put_u64(out, metadata_count_override.value_or(metadata_.size()));
    for (const auto& entry : metadata_) out.insert(out.end(), entry.begin(), entry.end());

    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const GgufTensorEntry& t : tensors_) {
      offsets.push_back(t.offset.value_or(next));
      next = align(offsets.back() + t.bytes.size());
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const GgufTensorEntry& t = tensors_[i];
      put_string(out, t.name);
      put_u32(out, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      for (uint64_t d : t.ne) put_u64(out, d);
      put_u32(out, t.type);
      put_u64(out, offsets[i]);
    }
    header_end_ = out.size();
    out.resize(align(out.size()), 0);
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const GgufTensorEntry& t = tensors_[i];
      // A forced offset far past the data written so far is a broken-file case: leave the
      // data out rather than write gigabytes of padding.
      if (t.offset && offsets[i] > out.size() + (1u << 20)) continue;
      const size_t at = data_start + offsets[i];
      if (out.size() < at + t.bytes.size()) out.resize(at + t.bytes.size(), 0);
      if (!t.bytes.empty()) std::memcpy(out.data() + at, t.bytes.data(), t.bytes.size());
    }
    if (!tensors_.empty()) out.resize(data_start + align(out.size() - data_start), 0);
    return out;
  }

  // Bytes of the header (before padding) in the last bytes() image.
  size_t header_end() const { return header_end_; }

 private:
  void add_scalar(const std::string& k, uint32_t type, uint64_t v, size_t n) {
    std::vector<uint8_t> b;
    put_le(b, v, n);
    add_raw(k, type, b);
  }
  uint64_t align(uint64_t v) const { return (v + alignment_ - 1) / alignment_ * alignment_; }

  std::vector<std::vector<uint8_t>> metadata_;
  std::vector<GgufTensorEntry> tensors_;
  uint64_t alignment_ = 32;
  mutable size_t header_end_ = 0;
};

// The converter's reordering, spelled as its array operations: view the rows as
// [heads, 2, D/2, cols], swap axes 1 and 2, flatten back. Output row (h, j, i) is input
// row (h, i, j).
inline std::vector<float> converter_permute(const std::vector<float>& rows, int64_t row_count, int64_t heads) {
  const int64_t cols = static_cast<int64_t>(rows.size()) / row_count;
  const int64_t half = row_count / heads / 2;
  std::vector<float> out(rows.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t i = 0; i < 2; ++i) {
        const int64_t out_row = ((h * half) + j) * 2 + i;
        const int64_t in_row = (h * 2 + i) * half + j;
        for (int64_t c = 0; c < cols; ++c) out[out_row * cols + c] = rows[in_row * cols + c];
      }
  return out;
}

// Per-pair divisors as llama.cpp's converter writes them into rope_freqs.weight.
inline std::vector<float> llama3_divisors(const tidal::ModelConfig& c) {
  const tidal::RopeScaling& s = c.rope_scaling;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double frequency = 1.0 / std::pow(c.rope_theta, 2.0 * i / c.head_dim);
    const double wavelength = 2 * 3.14159265358979323846 / frequency;
    const double low = s.original_max_position_embeddings / s.low_freq_factor;
    const double high = s.original_max_position_embeddings / s.high_freq_factor;
    double divisor;
    if (wavelength < high) {
      divisor = 1.0;
    } else if (wavelength > low) {
      divisor = s.factor;
    } else {
      const double smooth = (s.original_max_position_embeddings / wavelength - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      divisor = 1.0 / ((1 - smooth) / s.factor + smooth);
    }
    out.push_back(static_cast<float>(divisor));
  }
  return out;
}

// The converter's GGUF name of a Hugging Face tensor name, by substring replacement (kept
// separate from the engine's own table so the two check each other); "" when unknown.
inline std::string converter_tensor_name(const std::string& hf) {
  static const std::pair<const char*, const char*> kWhole[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& [from, to] : kWhole)
    if (hf == from) return to;
  static const std::pair<const char*, const char*> kParts[] = {
      {".self_attn.q_proj.", ".attn_q."},
      {".self_attn.k_proj.", ".attn_k."},
      {".self_attn.v_proj.", ".attn_v."},
      {".self_attn.o_proj.", ".attn_output."},
      {".mlp.gate_proj.", ".ffn_gate."},
      {".mlp.up_proj.", ".ffn_up."},
      {".mlp.down_proj.", ".ffn_down."},
      {".input_layernorm.", ".attn_norm."},
      {".post_attention_layernorm.", ".ffn_norm."},
  };
  const std::string prefix = "model.layers.";
  if (hf.rfind(prefix, 0) != 0) return "";
  std::string name = "blk." + hf.substr(prefix.size());
  for (const auto& [from, to] : kParts) {
    const size_t at = name.find(from);
    if (at != std::string::npos) return name.replace(at, std::strlen(from), to);
  }
  return "";
}

// A GGUF image of a Hugging Face model folder, as the llama.cpp converter writes it for
// llama and qwen2: `<arch>.*` metadata, every tensor as F32 under its GGUF name, llama Q/K
// rows reordered, Llama 3 RoPE scaling as rope_freqs.weight, no output.weight when tied.
inline std::vector<uint8_t> gguf_image_of_folder(const std::string& folder) {
  const tidal::ModelConfig c = tidal::load_model_config(folder);
  const tidal::WeightStore store = tidal::WeightStore::open(folder);
  const bool llama = c.architecture == tidal::Architecture::Llama;
  const std::string arch = llama ? "llama" : "qwen2";
  const std::string p = arch + ".";
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_u32(p + "block_count", static_cast<uint32_t>(c.num_layers));
  w.add_u32(p + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.add_u32(p + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.add_u32(p + "attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.add_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.add_u32(p + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.add_u32(p + "rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w.add_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_u32(p + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  if (!c.bos_token_ids.empty()) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_token_ids[0]));
  if (!c.eos_token_ids.empty()) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(c.eos_token_ids[0]));
  if (c.rope_scaling.type == "llama3")
    w.add_tensor("rope_freqs.weight", kGgmlF32, {static_cast<uint64_t>(c.head_dim / 2)}, f32_bytes(llama3_divisors(c)));
  for (const std::string& name : store.names()) {
    if (name == "lm_head.weight" && c.tie_word_embeddings) continue;
    const tidal::TensorView& t = store.get(name);
    std::vector<float> values(static_cast<size_t>(t.numel()));
    tidal::convert_to_f32(t, values.data());
    if (llama && name.find("q_proj") != std::string::npos) values = converter_permute(values, t.shape[0], c.num_heads);
    if (llama && name.find("k_proj") != std::string::npos)
      values = converter_permute(values, t.shape[0], c.num_kv_heads);
    std::vector<uint64_t> ne(t.shape.rbegin(), t.shape.rend());
    w.add_tensor(converter_tensor_name(name), kGgmlF32, ne, f32_bytes(values));
  }
  return w.bytes();
}

}  // namespace tidal_test
