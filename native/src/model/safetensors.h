// The safetensors container:
//
//   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian
//   bytes [8, 8 + N)    a JSON object: {"<tensor name>": {"dtype": "BF16", "shape": [rows, cols],
//                       "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
//   bytes [8 + N, ...)  the data section; begin/end are relative to its start, end exclusive
//
// Tensors are stored row-major, little-endian. parse_safetensors checks the whole header
// against the buffer before a single tensor byte is handed out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "model/weight_store.h"

namespace tidal {

// The header-length cap of the reference implementation; real headers are kilobytes to a
// few megabytes.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
// Tensors of more dimensions than this are rejected as corrupt.
constexpr size_t kMaxTensorRank = 8;

struct SafetensorsContents {
  std::vector<TensorView> tensors;              // in header order
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
  size_t data_offset = 0;                       // 8 + N: where the data section starts
};

// Parses and validates the safetensors image [bytes, bytes + size). `label` names the file
// in error messages. The returned views point into `bytes`. Throws tidal::ModelError.
SafetensorsContents parse_safetensors(const uint8_t* bytes, size_t size, const std::string& label);

// "F32" -> DType::F32 etc.; false for any other spelling.
bool parse_dtype_name(std::string_view name, DType* dtype);

}  // namespace tidal
