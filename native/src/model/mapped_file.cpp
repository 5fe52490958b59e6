#include "model/mapped_file.h"

#include "core/platform_io.h"
#include "tidal/error.h"

namespace tidal {

std::unique_ptr<MappedFile> MappedFile::open(const std::string& path) {
  platform::Mapping mapping;
  std::string reason;
  bool out_of_memory = false, not_regular = false;  // a folder or device gets its sentence in `reason`
  if (!platform::map_file(path, mapping, reason, out_of_memory, not_regular)) {
    if (out_of_memory) {
      const platform::FileStatus info = platform::status(path);
      throw OutOfMemoryError("cannot map '" + path + "' (" + std::to_string(info.size) +
                             " bytes): out of address space or memory map limit");
    }
    throw ModelError(reason);
  }
  std::unique_ptr<MappedFile> mapped(new MappedFile());
  mapped->path_ = path;
  mapped->data_ = mapping.address;
  mapped->size_ = static_cast<size_t>(mapping.size);
  mapped->handle_ = mapping.handle;
  return mapped;
}

MappedFile::~MappedFile() {
  platform::Mapping mapping;
  mapping.address = data_;
  mapping.size = size_;
  mapping.handle = handle_;
  platform::unmap_file(mapping);
}

}  // namespace tidal
