// Tensors of a Hugging Face model folder, memory-mapped from `*.safetensors` files (single
// file or sharded with `model.safetensors.index.json`). Validates every header against the
// file size before anything is read; never allocates in proportion to untrusted sizes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tidal {

enum class DType { F32, F16, BF16 };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

// A view into a mapped file: valid while the WeightStore lives.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
  int64_t numel() const;
};

class MappedFile;

class WeightStore {
 public:
  // Opens `<dir>/model.safetensors`, or every shard named by
  // `<dir>/model.safetensors.index.json`. Throws tidal::ModelError on any defect: missing
  // file, truncated file, header length past the end, malformed JSON, offsets outside the
  // data section or overlapping, byte counts that do not match shape x dtype, an unsupported
  // dtype (the message names it and lists F32/F16/BF16), duplicate names across shards.
  static WeightStore open(const std::string& model_dir);
  // Same for a single safetensors file.
  static WeightStore open_file(const std::string& path);

  WeightStore(WeightStore&&) noexcept;
  WeightStore& operator=(WeightStore&&) noexcept;
  ~WeightStore();

  bool has(const std::string& name) const;
  // Throws tidal::ModelError("missing tensor '<name>' ...") when absent.
  const TensorView& get(const std::string& name) const;
  // Throws when absent or when the shape differs (message names both shapes).
  const TensorView& get(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  std::vector<std::string> names() const;
  size_t total_bytes() const;

 private:
  WeightStore();
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
};

// Converts one element range of a tensor to float32 (bf16/f16/f32 sources).
void convert_to_f32(const TensorView& tensor, float* out);

}  // namespace tidal
