#include <algorithm>

#include "harness.h"
#include "tidal/version.h"

TIDAL_TEST(version_is_semver_and_cpu_is_always_compiled) {
  auto version = tidal::engine_version();
  CHECK(!version.empty());
  CHECK(std::count(version.begin(), version.end(), '.') == 2);
  auto backends = tidal::compiled_backends();
  CHECK(!backends.empty());
  CHECK_EQ(backends.back(), std::string("cpu"));
}
