#include "cli_arguments.h"

#include <algorithm>
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

int64_t Arguments::integer(const std::string& name, int64_t fallback) {
  const std::string value = text(name, "");
  if (!has(name)) return fallback;
  char* end = nullptr;
  const long long parsed = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0') throw UsageError("option " + name + " expects an integer, got '" + value + "'");
  return parsed;
}

double Arguments::number(const std::string& name, double fallback) {
  const std::string value = text(name, "");
  if (!has(name)) return fallback;
  char* end = nullptr;
  const double parsed = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0') throw UsageError("option " + name + " expects a number, got '" + value + "'");
  return parsed;
}

std::vector<int64_t> parse_integer_list(const std::string& text, const std::string& option) {
  std::vector<int64_t> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    char* end = nullptr;
    const long long parsed = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0')
      throw UsageError("option " + option + " expects comma-separated integers, got '" + text + "'");
    out.push_back(parsed);
  }
  return out;
}

std::vector<int64_t> Arguments::integer_list(const std::string& name, const std::vector<int64_t>& fallback) {
  const std::string value = text(name, "");
  return has(name) ? parse_integer_list(value, name) : fallback;
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
