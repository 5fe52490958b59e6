#include "model/tensor_names.h"

#include <cstdint>

namespace tidal {

bool is_digits(const std::string& text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
}

int64_t layer_of(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  const size_t dot = name.find('.', prefix.size());
  const std::string digits = name.substr(prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
  if (!is_digits(digits)) return -1;
  return digits.size() > 18 ? INT64_MAX : std::stoll(digits);
}

std::string layer_pattern(const std::string& stored_name) {
  size_t begin = 0;
  while (begin < stored_name.size()) {
    const size_t dot = stored_name.find('.', begin);
    if (dot == std::string::npos) break;
    if (is_digits(stored_name.substr(begin, dot - begin))) return stored_name.substr(0, dot) + ".*";
    begin = dot + 1;
  }
  return stored_name;
}

}  // namespace tidal
