#include "core/platform_io.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <windows.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#endif
#endif

namespace tidal::platform {

namespace {

thread_local std::string last_error;

void remember_errno() { last_error = std::strerror(errno); }

}  // namespace

std::string error_text() { return last_error.empty() ? std::string(std::strerror(errno)) : last_error; }

#ifdef _WIN32

std::wstring windows_path(const std::string& utf8) {
  if (utf8.empty()) return std::wstring();
  const int length = static_cast<int>(std::min<size_t>(utf8.size(), INT_MAX));
  int wide = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8.data(), length, nullptr, 0);
  const DWORD flags = wide > 0 ? MB_ERR_INVALID_CHARS : 0;  // not UTF-8: replace the bad bytes
  if (wide <= 0) wide = MultiByteToWideChar(CP_UTF8, 0, utf8.data(), length, nullptr, 0);
  std::wstring out(static_cast<size_t>(std::max(wide, 0)), L'\0');
  if (wide > 0) MultiByteToWideChar(CP_UTF8, flags, utf8.data(), length, &out[0], wide);
  // _wstat64 refuses a directory written with a trailing separator ("C:\models\x\").
  while (out.size() > 3 && (out.back() == L'\\' || out.back() == L'/')) out.pop_back();
  // An absolute path past MAX_PATH (260) needs the \\?\ prefix, which also turns off the
  // system's parsing: separators must be backslashes then.
  if (out.size() >= MAX_PATH - 12 && out.rfind(L"\\\\?\\", 0) != 0) {
    std::wstring native = out;
    for (wchar_t& c : native)
      if (c == L'/') c = L'\\';
    if (native.size() > 2 && native[1] == L':' && native[2] == L'\\') return L"\\\\?\\" + native;
    if (native.rfind(L"\\\\", 0) == 0) return L"\\\\?\\UNC\\" + native.substr(2);
  }
  return out;
}

namespace {

std::string narrow(const wchar_t* text) {
  const int bytes = WideCharToMultiByte(CP_UTF8, 0, text, -1, nullptr, 0, nullptr, nullptr);
  if (bytes <= 1) return std::string();
  std::string out(static_cast<size_t>(bytes - 1), '\0');
  WideCharToMultiByte(CP_UTF8, 0, text, -1, &out[0], bytes, nullptr, nullptr);
  return out;
}

// Records GetLastError() in words and as the nearest errno.
void remember_windows_error() {
  const DWORD code = GetLastError();
  switch (code) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_NAME:
      errno = ENOENT;
      break;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
      errno = EACCES;
      break;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
      errno = ENOMEM;
      break;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
      errno = ENOSPC;
      break;
    default:
      errno = EIO;
  }
  wchar_t* message = nullptr;
  const DWORD length =
      FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                     nullptr, code, 0, reinterpret_cast<wchar_t*>(&message), 0, nullptr);
  std::string text = length > 0 && message ? narrow(message) : std::string();
  if (message) LocalFree(message);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '.'))
    text.pop_back();
  last_error =
      text.empty() ? "Windows error " + std::to_string(code) : text + " (Windows error " + std::to_string(code) + ")";
}

FileKind kind_of(unsigned mode) {
  if ((mode & _S_IFMT) == _S_IFREG) return FileKind::kRegular;
  if ((mode & _S_IFMT) == _S_IFDIR) return FileKind::kDirectory;
  return FileKind::kOther;
}

constexpr DWORD kShareAll = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
constexpr size_t kMaxPiece = size_t(1) << 30;  // one ReadFile/WriteFile call moves less than 4 GiB

int descriptor_of(HANDLE handle, int flags) {
  if (handle == INVALID_HANDLE_VALUE) {
    remember_windows_error();
    return -1;
  }
  const int fd = _open_osfhandle(reinterpret_cast<intptr_t>(handle), flags | _O_BINARY);
  if (fd < 0) {
    remember_errno();
    CloseHandle(handle);
  }
  return fd;
}

}  // namespace

std::ifstream open_input_stream(const std::string& path) {
  return std::ifstream(std::filesystem::path(windows_path(path)), std::ios::binary);
}

FileStatus status(const std::string& path) {
  FileStatus out;
  struct _stat64 info;
  if (path.empty() || _wstat64(windows_path(path).c_str(), &info) != 0) return out;
  out.kind = kind_of(info.st_mode);
  out.size = static_cast<uint64_t>(info.st_size);
  return out;
}

bool status(int fd, FileStatus& out) {
  struct _stat64 info;
  if (_fstat64(fd, &info) != 0) {
    remember_errno();
    return false;
  }
  out.kind = kind_of(info.st_mode);
  out.size = static_cast<uint64_t>(info.st_size);
  return true;
}

bool present(const std::string& path) {
  return !path.empty() && GetFileAttributesW(windows_path(path).c_str()) != INVALID_FILE_ATTRIBUTES;
}

std::vector<std::string> list_folder(const std::string& path) {
  std::vector<std::string> names;
  WIN32_FIND_DATAW entry;
  HANDLE search = FindFirstFileW((windows_path(path) + L"\\*").c_str(), &entry);
  if (search == INVALID_HANDLE_VALUE) return names;
  do {
    const std::string name = narrow(entry.cFileName);
    if (name != "." && name != "..") names.push_back(name);
  } while (FindNextFileW(search, &entry));
  FindClose(search);
  return names;
}

int open_read(const std::string& path) {
  return descriptor_of(CreateFileW(windows_path(path).c_str(), GENERIC_READ, kShareAll, nullptr, OPEN_EXISTING,
                                   FILE_ATTRIBUTE_NORMAL, nullptr),
                       _O_RDONLY);
}

int create_write(const std::string& path) {
  return descriptor_of(CreateFileW(windows_path(path).c_str(), GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE,
                                   nullptr, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr),
                       _O_WRONLY);
}

int close(int fd) {
  const int result = _close(fd);
  if (result != 0) remember_errno();
  return result;
}

int64_t read(int fd, void* data, size_t bytes) {
  const int n = _read(fd, data, static_cast<unsigned>(std::min(bytes, kMaxPiece)));
  if (n < 0) remember_errno();
  return n;
}

int64_t write(int fd, const void* data, size_t bytes) {
  const int n = _write(fd, data, static_cast<unsigned>(std::min(bytes, kMaxPiece)));
  if (n < 0) remember_errno();
  return n;
}

int64_t pread(int fd, void* data, size_t bytes, uint64_t offset) {
  OVERLAPPED at{};
  at.Offset = static_cast<DWORD>(offset);
  at.OffsetHigh = static_cast<DWORD>(offset >> 32);
  DWORD done = 0;
  if (!ReadFile(reinterpret_cast<HANDLE>(_get_osfhandle(fd)), data, static_cast<DWORD>(std::min(bytes, kMaxPiece)),
                &done, &at)) {
    if (GetLastError() == ERROR_HANDLE_EOF) return 0;
    remember_windows_error();
    return -1;
  }
  return done;
}

int64_t pwrite(int fd, const void* data, size_t bytes, uint64_t offset) {
  OVERLAPPED at{};
  at.Offset = static_cast<DWORD>(offset);
  at.OffsetHigh = static_cast<DWORD>(offset >> 32);
  DWORD done = 0;
  if (!WriteFile(reinterpret_cast<HANDLE>(_get_osfhandle(fd)), data, static_cast<DWORD>(std::min(bytes, kMaxPiece)),
                 &done, &at)) {
    remember_windows_error();
    return -1;
  }
  return done;
}

std::string replace_file(const std::string& from, const std::string& to) {
  if (MoveFileExW(windows_path(from).c_str(), windows_path(to).c_str(),
                  MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    return "";
  remember_windows_error();
  return last_error;
}

void remove_file(const std::string& path) { DeleteFileW(windows_path(path).c_str()); }

bool in_page_cache(int, uint64_t, size_t) { return false; }

void advise_sequential(int, uint64_t, uint64_t) {}

bool map_file(const std::string& path, Mapping& out, std::string& error, bool& out_of_memory, bool& not_regular) {
  out = Mapping();
  out_of_memory = not_regular = false;
  const FileStatus info = status(path);
  if (info.kind != FileKind::kRegular && info.kind != FileKind::kMissing) {
    not_regular = true;
    error = "'" + path + "' is not a regular file";
    return false;
  }
  HANDLE file = CreateFileW(windows_path(path).c_str(), GENERIC_READ, kShareAll, nullptr, OPEN_EXISTING,
                            FILE_ATTRIBUTE_NORMAL | FILE_FLAG_RANDOM_ACCESS, nullptr);
  if (file == INVALID_HANDLE_VALUE) {
    remember_windows_error();
    error = "cannot open '" + path + "': " + last_error;
    return false;
  }
  LARGE_INTEGER size{};
  if (!GetFileSizeEx(file, &size)) {
    remember_windows_error();
    error = "cannot stat '" + path + "': " + last_error;
    CloseHandle(file);
    return false;
  }
  out.size = static_cast<uint64_t>(size.QuadPart);
  if (out.size == 0) {  // an empty file cannot be mapped and has no bytes to map
    CloseHandle(file);
    return true;
  }
  HANDLE mapping = CreateFileMappingW(file, nullptr, PAGE_READONLY, 0, 0, nullptr);
  CloseHandle(file);  // the mapping object keeps the file open
  void* view = mapping ? MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0) : nullptr;
  if (!view) {
    const DWORD code = GetLastError();
    remember_windows_error();
    error = "cannot map '" + path + "': " + last_error;
    out_of_memory = code == ERROR_NOT_ENOUGH_MEMORY || code == ERROR_COMMITMENT_LIMIT || code == ERROR_OUTOFMEMORY;
    if (mapping) CloseHandle(mapping);
    out.size = 0;
    return false;
  }
  out.address = static_cast<const uint8_t*>(view);
  out.handle = mapping;
  return true;
}

void unmap_file(Mapping& mapping) {
  if (mapping.address) UnmapViewOfFile(mapping.address);
  if (mapping.handle) CloseHandle(static_cast<HANDLE>(mapping.handle));
  mapping = Mapping();
}

#else

namespace {

FileKind kind_of(mode_t mode) {
  if (S_ISREG(mode)) return FileKind::kRegular;
  if (S_ISDIR(mode)) return FileKind::kDirectory;
  return FileKind::kOther;
}

// A system call's result, called again while a signal interrupts it; a failure remembered.
template <class Call>
int64_t retried(const Call& call) {
  for (;;) {
    const int64_t n = call();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) remember_errno();
    return n;
  }
}

#ifdef __EMSCRIPTEN__
// The WebAssembly build reaches files through Node (Emscripten's NODERAWFS), which splits a path
// on '/' and cuts every piece to 255 bytes: a Windows path written with '\\' is one piece there,
// and one longer than 255 bytes would lose its end. Node on Windows takes '/' as well, so on a
// Windows host '\\' becomes '/'.
bool host_is_windows() {
  // clang-format off
  static const bool windows = EM_ASM_INT({ return (typeof process != 'undefined' && process.platform == 'win32') ? 1 : 0; }) != 0;
  // clang-format on
  return windows;
}
std::string host_path(const std::string& path) {
  if (!host_is_windows()) return path;
  std::string out = path;
  std::replace(out.begin(), out.end(), '\\', '/');
  return out;
}
#else
const std::string& host_path(const std::string& path) { return path; }
#endif

}  // namespace

std::ifstream open_input_stream(const std::string& path) { return std::ifstream(host_path(path), std::ios::binary); }

FileStatus status(const std::string& path) {
  FileStatus out;
  struct stat info;
  if (path.empty() || ::stat(host_path(path).c_str(), &info) != 0) return out;
  out.kind = kind_of(info.st_mode);
  out.size = static_cast<uint64_t>(info.st_size);
  return out;
}

bool status(int fd, FileStatus& out) {
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    remember_errno();
    return false;
  }
  out.kind = kind_of(info.st_mode);
  out.size = static_cast<uint64_t>(info.st_size);
  return true;
}

bool present(const std::string& path) {
  struct stat info;
  return !path.empty() && ::lstat(host_path(path).c_str(), &info) == 0;
}

std::vector<std::string> list_folder(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* listing = ::opendir(host_path(path).c_str())) {
    while (const dirent* entry = ::readdir(listing)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(listing);
  }
  return names;
}

int open_read(const std::string& path) {
  return static_cast<int>(retried([&] { return ::open(host_path(path).c_str(), O_RDONLY | O_CLOEXEC); }));
}

int create_write(const std::string& path) {
  const int fd = ::open(host_path(path).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) remember_errno();
  return fd;
}

int close(int fd) {
  const int result = ::close(fd);
  if (result != 0) remember_errno();
  return result;
}

int64_t read(int fd, void* data, size_t bytes) {
  return retried([&] { return ::read(fd, data, bytes); });
}

int64_t write(int fd, const void* data, size_t bytes) {
  return retried([&] { return ::write(fd, data, bytes); });
}

int64_t pread(int fd, void* data, size_t bytes, uint64_t offset) {
  return retried([&] { return ::pread(fd, data, bytes, static_cast<off_t>(offset)); });
}

int64_t pwrite(int fd, const void* data, size_t bytes, uint64_t offset) {
  return retried([&] { return ::pwrite(fd, data, bytes, static_cast<off_t>(offset)); });
}

std::string replace_file(const std::string& from, const std::string& to) {
  if (::rename(host_path(from).c_str(), host_path(to).c_str()) == 0) return "";
  remember_errno();
  return last_error;
}

void remove_file(const std::string& path) { ::unlink(host_path(path).c_str()); }

bool in_page_cache(int fd, uint64_t offset, size_t bytes) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t start = offset / page * page;
  const size_t length = static_cast<size_t>(offset + bytes - start);
  void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(start));
  if (map == MAP_FAILED) return false;
  std::vector<unsigned char> pages((length + page - 1) / page);
  const bool known = ::mincore(map, length, pages.data()) == 0;
  ::munmap(map, length);
  return known && std::all_of(pages.begin(), pages.end(), [](unsigned char p) { return (p & 1) != 0; });
}

void advise_sequential(int fd, uint64_t offset, uint64_t bytes) {
  ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes), POSIX_FADV_SEQUENTIAL);
}

bool map_file(const std::string& path, Mapping& out, std::string& error, bool& out_of_memory, bool& not_regular) {
  out = Mapping();
  out_of_memory = not_regular = false;
  const int fd = open_read(path);
  if (fd < 0) {
    error = "cannot open '" + path + "': " + last_error;
    return false;
  }
  FileStatus info;
  if (!status(fd, info)) {
    error = "cannot stat '" + path + "': " + last_error;
    ::close(fd);
    return false;
  }
  if (info.kind != FileKind::kRegular) {
    not_regular = true;
    error = "'" + path + "' is not a regular file";
    ::close(fd);
    return false;
  }
  out.size = info.size;
  if (out.size == 0) {  // mmap rejects length 0; an empty file has no bytes to map
    ::close(fd);
    return true;
  }
  if (out.size > std::numeric_limits<size_t>::max() / 2) {
    // A 32-bit build (the WebAssembly engine: 4 GB of memory in all) cannot map it whole, and a
    // length cut to 32 bits would map a part while the file's offsets reach past it.
    ::close(fd);
    char size[32];
    std::snprintf(size, sizeof size, "%.1f GB", double(out.size) / 1e9);
    error = "'" + path + "' is " + size +
            ", more than this 32-bit build of the engine (the WebAssembly one) can map; " +
            "use a smaller model or a platform with the native engine";
    out_of_memory = true;
    out.size = 0;
    return false;
  }
  void* address = ::mmap(nullptr, static_cast<size_t>(out.size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  ::close(fd);  // the mapping outlives the descriptor
  if (address == MAP_FAILED) {
    errno = map_error;
    remember_errno();
    error = "cannot map '" + path + "': " + last_error;
    out_of_memory = map_error == ENOMEM;
    out.size = 0;
    return false;
  }
  out.address = static_cast<const uint8_t*>(address);
  return true;
}

void unmap_file(Mapping& mapping) {
  if (mapping.address) ::munmap(const_cast<uint8_t*>(mapping.address), static_cast<size_t>(mapping.size));
  mapping = Mapping();
}

#endif

}  // namespace tidal::platform
