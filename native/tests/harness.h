// A small test harness: TIDAL_TEST registers a function, CHECK* record failures with the
// file and line, and main() runs every test (or those whose name contains argv[1]).
#pragma once
#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tidal_test {

struct TestCase {
  std::string name;
  std::function<void()> body;
};

std::vector<TestCase>& registry();
void record_failure(const char* file, int line, const std::string& message);

struct Registrar {
  Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

// Directory holding committed fixtures (models, recorded logits).
std::string fixtures_dir();

}  // namespace tidal_test

#define TIDAL_CONCAT_INNER(a, b) a##b
#define TIDAL_CONCAT(a, b) TIDAL_CONCAT_INNER(a, b)
#define TIDAL_TEST(name)                                                      \
  static void name();                                                         \
  static ::tidal_test::Registrar TIDAL_CONCAT(registrar_, name)(#name, name); \
  static void name()

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (!(cond)) ::tidal_test::record_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                             \
  do {                                                                             \
    auto tidal_a_ = (a);                                                           \
    auto tidal_b_ = (b);                                                           \
    if (!(tidal_a_ == tidal_b_)) {                                                 \
      std::ostringstream tidal_os_;                                                \
      tidal_os_ << "CHECK_EQ(" #a ", " #b "): " << tidal_a_ << " != " << tidal_b_; \
      ::tidal_test::record_failure(__FILE__, __LINE__, tidal_os_.str());           \
    }                                                                              \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                    \
  do {                                                                                                           \
    double tidal_a_ = (a), tidal_b_ = (b);                                                                       \
    if (!(std::fabs(tidal_a_ - tidal_b_) <= (tol))) {                                                            \
      std::ostringstream tidal_os_;                                                                              \
      tidal_os_ << "CHECK_NEAR(" #a ", " #b "): " << tidal_a_ << " vs " << tidal_b_ << " (tol " << (tol) << ")"; \
      ::tidal_test::record_failure(__FILE__, __LINE__, tidal_os_.str());                                         \
    }                                                                                                            \
  } while (0)

// Checks that a string contains `fragment`.
#define CHECK_CONTAINS(text, fragment)                                                                     \
  do {                                                                                                     \
    const std::string tidal_text_ = (text);                                                                \
    if (tidal_text_.find(fragment) == std::string::npos)                                                   \
      ::tidal_test::record_failure(__FILE__, __LINE__,                                                     \
                                   std::string("expected '") + (fragment) + "' in '" + tidal_text_ + "'"); \
  } while (0)

// Runs stmt and checks that it throws an exception whose what() contains `fragment`.
#define CHECK_THROWS_WITH(stmt, fragment)                                                                    \
  do {                                                                                                       \
    bool tidal_threw_ = false;                                                                               \
    try {                                                                                                    \
      stmt;                                                                                                  \
    } catch (const std::exception& tidal_e_) {                                                               \
      tidal_threw_ = true;                                                                                   \
      if (std::string(tidal_e_.what()).find(fragment) == std::string::npos)                                  \
        ::tidal_test::record_failure(__FILE__, __LINE__,                                                     \
                                     std::string("message lacks '") + (fragment) + "': " + tidal_e_.what()); \
    }                                                                                                        \
    if (!tidal_threw_) ::tidal_test::record_failure(__FILE__, __LINE__, "expected an exception: " #stmt);    \
  } while (0)
