// The few file-system calls the engine makes, for POSIX systems and for Windows. Paths are UTF-8
// everywhere (Windows calls get them as UTF-16, so a user folder with accents or CJK names
// works, and absolute ones past MAX_PATH get the \\?\ prefix). File descriptors are the C
// runtime's on both, opened in binary mode.
//
// Errors follow the C convention: -1 (or false) and errno set, and error_text() says why in
// words, including for the Windows calls that report through GetLastError().
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace tidal::platform {

enum class FileKind { kMissing, kRegular, kDirectory, kOther };

struct FileStatus {
  FileKind kind = FileKind::kMissing;
  uint64_t size = 0;
};

// The status of a path (kMissing when it does not exist or cannot be looked at).
FileStatus status(const std::string& path);
// The status of an open descriptor; false (errno set) when it cannot be taken.
bool status(int fd, FileStatus& out);

// True when something is at `path`, a dangling link included (it then fails loudly on open).
bool present(const std::string& path);
// The names in a folder (no "." or ".."); empty when it cannot be listed.
std::vector<std::string> list_folder(const std::string& path);

int open_read(const std::string& path);     // -1 and errno on failure
int create_write(const std::string& path);  // created or truncated, mode 0644 where that applies
int close(int fd);
// One read or write of up to `bytes` at the current position (the count done, 0 at the end of
// the file, -1 with errno; EINTR is retried inside).
int64_t read(int fd, void* data, size_t bytes);
int64_t write(int fd, const void* data, size_t bytes);
// Positioned, without moving the descriptor's position on POSIX (on Windows the position moves;
// the engine never mixes the two on one descriptor after positioned calls start).
int64_t pread(int fd, void* data, size_t bytes, uint64_t offset);
int64_t pwrite(int fd, const void* data, size_t bytes, uint64_t offset);

// Moves `from` over `to`, replacing it atomically where the system can; the reason in words
// when it fails, empty on success.
std::string replace_file(const std::string& from, const std::string& to);
void remove_file(const std::string& path);  // best effort

// True when every page of [offset, offset + bytes) is in the page cache; false when that cannot
// be told (always on Windows).
bool in_page_cache(int fd, uint64_t offset, size_t bytes);
// A hint that [offset, offset + bytes) will be read once, in order (nothing on Windows).
void advise_sequential(int fd, uint64_t offset, uint64_t bytes);

// The reason for the last failed call of this thread, in words.
std::string error_text();

// A binary input stream on a UTF-8 path (on Windows through its UTF-16 form, long paths too).
std::ifstream open_input_stream(const std::string& path);

// A read-only mapping of a whole file. address is nullptr for an empty file.
struct Mapping {
  const uint8_t* address = nullptr;
  uint64_t size = 0;
  void* handle = nullptr;  // Windows: the file mapping object
};
// Maps `path`; on failure returns false with `error` a sentence naming the path and the reason,
// `out_of_memory` set when the address space or the system's mapping limit was the cause, and
// `not_regular` when the path is a folder or a device.
bool map_file(const std::string& path, Mapping& out, std::string& error, bool& out_of_memory, bool& not_regular);
void unmap_file(Mapping& mapping);

#ifdef _WIN32
// The UTF-16 form Windows calls get: trailing separators dropped, and an absolute path of
// MAX_PATH - 12 characters or more given the \\?\ (or \\?\UNC\) prefix with backslashes.
std::wstring windows_path(const std::string& utf8);
#endif

}  // namespace tidal::platform
