// The engine's file-system layer (core/platform_io) on this platform: statuses, listing,
// sequential and positioned I/O, replace, mappings and their errors, with file names that are
// not ASCII. Under Windows (scripts/test-cross.mjs runs this under Wine) also the UTF-16 form of
// paths, long ones included.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/platform_io.h"
#include "harness.h"
#include "safetensors_writer.h"

using namespace tidal;
using tidal_test::TempDir;

namespace {

std::vector<uint8_t> bytes_of(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = uint8_t(seed + i * 37 + (i >> 7));
  return out;
}

}  // namespace

TIDAL_TEST(platform_status_present_and_listing) {
  TempDir dir;
  const std::string file = dir.file("ünï 模型.bin");
  tidal_test::write_bytes(file, bytes_of(1234, 3));
  tidal_test::write_bytes(dir.file("b.txt"), bytes_of(5, 1));
  CHECK_EQ(int(platform::status(file).kind), int(platform::FileKind::kRegular));
  CHECK_EQ(platform::status(file).size, uint64_t(1234));
  CHECK_EQ(int(platform::status(dir.path()).kind), int(platform::FileKind::kDirectory));
  CHECK_EQ(int(platform::status(dir.path() + "/").kind), int(platform::FileKind::kDirectory));
  CHECK_EQ(int(platform::status(dir.file("missing")).kind), int(platform::FileKind::kMissing));
  CHECK_EQ(int(platform::status("").kind), int(platform::FileKind::kMissing));
  CHECK(platform::present(file));
  CHECK(!platform::present(dir.file("missing")));
  std::vector<std::string> names = platform::list_folder(dir.path());
  std::sort(names.begin(), names.end());
  CHECK(names == (std::vector<std::string>{"b.txt", "ünï 模型.bin"}));
  CHECK(platform::list_folder(dir.file("missing")).empty());
}

TIDAL_TEST(platform_sequential_and_positioned_io_and_replace) {
  TempDir dir;
  const std::string path = dir.file("kv ünï.tmp"), target = dir.file("kv ünï.kv");
  const std::vector<uint8_t> front = bytes_of(1000, 7), tail = bytes_of(3000, 11);
  int fd = platform::create_write(path);
  CHECK(fd >= 0);
  CHECK_EQ(platform::write(fd, front.data(), front.size()), int64_t(front.size()));
  CHECK_EQ(platform::pwrite(fd, tail.data(), tail.size(), 5000), int64_t(tail.size()));  // a hole before it
  CHECK_EQ(platform::close(fd), 0);
  CHECK_EQ(platform::status(path).size, uint64_t(8000));

  tidal_test::write_bytes(target, bytes_of(10, 99));  // an older file the replace takes over
  CHECK_EQ(platform::replace_file(path, target), std::string());
  CHECK(!platform::present(path));
  fd = platform::open_read(target);
  CHECK(fd >= 0);
  platform::FileStatus info;
  CHECK(platform::status(fd, info));
  CHECK_EQ(info.size, uint64_t(8000));
  std::vector<uint8_t> got(1000);
  CHECK_EQ(platform::read(fd, got.data(), got.size()), int64_t(1000));
  CHECK(got == front);
  std::vector<uint8_t> at(3000);
  CHECK_EQ(platform::pread(fd, at.data(), at.size(), 5000), int64_t(3000));
  CHECK(at == tail);
  std::vector<uint8_t> hole(16, 0xAB);
  CHECK_EQ(platform::pread(fd, hole.data(), hole.size(), 2000), int64_t(16));
  CHECK(std::all_of(hole.begin(), hole.end(), [](uint8_t b) { return b == 0; }));
  CHECK_EQ(platform::pread(fd, hole.data(), hole.size(), 8000), int64_t(0));  // at the end
  CHECK_EQ(platform::close(fd), 0);

  CHECK(platform::open_read(dir.file("missing")) < 0);
  CHECK(!platform::error_text().empty());
  const std::string reason = platform::replace_file(dir.file("missing"), target);
  CHECK(!reason.empty());
  CHECK(platform::present(target));  // a failed replace leaves the target
}

TIDAL_TEST(platform_mappings_and_their_errors) {
  TempDir dir;
  const std::vector<uint8_t> data = bytes_of(70000, 5);
  tidal_test::write_bytes(dir.file("w 模型.bin"), data);
  tidal_test::write_bytes(dir.file("empty"), {});
  platform::Mapping mapping;
  std::string error;
  bool oom = true, not_regular = true;
  CHECK(platform::map_file(dir.file("w 模型.bin"), mapping, error, oom, not_regular));
  CHECK(!oom && !not_regular);
  CHECK_EQ(mapping.size, uint64_t(data.size()));
  CHECK(mapping.address != nullptr && std::memcmp(mapping.address, data.data(), data.size()) == 0);
  platform::unmap_file(mapping);
  CHECK(mapping.address == nullptr && mapping.size == 0);

  CHECK(platform::map_file(dir.file("empty"), mapping, error, oom, not_regular));
  CHECK(mapping.address == nullptr && mapping.size == 0);

  CHECK(!platform::map_file(dir.path(), mapping, error, oom, not_regular));
  CHECK(not_regular && error.find("is not a regular file") != std::string::npos);
  CHECK(!platform::map_file(dir.file("missing"), mapping, error, oom, not_regular));
  CHECK(!not_regular && !oom && error.find("cannot open '" + dir.file("missing") + "'") == 0);

  std::ifstream in = platform::open_input_stream(dir.file("w 模型.bin"));
  char head[4] = {};
  in.read(head, 4);
  CHECK(in.gcount() == 4 && std::memcmp(head, data.data(), 4) == 0);
}

#ifdef _WIN32
TIDAL_TEST(platform_windows_paths_are_utf16_with_long_ones_prefixed) {
  CHECK(platform::windows_path("C:/models/qwen/") == L"C:/models/qwen");
  CHECK(platform::windows_path("C:\\") == L"C:\\");
  CHECK(platform::windows_path("modèles/模型") == L"mod\u00e8les/\u6a21\u578b");
  const std::string deep = "C:/models/" + std::string(300, 'x') + "/config.json";
  const std::wstring wide = platform::windows_path(deep);
  CHECK(wide.rfind(L"\\\\?\\C:\\models\\", 0) == 0 && wide.find(L'/') == std::wstring::npos);
  const std::wstring unc = platform::windows_path("\\\\server\\share\\" + std::string(300, 'y'));
  CHECK(unc.rfind(L"\\\\?\\UNC\\server\\share\\", 0) == 0);
  CHECK(platform::windows_path("relative/" + std::string(300, 'z')).rfind(L"relative/", 0) == 0);
  CHECK(platform::windows_path("\\\\?\\C:\\" + std::string(300, 'w')).rfind(L"\\\\?\\C:\\w", 0) == 0);
}
#endif
