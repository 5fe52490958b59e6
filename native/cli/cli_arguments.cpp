#include "cli_arguments.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace tidal::cli {

Arguments::Arguments(const std::vector<std::string>& argv, const std::vector<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "' (options start with --)");
    const size_t equals = arg.find('=');
    if (equals != std::string::npos) {
      values_[arg.substr(0, equals)] = arg.substr(equals + 1);
    } else if (std::find(flags.begin(), flags.end(), arg) != flags.end()) {
      values_[arg] = "";
    } else {
      if (i + 1 >= argv.size()) throw UsageError("option " + arg + " needs a value");
      values_[arg] = argv[++i];
    }
  }
}

bool Arguments::flag(const std::string& name) {
  used_[name] = true;
  return has(name);
}

std::string Arguments::text(const std::string& name, const std::string& fallback) {
  used_[name] = true;
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Arguments::required_text(const std::string& name) {
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) throw UsageError("missing option " + name);
  return it->second;
}

namespace {

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

// One integer in [lo, hi]: decimal digits with an optional sign, nothing else.
int64_t parse_integer(const std::string& text, const std::string& option, int64_t lo, int64_t hi,
                      const char* what = "an integer") {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  const size_t first_digit = !text.empty() && (text[0] == '-' || text[0] == '+') ? 1 : 0;
  const bool digits =
      text.size() > first_digit && text.find_first_not_of("0123456789", first_digit) == std::string::npos;
  if (!digits) throw UsageError("option " + option + " expects " + what + " in " + range + ", got '" + text + "'");
  errno = 0;
  const long long parsed = std::strtoll(text.c_str(), nullptr, 10);
  if (errno == ERANGE || parsed < lo || parsed > hi)
    throw UsageError("option " + option + " must be in " + range + ", got '" + text + "'");
  return parsed;
}

}  // namespace

int64_t Arguments::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) {
  const std::string value = text(name, "");
  if (!has(name)) return fallback;
  return parse_integer(value, name, lo, hi);
}

double Arguments::number(const std::string& name, double fallback, double lo, double hi) {
  const std::string value = text(name, "");
  if (!has(name)) return fallback;
  const std::string range = "[" + format_number(lo) + ", " + format_number(hi) + "]";
  char* end = nullptr;
  const double parsed = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || std::isspace(static_cast<unsigned char>(value[0])))
    throw UsageError("option " + name + " expects a number in " + range + ", got '" + value + "'");
  if (!std::isfinite(parsed) || parsed < lo || parsed > hi)
    throw UsageError("option " + name + " must be in " + range + ", got '" + value + "'");
  return parsed;
}

std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& option, int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ','))
    out.push_back(parse_integer(item, option, lo, hi, "comma-separated integers"));
  return out;
}

std::vector<int64_t> Arguments::integer_list(const std::string& name, const std::vector<int64_t>& fallback, int64_t lo,
                                             int64_t hi) {
  const std::string value = text(name, "");
  return has(name) ? parse_integer_list(value, name, lo, hi) : fallback;
}

std::vector<std::string> Arguments::text_list(const std::string& name, const std::vector<std::string>& fallback) {
  const std::string value = text(name, "");
  if (!has(name)) return fallback;
  std::vector<std::string> out;
  std::stringstream stream(value);
  std::string item;
  while (std::getline(stream, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void Arguments::reject_unused() const {
  for (const auto& entry : values_)
    if (!used_.count(entry.first)) throw UsageError("unknown option " + entry.first);
}

}  // namespace tidal::cli
