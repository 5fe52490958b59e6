#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "harness.h"

namespace tidal_test {

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

static int g_failures_in_test = 0;

void record_failure(const char* file, int line, const std::string& message) {
  ++g_failures_in_test;
  std::fprintf(stderr, "    %s:%d: %s\n", file, line, message.c_str());
}

std::string fixtures_dir() {
  if (const char* dir = std::getenv("TIDAL_FIXTURES_DIR")) return dir;
  return TIDAL_FIXTURES_DIR;
}

}  // namespace tidal_test

int main(int argc, char** argv) {
  using namespace tidal_test;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const auto& test : registry()) {
    if (filter && test.name.find(filter) == std::string::npos) continue;
    g_failures_in_test = 0;
    auto start = std::chrono::steady_clock::now();
    try {
      test.body();
    } catch (const std::exception& e) {
      record_failure(test.name.c_str(), 0, std::string("uncaught exception: ") + e.what());
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (g_failures_in_test == 0) {
      ++passed;
      std::printf("ok   %s (%.0f ms)\n", test.name.c_str(), ms);
    } else {
      ++failed;
      std::printf("FAIL %s (%.0f ms)\n", test.name.c_str(), ms);
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
