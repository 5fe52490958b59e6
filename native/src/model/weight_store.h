// Tensors of a Hugging Face model folder, memory-mapped from `*.safetensors` files (single
// file or sharded with `model.safetensors.index.json`). Validates every header against the
// file size before anything is read; never allocates in proportion to untrusted sizes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tidal {

// How a tensor's values are stored. F32, F16 and BF16 are plain elements. The others are
// ggml's block-quantised types as GGUF files hold them (model/quant.h has the layouts): a
// row is a whole number of blocks, each block a few scales and small integer quants, and the
// CPU products read matrices of these types block by block without converting them first.
enum class DType { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K };

const char* dtype_name(DType dtype);
bool is_quantized(DType dtype);
// Values per block: 1 for the plain types.
int64_t dtype_block_elements(DType dtype);
// Bytes of `count` consecutive values (a multiple of dtype_block_elements).
size_t dtype_bytes(DType dtype, int64_t count);
// Bytes per value of a plain type; 0 for the block-quantised ones (use dtype_bytes).
size_t dtype_size(DType dtype);
enum class GgmlType : uint32_t;  // model/quant.h
// The ggml type id a DType stores as in GGUF files, and back (nothing for ggml types the engine
// does not keep as they are).
GgmlType ggml_type_of(DType dtype);
std::optional<DType> dtype_of_ggml(GgmlType type);

// A view into a mapped file: valid while the WeightStore lives. `data` points at the
// tensor's first byte, row-major little-endian; it is only as aligned as the file lays it
// out (writers pad the header to 8 bytes, so in practice it is), so read through memcpy or
// the converters below when alignment matters.
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

  // Number of tensors.
  size_t size() const { return tensors_.size(); }
  // The folder or file this store was opened from, as given.
  const std::string& source() const { return source_; }
  // "__metadata__" entries of every file (later shards do not overwrite earlier keys).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  WeightStore();
  void add_file(std::unique_ptr<MappedFile> file, const std::string& label);
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> tensor_files_;  // tensor name -> file label, for messages
  std::map<std::string, std::string> metadata_;
  std::string source_;
};

// Converts a whole tensor (numel() elements) to float32 (any dtype; quantised blocks are
// dequantised).
void convert_to_f32(const TensorView& tensor, float* out);

// Converts elements [first, first + count) of a tensor (in row-major order) to float32,
// e.g. one embedding row. Throws tidal::Error when the range is outside the tensor, or,
// for a quantised tensor, does not start and end on block boundaries.
void convert_to_f32(const TensorView& tensor, size_t first, size_t count, float* out);

// Bulk conversion of `count` elements at `src` (any alignment) to float32. Uses the F16C
// instructions for F16 on x86-64 CPUs that have them; results are bit-identical to the
// scalar conversions in model/half.h (subnormals, infinities and NaNs included). Quantised
// types: `count` whole blocks from a block boundary, dequantised as model/quant.h says.
void convert_to_f32(DType dtype, const void* src, float* out, size_t count);

// Throws tidal::ModelError("tensor '<name>' contains NaN/Inf at element i ...") naming the
// first non-finite element. Checks the bit patterns directly, without converting; for a
// quantised tensor, its blocks' scales (the quants are integers), naming the block's first
// element.
void check_finite(const TensorView& tensor);

// "[4096, 128]"; "[]" for a scalar.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace tidal
