// The command line's numeric options (reliability issue, cause 15): `tidal generate` took
// --temperature -1, --seed -1 and --threads 5000, which the addon refuses. Every number is
// now read with a range; text, overflow, NaN, infinity and out-of-range values are usage
// errors naming the option and its range.
#include <string>
#include <vector>

#include "../cli/cli_arguments.h"
#include "harness.h"
#include "tidal/option_limits.h"

using tidal::cli::Arguments;
using tidal::cli::UsageError;

namespace {

Arguments arguments_of(const std::vector<std::string>& argv) { return Arguments(argv, {}); }

}  // namespace

TIDAL_TEST(cause15_cli_numbers_outside_their_range_are_usage_errors) {
  using namespace tidal::limits;
  {
    Arguments a = arguments_of({"--temperature", "-1"});
    CHECK_THROWS_WITH(a.number("--temperature", 0.0, 0.0, kMaxTemperature),
                      "option --temperature must be in [0, 100], got '-1'");
  }
  {
    Arguments a = arguments_of({"--seed", "-1"});
    CHECK_THROWS_WITH(a.integer("--seed", 0, 0, kMaxSeed), "option --seed must be in [0, 9007199254740991], got '-1'");
  }
  {
    Arguments a = arguments_of({"--threads=5000"});
    CHECK_THROWS_WITH(a.integer("--threads", 0, 0, kMaxThreads), "option --threads must be in [0, 1024], got '5000'");
  }
  {
    Arguments a = arguments_of({"--seed", "99999999999999999999"});  // past int64: no silent clamp
    CHECK_THROWS_WITH(a.integer("--seed", 0, 0, kMaxSeed), "must be in [0, 9007199254740991]");
  }
  for (const char* bad : {"nan", "inf", "-inf", "1e999"}) {
    Arguments a = arguments_of({"--top-p", bad});
    CHECK_THROWS_WITH(a.number("--top-p", 1.0, 0.0, 1.0),
                      "option --top-p must be in [0, 1], got '" + std::string(bad) + "'");
  }
  for (const char* bad : {"", "abc", "12abc", "1.5", "1e3", "0x10", " 7", "-", "+"}) {
    Arguments a = arguments_of({"--max-tokens", bad});
    CHECK_THROWS_WITH(a.integer("--max-tokens", 32, 0, kMaxNewTokens),
                      "option --max-tokens expects an integer in [0, 1048576], got '" + std::string(bad) + "'");
  }
  {
    Arguments a = arguments_of({"--stop-tokens", "2,-3"});
    CHECK_THROWS_WITH(a.integer_list("--stop-tokens", {}, 0, kMaxTokenId),
                      "option --stop-tokens must be in [0, 2147483647], got '-3'");
  }
  {
    Arguments a = arguments_of({"--selection-layers", "2,,4"});
    CHECK_THROWS_WITH(a.integer_list("--selection-layers", {}, 0, kMaxLayerIndex),
                      "option --selection-layers expects comma-separated integers in [0, 4095], got ''");
  }
  {
    Arguments a = arguments_of({"--budget", "0"});
    CHECK_THROWS_WITH(a.integer("--budget", 256, 1, kMaxTokenBudget),
                      "option --budget must be in [1, 16777216], got '0'");
  }
  // Each failure is a UsageError, which main() turns into exit code 2 with the usage line.
  bool usage_error = false;
  try {
    Arguments a = arguments_of({"--threads", "-2"});
    a.integer("--threads", 0, 0, kMaxThreads);
  } catch (const UsageError&) {
    usage_error = true;
  }
  CHECK(usage_error);
}

TIDAL_TEST(cause15_cli_numbers_inside_their_range_are_read) {
  using namespace tidal::limits;
  Arguments a = arguments_of({"--temperature", "0.7", "--seed", "+42", "--threads", "1024", "--top-p", "1",
                              "--stop-tokens", "0,2147483647", "--budget", "16777216"});
  CHECK_EQ(a.number("--temperature", 0.0, 0.0, kMaxTemperature), 0.7);
  CHECK_EQ(a.integer("--seed", 0, 0, kMaxSeed), int64_t(42));
  CHECK_EQ(a.integer("--threads", 0, 0, kMaxThreads), int64_t(1024));
  CHECK_EQ(a.number("--top-p", 1.0, 0.0, 1.0), 1.0);
  CHECK(a.integer_list("--stop-tokens", {}, 0, kMaxTokenId) == std::vector<int64_t>({0, 2147483647}));
  CHECK_EQ(a.integer("--budget", 256, 1, kMaxTokenBudget), int64_t(1) << 24);
  // Absent options keep their defaults.
  CHECK_EQ(a.integer("--max-tokens", 32, 0, kMaxNewTokens), int64_t(32));
  CHECK(a.integer_list("--selection-layers", {}, 0, kMaxLayerIndex).empty());
  a.reject_unused();
}
