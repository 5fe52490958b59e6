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
  int64_t integer(const std::string& name, int64_t fallback);
  double number(const std::string& name, double fallback);
  // "1,2,3" -> {1, 2, 3}
  std::vector<int64_t> integer_list(const std::string& name, const std::vector<int64_t>& fallback);
  std::vector<std::string> text_list(const std::string& name, const std::vector<std::string>& fallback);
  // Throws UsageError naming the first option no command took.
  void reject_unused() const;

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
};

std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& option);

}  // namespace tidal::cli
