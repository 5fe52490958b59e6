// A whole file mapped read-only into memory. Weights are paged in by the OS on first touch
// and shared with the page cache, so opening a multi-gigabyte model costs no copies.
//
// The mapping assumes the file is not truncated while mapped: on POSIX systems reading past a
// shrunken end raises SIGBUS, which no user-space check can prevent (Windows refuses to cut a
// mapped file). Model folders are not edited while
// loaded in practice; callers validate every offset against size() taken at open time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tidal {

class MappedFile {
 public:
  // Throws tidal::ModelError when the path is missing, not a regular file, or cannot be
  // mapped; the message names the path and the system's reason.
  static std::unique_ptr<MappedFile> open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* handle_ = nullptr;  // Windows: the file mapping object
};

}  // namespace tidal
