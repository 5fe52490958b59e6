#include "engine/tensor_source.h"

#include <cstring>

#include "model/half.h"
#include "model/quant.h"
#include "tidal/error.h"

namespace tidal {

void InMemoryTensors::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* bytes,
                          size_t byte_count) {
  auto entry = std::make_unique<Entry>();
  entry->bytes.resize(byte_count);
  if (byte_count) std::memcpy(entry->bytes.data(), bytes, byte_count);
  entry->view.name = name;
  entry->view.dtype = dtype;
  entry->view.shape = std::move(shape);
  entry->view.data = entry->bytes.data();
  entry->view.bytes = byte_count;
  entries_[name] = std::move(entry);
}

void InMemoryTensors::add_f32(const std::string& name, DType dtype, std::vector<int64_t> shape,
                              const std::vector<float>& values) {
  if (is_quantized(dtype)) {
    if (shape.size() != 2 || shape[1] % dtype_block_elements(dtype) != 0)
      throw Error("add_f32: '" + name + "' is not a matrix of whole " + dtype_name(dtype) + " blocks");
    std::vector<unsigned char> blocks(dtype_bytes(dtype, static_cast<int64_t>(values.size())));
    quantize_from_f32(ggml_type_of(dtype), values.data(), values.size(), blocks.data());
    add(name, dtype, std::move(shape), blocks.data(), blocks.size());
    return;
  }
  if (dtype == DType::F32) {
    add(name, dtype, std::move(shape), values.data(), values.size() * sizeof(float));
    return;
  }
  std::vector<uint16_t> halves(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    halves[i] = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
  add(name, dtype, std::move(shape), halves.data(), halves.size() * sizeof(uint16_t));
}

void InMemoryTensors::remove(const std::string& name) { entries_.erase(name); }

void* InMemoryTensors::mutable_data(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw Error("no in-memory tensor '" + name + "'");
  return it->second->bytes.data();
}

std::vector<std::string> InMemoryTensors::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& entry : entries_) out.push_back(entry.first);
  return out;
}

std::string GgufTensors::stored_name(const std::string& name) const {
  const std::string gguf_name = hf_to_gguf_tensor_name(name);
  return gguf_name.empty() ? name : gguf_name;
}

const TensorView* InMemoryTensors::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second->view;
}

}  // namespace tidal
