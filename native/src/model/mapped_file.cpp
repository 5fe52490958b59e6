#include "model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tidal/error.h"

namespace tidal {

namespace {

// Closes the descriptor on every path out of open(); the mapping outlives it.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::unique_ptr<MappedFile> MappedFile::open(const std::string& path) {
  FileDescriptor file;
  do {
    file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (file.fd < 0 && errno == EINTR);
  if (file.fd < 0) throw ModelError("cannot open '" + path + "': " + std::strerror(errno));

  struct stat info;
  if (::fstat(file.fd, &info) != 0) throw ModelError("cannot stat '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(info.st_mode)) throw ModelError("'" + path + "' is not a regular file");

  std::unique_ptr<MappedFile> mapped(new MappedFile());
  mapped->path_ = path;
  mapped->size_ = static_cast<size_t>(info.st_size);
  if (mapped->size_ == 0) return mapped;  // mmap rejects length 0; an empty file has no bytes to map

  void* address = ::mmap(nullptr, mapped->size_, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (address == MAP_FAILED) {
    int error = errno;
    mapped->size_ = 0;
    if (error == ENOMEM)
      throw OutOfMemoryError("cannot map '" + path + "' (" + std::to_string(info.st_size) +
                             " bytes): out of address space or memory map limit");
    throw ModelError("cannot map '" + path + "': " + std::strerror(error));
  }
  mapped->data_ = static_cast<const uint8_t*>(address);
  return mapped;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace tidal
