// Command-line options of the form `--name value` and `--flag`. Commands take the options
// they know; whatever is left over is reported as an error naming it.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace tidal::cli {

// A mistake on the command line; main() prints it with the command's usage.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Arguments {
 public:
  // argv after the command name. `flags` are the options that take no value.
  Arguments(const std::vector<std::string>& argv, const std::vector<std::string>& flags);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  bool flag(const std::string& name);
  std::string text(const std::string& name, const std::string& fallback);
  std::string required_text(const std::string& name);
  // Numbers must lie in [lo, hi]; anything else (text, overflow, NaN, infinity, a value
  // outside the range) throws UsageError naming the option and the range.
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi);
  double number(const std::string& name, double fallback, double lo, double hi);
  // "1,2,3" -> {1, 2, 3}, each in [lo, hi]
  std::vector<int64_t> integer_list(const std::string& name, const std::vector<int64_t>& fallback, int64_t lo,
                                    int64_t hi);
  std::vector<std::string> text_list(const std::string& name, const std::vector<std::string>& fallback);
  // Throws UsageError naming the first option no command took.
  void reject_unused() const;

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
};

// Comma-separated integers, each in [lo, hi]; throws UsageError naming `option`.
std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& option, int64_t lo, int64_t hi);

}  // namespace tidal::cli
