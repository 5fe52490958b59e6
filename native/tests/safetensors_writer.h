// Test helpers for model files: write safetensors files (well-formed or deliberately
// broken), encode float data as F32/F16/BF16 bytes, and a temporary folder that removes
// itself. Header-only and independent of the other test files.
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/half.h"

namespace tidal_test {

struct TensorSpec {
  std::string name;
  std::string dtype;  // as written in the header: "F32", "F16", "BF16", or any other string
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // raw little-endian data
};

inline std::vector<uint8_t> f32_bytes(const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * 4);
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

inline std::vector<uint8_t> u16_bytes(const std::vector<uint16_t>& values) {
  std::vector<uint8_t> out(values.size() * 2);
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

inline std::vector<uint8_t> f16_bytes(const std::vector<float>& values) {
  std::vector<uint16_t> halves;
  for (float v : values) halves.push_back(tidal::f32_to_f16(v));
  return u16_bytes(halves);
}

inline std::vector<uint8_t> bf16_bytes(const std::vector<float>& values) {
  std::vector<uint16_t> halves;
  for (float v : values) halves.push_back(tidal::f32_to_bf16(v));
  return u16_bytes(halves);
}

// A JSON string literal for `text` (quotes, backslashes and control characters escaped).
inline std::string json_quote(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The bytes of a safetensors file holding `header_json` and `data` verbatim: the 8-byte
// little-endian header length, the header padded with spaces to a multiple of 8 bytes (so
// the data section is 8-byte aligned, as the reference writer does), then the data.
inline std::vector<uint8_t> raw_safetensors_bytes(std::string header_json, const std::vector<uint8_t>& data,
                                                  bool pad = true) {
  if (pad)
    while ((8 + header_json.size()) % 8 != 0) header_json += ' ';
  const uint64_t n = header_json.size();
  std::vector<uint8_t> out(8 + header_json.size() + data.size());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  if (!header_json.empty()) std::memcpy(out.data() + 8, header_json.data(), header_json.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header_json.size(), data.data(), data.size());
  return out;
}

// A well-formed safetensors image: tensors laid out back to back in the given order.
inline std::vector<uint8_t> safetensors_bytes(const std::vector<TensorSpec>& tensors,
                                              const std::map<std::string, std::string>& metadata = {}) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      if (!first) header += ",";
      header += json_quote(key) + ":" + json_quote(value);
      first = false;
    }
    header += "}";
  }
  std::vector<uint8_t> data;
  for (const TensorSpec& t : tensors) {
    if (header.size() > 1) header += ",";
    header += json_quote(t.name) + ":{\"dtype\":" + json_quote(t.dtype) + ",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + t.bytes.size()) + "]}";
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  header += "}";
  return raw_safetensors_bytes(header, data);
}

// `path` is UTF-8 (on Windows too: the stream opens its UTF-16 form).
inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(std::filesystem::u8path(path), std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot create " + path);
  if (!bytes.empty()) f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  f.close();
  if (!f) throw std::runtime_error("short write to " + path);
}

inline void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// Writes a well-formed safetensors file from a list of {name, dtype, shape, bytes}.
inline void write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  write_bytes(path, safetensors_bytes(tensors, metadata));
}

// A fresh folder under the system temp directory, removed with its contents on scope exit.
class TempDir {
 public:
  TempDir() {
#ifdef _WIN32
    std::random_device random;
    for (int attempt = 0; attempt < 100 && path_.empty(); ++attempt) {
      const auto candidate = std::filesystem::temp_directory_path() / ("tidal-test-" + std::to_string(random()));
      std::error_code error;
      if (std::filesystem::create_directory(candidate, error)) path_ = candidate.u8string();
    }
    if (path_.empty()) throw std::runtime_error("cannot create a folder under the temporary directory");
#else
    std::string pattern = (std::filesystem::temp_directory_path() / "tidal-test-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (!::mkdtemp(buffer.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = buffer.data();
#endif
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace tidal_test
