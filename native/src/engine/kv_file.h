// The file of a saved sequence (Engine::save_sequence / load_sequence): a small header, the
// token history and last logits, then the K/V in the backend's own storage, then an end
// marker. Little-endian, as the engine's hosts are.
//
//   0            "TIDALKV1"                            magic
//   8            u32 format version (kKvFileVersion)
//   12           u32 header bytes H
//   16           header, H bytes (KvFileHeader, fields in the order of the struct;
//                strings as u32 length + bytes, the fingerprint as u32 count + name/value pairs)
//   16 + H       i32 tokens[token_count], f32 logits[logits_count]
//                zero padding up to kv_offset, a multiple of 4096
//   kv_offset    K/V, kv_bytes = layers * 2 * kv_heads * cached_count * (head_dim * element bytes
//                + row extra bytes), in "file order" (KvByteSink in engine/backend.h); the extra
//                bytes are 0, or 2 for "fp8_e4m3" (each row's f16 scale)
//   end          "TIDALEND", u64 checksum, u64 kv_bytes
//
// The checksum (FNV-1a, 64 bits) covers bytes [0, kv_offset): header, tokens, logits. The K/V
// are not hashed (that would cost as much as reading them); a file of the wrong size is
// rejected before any K/V is read, which catches the interrupted or cut file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model_fingerprint.h"

namespace tidal {

// 2: the model fingerprint hashes the exact RoPE frequencies instead of naming the scaling.
constexpr uint32_t kKvFileVersion = 2;

struct KvFileHeader {
  std::string backend;   // the backend that computed and stored the K/V: "cpu", "cuda"
  std::string kv_dtype;  // its element type: "f32", "bf16", "fp8_e4m3"
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  ModelFingerprint model;
  int64_t token_count = 0;             // the token history
  int64_t cached_count = 0;            // tokens [0, cached_count) have K/V in the file
  int64_t logits_count = 0;            // 0, or the vocabulary size: the logits after token cached_count - 1
  int64_t first_sparse_position = -1;  // first position written under sparse attention, -1 for none
};

// Bytes of one K/V element of `dtype`, 0 when unknown.
size_t kv_element_bytes(const std::string& dtype);
// Bytes each K or V row (head_dim elements) carries besides its elements: 2 for "fp8_e4m3".
size_t kv_row_extra_bytes(const std::string& dtype);

// Writes a KV file to `path + ".tmp"` (the front, then the K/V that `write_kv` sends to its
// sink, then the end marker) and renames it to `path`. Returns the file's size. Throws
// RequestError on an I/O error, after removing the .tmp file.
size_t write_kv_file(const std::string& path, const KvFileHeader& header, const std::vector<int32_t>& tokens,
                     const std::vector<float>& logits, const std::function<void(KvByteSink&)>& write_kv);

// An open KV file whose structure was checked on opening: magic, version, header, file size
// against the sizes the header gives, end marker and checksum. What it must match (model,
// backend, vocabulary, context) is the engine's to check. Throws RequestError naming the file
// and the problem.
class KvFileReader {
 public:
  explicit KvFileReader(const std::string& path);
  ~KvFileReader();
  KvFileReader(const KvFileReader&) = delete;
  KvFileReader& operator=(const KvFileReader&) = delete;

  const KvFileHeader& header() const { return header_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  const std::vector<float>& logits() const { return logits_; }
  uint64_t kv_bytes() const { return kv_bytes_; }
  // The K/V section, read from its start; reading past its end throws RequestError.
  KvByteSource& kv();
  uint64_t kv_bytes_read() const;

 private:
  class Source;
  std::string path_;
  KvFileHeader header_;
  std::vector<int32_t> tokens_;
  std::vector<float> logits_;
  uint64_t kv_bytes_ = 0;
  std::unique_ptr<Source> source_;
};

}  // namespace tidal
