#include "engine/kv_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "core/platform_io.h"
#include "tidal/error.h"

namespace tidal {

namespace {

constexpr char kMagic[8] = {'T', 'I', 'D', 'A', 'L', 'K', 'V', '1'};
constexpr char kEndMagic[8] = {'T', 'I', 'D', 'A', 'L', 'E', 'N', 'D'};
constexpr size_t kPrologueBytes = 16;  // magic, version, header bytes
constexpr size_t kEndBytes = 24;       // end magic, checksum, kv_bytes
constexpr uint64_t kAlignment = 4096;
constexpr uint32_t kMaxHeaderBytes = 1 << 20;
// Pieces of at least this size bypass the file buffers (the CUDA backend's chunks do).
constexpr size_t kBufferBytes = 8 << 20;

uint64_t fnv1a(const void* data, size_t bytes) {
  uint64_t hash = 14695981039346656037ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string system_error() { return platform::error_text(); }

// ---- header encoding ----

class Encoder {
 public:
  template <class T>
  void put(T value) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof value);
    std::memcpy(&bytes[at], &value, sizeof value);
  }
  void put_string(const std::string& text) {
    put(static_cast<uint32_t>(text.size()));
    bytes += text;
  }
  std::string bytes;
};

class Decoder {
 public:
  Decoder(const std::string& bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  template <class T>
  T get() {
    T value;
    need(sizeof value);
    std::memcpy(&value, bytes_.data() + at_, sizeof value);
    at_ += sizeof value;
    return value;
  }
  std::string get_string() {
    const uint32_t size = get<uint32_t>();
    need(size);
    std::string text = bytes_.substr(at_, size);
    at_ += size;
    return text;
  }
  void need(size_t count) const {
    if (count > bytes_.size() - at_)
      throw RequestError("KV file '" + path_ + "' has a corrupt header (it ends inside a field)");
  }

 private:
  const std::string& bytes_;
  const std::string& path_;
  size_t at_ = 0;
};

std::string encode_header(const KvFileHeader& h) {
  Encoder e;
  e.put_string(h.backend);
  e.put_string(h.kv_dtype);
  e.put(h.layers);
  e.put(h.kv_heads);
  e.put(h.head_dim);
  e.put(static_cast<uint32_t>(h.model.fields.size()));
  for (const auto& [name, value] : h.model.fields) {
    e.put_string(name);
    e.put_string(value);
  }
  e.put(h.token_count);
  e.put(h.cached_count);
  e.put(h.logits_count);
  e.put(h.first_sparse_position);
  return e.bytes;
}

KvFileHeader decode_header(const std::string& bytes, const std::string& path) {
  Decoder d(bytes, path);
  KvFileHeader h;
  h.backend = d.get_string();
  h.kv_dtype = d.get_string();
  h.layers = d.get<int64_t>();
  h.kv_heads = d.get<int64_t>();
  h.head_dim = d.get<int64_t>();
  const uint32_t fields = d.get<uint32_t>();
  if (fields > 1024)
    throw RequestError("KV file '" + path + "' has a corrupt header (" + std::to_string(fields) +
                       " fingerprint fields)");
  for (uint32_t i = 0; i < fields; ++i) {
    std::string name = d.get_string();
    h.model.fields.emplace_back(std::move(name), d.get_string());
  }
  h.token_count = d.get<int64_t>();
  h.cached_count = d.get<int64_t>();
  h.logits_count = d.get<int64_t>();
  h.first_sparse_position = d.get<int64_t>();
  return h;
}

uint64_t round_up(uint64_t value, uint64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Where the parts of a file with this header lie; false when the sizes overflow.
struct Layout {
  uint64_t tokens_offset = 0, front_bytes = 0, kv_offset = 0, kv_bytes = 0, total = 0;
};

bool layout_of(const KvFileHeader& h, uint64_t header_bytes, Layout& out) {
  const uint64_t element = kv_element_bytes(h.kv_dtype);
  out.tokens_offset = kPrologueBytes + header_bytes;
  out.front_bytes = out.tokens_offset + 4 * static_cast<uint64_t>(h.token_count + h.logits_count);
  out.kv_offset = round_up(out.front_bytes, kAlignment);
  uint64_t kv = element;
  if (__builtin_mul_overflow(kv, static_cast<uint64_t>(h.head_dim), &kv) ||
      __builtin_add_overflow(kv, kv_row_extra_bytes(h.kv_dtype), &kv))
    return false;
  for (int64_t factor : {h.layers, int64_t{2}, h.kv_heads, h.cached_count})
    if (__builtin_mul_overflow(kv, static_cast<uint64_t>(factor), &kv)) return false;
  out.kv_bytes = kv;
  uint64_t tail = 0;
  return !__builtin_add_overflow(kv, kEndBytes, &tail) && !__builtin_add_overflow(out.kv_offset, tail, &out.total);
}

// ---- file descriptors ----

void write_all(int fd, const void* data, size_t bytes, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const int64_t n = platform::write(fd, p, bytes);
    if (n <= 0) throw RequestError("cannot write KV file '" + path + "': " + system_error());
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

// Reads exactly `bytes` unless the file ends first; returns the bytes read.
size_t read_up_to(int fd, void* data, size_t bytes, const std::string& path) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < bytes) {
    const int64_t n = platform::read(fd, p + done, bytes - done);
    if (n < 0) throw RequestError("cannot read KV file '" + path + "': " + system_error());
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void read_exactly(int fd, void* data, size_t bytes, const std::string& path, const char* what) {
  if (read_up_to(fd, data, bytes, path) != bytes)
    throw RequestError("KV file '" + path + "' is truncated: it ends inside its " + what);
}

// pread / pwrite of exactly [offset, offset + bytes); the error text, empty on success.
std::string positioned(int fd, char* data, size_t bytes, uint64_t offset, bool writing) {
  while (bytes > 0) {
    const int64_t n = writing ? platform::pwrite(fd, data, bytes, offset) : platform::pread(fd, data, bytes, offset);
    if (n < 0) return system_error();
    if (n == 0) return "the file ended early";
    data += n;
    bytes -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return "";
}

// Reads of large pieces that are in the page cache run on several threads, in parts of at
// least kParallelPart: one thread copying out of the page cache tops out far below the
// memory's speed. Reads from the disk and writes stay on one thread, which measured faster
// (the kernel's readahead and writeback see one sequential stream).
constexpr size_t kParallelPart = size_t(8) << 20;
constexpr size_t kMaxParallel = 8;

void transfer(int fd, char* data, size_t bytes, uint64_t offset, bool writing, const std::string& path) {
  size_t parts = 1;
  if (!writing && bytes >= 2 * kParallelPart && platform::in_page_cache(fd, offset, bytes))
    parts = std::min(kMaxParallel, bytes / kParallelPart);
  std::vector<std::string> errors(parts);
  const size_t part = (bytes / parts + kAlignment - 1) / kAlignment * kAlignment;
  auto run = [&](size_t i) {
    const size_t begin = std::min(bytes, i * part), end = i + 1 == parts ? bytes : std::min(bytes, begin + part);
    errors[i] = positioned(fd, data + begin, end - begin, offset + begin, writing);
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < parts; ++i) threads.emplace_back(run, i);
  run(0);
  for (std::thread& t : threads) t.join();
  for (const std::string& error : errors)
    if (!error.empty())
      throw RequestError(std::string(writing ? "cannot write KV file '" : "cannot read KV file '") + path +
                         "': " + error);
}

// Writes the K/V section from `offset` on, through a buffer; large pieces go straight out.
class FileSink final : public KvByteSink {
 public:
  FileSink(int fd, const std::string& path, uint64_t offset) : fd_(fd), path_(path), offset_(offset) {
    buffer_.reserve(kBufferBytes);
  }
  void write(const void* data, size_t bytes) override {
    if (buffer_.size() + bytes > kBufferBytes) flush();
    if (bytes >= kBufferBytes) {
      transfer(fd_, const_cast<char*>(static_cast<const char*>(data)), bytes, offset_, true, path_);
      offset_ += bytes;
    } else {
      const char* p = static_cast<const char*>(data);
      buffer_.insert(buffer_.end(), p, p + bytes);
    }
    written_ += bytes;
  }
  void flush() {
    transfer(fd_, buffer_.data(), buffer_.size(), offset_, true, path_);
    offset_ += buffer_.size();
    buffer_.clear();
  }
  uint64_t written() const { return written_; }

 private:
  int fd_;
  const std::string& path_;
  uint64_t offset_;
  std::vector<char> buffer_;
  uint64_t written_ = 0;
};

}  // namespace

size_t kv_element_bytes(const std::string& dtype) {
  if (dtype == "f32") return 4;
  if (dtype == "bf16") return 2;
  if (dtype == "fp8_e4m3") return 1;
  return 0;
}

size_t kv_row_extra_bytes(const std::string& dtype) { return dtype == "fp8_e4m3" ? 2 : 0; }

size_t write_kv_file(const std::string& path, const KvFileHeader& header, const std::vector<int32_t>& tokens,
                     const std::vector<float>& logits, const std::function<void(KvByteSink&)>& write_kv) {
  const std::string header_bytes = encode_header(header);
  Layout layout;
  if (!layout_of(header, header_bytes.size(), layout) || kv_element_bytes(header.kv_dtype) == 0)
    throw RequestError("cannot save a KV cache of element type '" + header.kv_dtype + "'");
  std::string front(layout.kv_offset, '\0');
  std::memcpy(&front[0], kMagic, 8);
  const uint32_t version = kKvFileVersion, size = static_cast<uint32_t>(header_bytes.size());
  std::memcpy(&front[8], &version, 4);
  std::memcpy(&front[12], &size, 4);
  std::memcpy(&front[kPrologueBytes], header_bytes.data(), header_bytes.size());
  std::memcpy(&front[layout.tokens_offset], tokens.data(), tokens.size() * 4);
  std::memcpy(&front[layout.tokens_offset + tokens.size() * 4], logits.data(), logits.size() * 4);

  const std::string temporary = path + ".tmp";
  const int fd = platform::create_write(temporary);
  if (fd < 0) throw RequestError("cannot create KV file '" + temporary + "': " + system_error());
  try {
    write_all(fd, front.data(), front.size(), temporary);
    FileSink sink(fd, temporary, layout.kv_offset);
    write_kv(sink);
    sink.flush();
    if (sink.written() != layout.kv_bytes)
      throw Error("the backend wrote " + std::to_string(sink.written()) + " K/V bytes, the header announces " +
                  std::to_string(layout.kv_bytes));
    char end[kEndBytes];
    const uint64_t checksum = fnv1a(front.data(), front.size());
    std::memcpy(end, kEndMagic, 8);
    std::memcpy(end + 8, &checksum, 8);
    std::memcpy(end + 16, &layout.kv_bytes, 8);
    transfer(fd, end, sizeof end, layout.kv_offset + layout.kv_bytes, true, temporary);
    if (platform::close(fd) != 0) {
      platform::remove_file(temporary);
      throw RequestError("cannot write KV file '" + temporary + "': " + system_error());
    }
  } catch (...) {
    platform::close(fd);
    platform::remove_file(temporary);
    throw;
  }
  if (const std::string reason = platform::replace_file(temporary, path); !reason.empty()) {
    platform::remove_file(temporary);
    throw RequestError("cannot rename KV file '" + temporary + "' to '" + path + "': " + reason);
  }
  return static_cast<size_t>(layout.total);
}

// Reads the K/V section in order through a buffer; large pieces go straight to the caller.
class KvFileReader::Source final : public KvByteSource {
 public:
  Source(int fd, const std::string& path, uint64_t offset, uint64_t bytes)
      : fd_(fd), path_(path), offset_(offset), left_(bytes) {}
  ~Source() override { platform::close(fd_); }
  void read(void* data, size_t bytes) override {
    if (bytes > left_ + (buffered_ - used_))
      throw RequestError("reading past the K/V of KV file '" + path_ + "' (a backend asked for more than saved)");
    char* out = static_cast<char*>(data);
    const size_t from_buffer = std::min(bytes, buffered_ - used_);
    std::memcpy(out, buffer_.data() + used_, from_buffer);
    used_ += from_buffer;
    out += from_buffer;
    bytes -= from_buffer;
    read_ += from_buffer;
    if (bytes == 0) return;
    if (bytes >= kBufferBytes) {
      fetch(out, bytes);
      read_ += bytes;
      return;
    }
    buffer_.resize(kBufferBytes);
    buffered_ = static_cast<size_t>(std::min<uint64_t>(kBufferBytes, left_));
    fetch(buffer_.data(), buffered_);
    std::memcpy(out, buffer_.data(), bytes);
    used_ = bytes;
    read_ += bytes;
  }
  uint64_t bytes_read() const { return read_; }

 private:
  // The next `bytes` of the file (a file cut since it was opened reads as truncated).
  void fetch(char* out, size_t bytes) {
    try {
      transfer(fd_, out, bytes, offset_, false, path_);
    } catch (const RequestError& error) {
      throw RequestError(std::string(error.what()) + " (was the file cut while it was being loaded?)");
    }
    offset_ += bytes;
    left_ -= bytes;
  }

  int fd_;
  std::string path_;
  uint64_t offset_;  // in the file, of the first byte not yet read
  uint64_t left_;    // K/V bytes not yet read from the file
  std::vector<char> buffer_;
  size_t buffered_ = 0, used_ = 0;
  uint64_t read_ = 0;
};

KvFileReader::KvFileReader(const std::string& path) : path_(path) {
  const int fd = platform::open_read(path);
  if (fd < 0) throw RequestError("cannot open KV file '" + path + "': " + system_error());
  try {
    platform::FileStatus info;
    if (!platform::status(fd, info) || info.kind != platform::FileKind::kRegular)
      throw RequestError("KV file '" + path + "' is not a regular file");
    const uint64_t file_size = info.size;
    char prologue[kPrologueBytes];
    if (read_up_to(fd, prologue, kPrologueBytes, path) != kPrologueBytes || std::memcmp(prologue, kMagic, 8) != 0)
      throw RequestError("'" + path + "' is not a Tidal KV file (it does not start with TIDALKV1)");
    uint32_t version = 0, header_size = 0;
    std::memcpy(&version, prologue + 8, 4);
    std::memcpy(&header_size, prologue + 12, 4);
    if (version != kKvFileVersion)
      throw RequestError("KV file '" + path + "' has format version " + std::to_string(version) +
                         "; this engine reads version " + std::to_string(kKvFileVersion) +
                         " (save the sequence again)");
    if (header_size > kMaxHeaderBytes)
      throw RequestError("KV file '" + path + "' has a corrupt header (" + std::to_string(header_size) + " bytes)");
    std::string header_bytes(header_size, '\0');
    read_exactly(fd, &header_bytes[0], header_size, path, "header");
    header_ = decode_header(header_bytes, path);
    const KvFileHeader& h = header_;
    const bool sane = kv_element_bytes(h.kv_dtype) != 0 && h.layers > 0 && h.layers <= 4096 && h.kv_heads > 0 &&
                      h.kv_heads <= 4096 && h.head_dim > 0 && h.head_dim <= 4096 && h.token_count >= 0 &&
                      h.token_count < (int64_t{1} << 31) && h.cached_count >= 0 && h.cached_count <= h.token_count &&
                      h.logits_count >= 0 && h.logits_count <= (int64_t{1} << 26) &&
                      (h.logits_count == 0 || h.cached_count > 0) && h.first_sparse_position >= -1;
    Layout layout;
    if (!sane || !layout_of(h, header_size, layout))
      throw RequestError("KV file '" + path + "' has a corrupt header (impossible sizes or element type '" +
                         h.kv_dtype + "')");
    if (file_size < layout.total)
      throw RequestError("KV file '" + path + "' is truncated: " + std::to_string(file_size) +
                         " bytes where its header describes " + std::to_string(layout.total) +
                         " (the save was interrupted or the file was cut); save the sequence again");
    if (file_size > layout.total)
      throw RequestError("KV file '" + path + "' is corrupt: " + std::to_string(file_size - layout.total) +
                         " bytes follow the end its header describes");

    // The front (header, tokens, logits, padding) is checksummed as written.
    std::string front(layout.kv_offset, '\0');
    std::memcpy(&front[0], prologue, kPrologueBytes);
    std::memcpy(&front[kPrologueBytes], header_bytes.data(), header_size);
    read_exactly(fd, &front[layout.tokens_offset], layout.kv_offset - layout.tokens_offset, path, "tokens");
    char end[kEndBytes];
    if (platform::pread(fd, end, kEndBytes, layout.kv_offset + layout.kv_bytes) != static_cast<int64_t>(kEndBytes))
      throw RequestError("KV file '" + path + "' is truncated: it ends before its end marker");
    uint64_t checksum = 0, kv_bytes = 0;
    std::memcpy(&checksum, end + 8, 8);
    std::memcpy(&kv_bytes, end + 16, 8);
    if (std::memcmp(end, kEndMagic, 8) != 0 || kv_bytes != layout.kv_bytes)
      throw RequestError("KV file '" + path + "' is corrupt: its end marker is missing or wrong");
    if (checksum != fnv1a(front.data(), front.size()))
      throw RequestError("KV file '" + path + "' is corrupt: the checksum of its header and tokens does not match");
    tokens_.resize(static_cast<size_t>(h.token_count));
    logits_.resize(static_cast<size_t>(h.logits_count));
    std::memcpy(tokens_.data(), &front[layout.tokens_offset], tokens_.size() * 4);
    std::memcpy(logits_.data(), &front[layout.tokens_offset + tokens_.size() * 4], logits_.size() * 4);
    kv_bytes_ = layout.kv_bytes;
    platform::advise_sequential(fd, layout.kv_offset, layout.kv_bytes);
    source_ = std::make_unique<Source>(fd, path, layout.kv_offset, layout.kv_bytes);
  } catch (...) {
    platform::close(fd);
    throw;
  }
}

KvFileReader::~KvFileReader() = default;

KvByteSource& KvFileReader::kv() { return *source_; }

uint64_t KvFileReader::kv_bytes_read() const { return source_->bytes_read(); }

}  // namespace tidal
