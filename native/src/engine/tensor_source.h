// Where the engine finds a model's tensors by Hugging Face name: a WeightStore over
// memory-mapped safetensors files, or tensors held in memory (tests, synthetic benchmarks).
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/gguf_model.h"
#include "model/weight_store.h"

namespace tidal {

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // The tensor, or null when absent. Views stay valid while the source lives.
  virtual const TensorView* find(const std::string& name) const = 0;
  // Every tensor name, sorted.
  virtual std::vector<std::string> names() const = 0;
  // Where the tensors come from, for messages.
  virtual std::string description() const = 0;
  // For messages: a tensor's name as the source stores it (GGUF: "blk.0.attn_q.weight"),
  // what describes the model the tensors must match, and its layer-count field.
  virtual std::string stored_name(const std::string& name) const { return name; }
  virtual std::string config_name() const { return "config.json"; }
  virtual std::string layer_count_name() const { return "num_hidden_layers"; }
};

// Tensors owned in memory, each stored in the dtype it was added with.
class InMemoryTensors final : public TensorSource {
 public:
  // Adds (or replaces) a tensor from raw little-endian bytes of `dtype`.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* bytes, size_t byte_count);
  // Adds a tensor given as f32 values, stored after conversion to `dtype`: rounded to a plain
  // type, or quantised (Q8_0, Q4_K, Q6_K; a matrix whose rows are whole blocks).
  void add_f32(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<float>& values);
  void remove(const std::string& name);
  // Writable bytes of a tensor (tests that plant defects).
  void* mutable_data(const std::string& name);

  const TensorView* find(const std::string& name) const override;
  std::vector<std::string> names() const override;
  std::string description() const override { return "in-memory tensors"; }
  std::string config_name() const override { return "the model config"; }

 private:
  struct Entry {
    TensorView view;
    std::vector<unsigned char> bytes;
  };
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

// A model folder's safetensors files.
class WeightStoreTensors final : public TensorSource {
 public:
  explicit WeightStoreTensors(WeightStore store) : store_(std::move(store)) {}
  const TensorView* find(const std::string& name) const override {
    return store_.has(name) ? &store_.get(name) : nullptr;
  }
  std::vector<std::string> names() const override { return store_.names(); }
  std::string description() const override { return store_.source(); }

 private:
  WeightStore store_;
};

// Tensors of a GGUF file, under Hugging Face names (mapping, Q/K row order and
// dequantisation are done by GgufModel).
class GgufTensors final : public TensorSource {
 public:
  explicit GgufTensors(GgufModel model) : model_(std::move(model)) {}
  const TensorView* find(const std::string& name) const override { return model_.find(name); }
  std::vector<std::string> names() const override { return model_.names(); }
  std::string description() const override { return model_.file().path(); }
  std::string stored_name(const std::string& name) const override;
  std::string config_name() const override { return "the GGUF metadata"; }
  std::string layer_count_name() const override { return model_.config().model_type + ".block_count"; }

 private:
  GgufModel model_;
};

}  // namespace tidal
