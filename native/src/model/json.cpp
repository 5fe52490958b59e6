#include "model/json.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace tidal::json {

namespace {

// std::from_chars for a double, where the C++ library has it. Emscripten's libc++ (3.1.6, the
// WebAssembly build) lacks the floating-point overloads; there the same contract comes from
// strtod, which in its C library (musl) reads '.' as the decimal point in every locale. The
// caller has checked the JSON number grammar already, so strtod sees nothing else.
std::from_chars_result parse_double(const char* first, const char* last, double& out) {
#ifdef __EMSCRIPTEN__
  const std::string copy(first, last);  // strtod needs a terminated string
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(copy.c_str(), &end);
  std::from_chars_result result{first + (end - copy.c_str()), std::errc()};
  if (end == copy.c_str()) {
    result = {first, std::errc::invalid_argument};
  } else if (errno == ERANGE && (value == 0 || std::isinf(value))) {
    result.ec = std::errc::result_out_of_range;  // out is left alone, as from_chars does
  } else {
    out = value;  // a subnormal result (ERANGE too) is kept, as from_chars does
  }
  return result;
#else
  return std::from_chars(first, last, out);
#endif
}

}  // namespace

const char* type_name(Type type) {
  switch (type) {
    case Type::Null:
      return "null";
    case Type::Bool:
      return "boolean";
    case Type::Int:
      return "integer";
    case Type::Double:
      return "number";
    case Type::String:
      return "string";
    case Type::Array:
      return "array";
    case Type::Object:
      return "object";
  }
  return "?";
}

ParseError::ParseError(const std::string& message, size_t byte_offset) : ModelError(message), offset(byte_offset) {}

// ---- Value accessors ---------------------------------------------------------------

static std::string quoted_excerpt(const std::string& text) {
  // Keeps error messages short even for huge strings.
  constexpr size_t kMax = 60;
  if (text.size() <= kMax) return "\"" + text + "\"";
  return "\"" + text.substr(0, kMax) + "...\"";
}

std::string Value::describe() const {
  switch (type_) {
    case Type::Null:
      return "null";
    case Type::Bool:
      return scalar_.boolean ? "true" : "false";
    case Type::Int:
      return "integer " + std::to_string(scalar_.integer);
    case Type::Double: {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "number %.17g", scalar_.number);
      return buffer;
    }
    case Type::String:
      return "string " + quoted_excerpt(string_);
    case Type::Array:
      return "an array";
    case Type::Object:
      return "an object";
  }
  return "?";
}

[[noreturn]] static void wrong_type(const char* wanted, const Value& found) {
  throw ModelError(std::string("expected ") + wanted + ", found " + found.describe());
}

bool Value::as_bool() const {
  if (type_ != Type::Bool) wrong_type("a boolean", *this);
  return scalar_.boolean;
}

int64_t Value::as_int() const {
  if (type_ == Type::Int) return scalar_.integer;
  if (type_ == Type::Double) {
    // Doubles in [-2^63, 2^63) with no fractional part have an exact int64 value.
    double d = scalar_.number;
    if (std::isfinite(d) && d == std::floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
      return static_cast<int64_t>(d);
  }
  wrong_type("an integer", *this);
}

double Value::as_double() const {
  if (type_ == Type::Int) return static_cast<double>(scalar_.integer);
  if (type_ == Type::Double) return scalar_.number;
  wrong_type("a number", *this);
}

const std::string& Value::as_string() const {
  if (type_ != Type::String) wrong_type("a string", *this);
  return string_;
}

const std::vector<Value>& Value::items() const {
  if (type_ != Type::Array && type_ != Type::Object) wrong_type("an array or object", *this);
  return items_;
}

const std::string& Value::key(size_t i) const {
  if (type_ != Type::Object) wrong_type("an object", *this);
  return keys_.at(i);
}

const Value* Value::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (size_t i = 0; i < keys_.size(); ++i)
    if (keys_[i] == key) return &items_[i];
  return nullptr;
}

// ---- Parser ------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view text, const ParseOptions& options) : text_(text), options_(options) {}

  Value parse_document() {
    // RFC 8259 lets a parser ignore a leading byte order mark.
    if (text_.size() >= 3 && std::memcmp(text_.data(), "\xEF\xBB\xBF", 3) == 0) pos_ = 3;
    skip_whitespace();
    Value root = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("end of input after the top-level value");
    return root;
  }

 private:
  std::string_view text_;
  ParseOptions options_;
  size_t pos_ = 0;
  size_t values_ = 0;

  [[noreturn]] void fail_at(size_t offset, const std::string& message) const {
    // Line and column are computed only here, once, so the happy path stays linear.
    size_t line = 1, column = 1;
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw ParseError("invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) + " (byte " +
                         std::to_string(offset) + "): " + message,
                     offset);
  }

  // "expected X, found Y" at the current position.
  [[noreturn]] void fail(const std::string& expected) const {
    fail_at(pos_, "expected " + expected + ", found " + found_here());
  }

  std::string found_here() const {
    if (pos_ >= text_.size()) return "end of input";
    unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "byte 0x%02x", c);
    return buffer;
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  void skip_whitespace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void count_value() {
    if (++values_ > options_.max_values)
      fail_at(pos_, "document holds more than " + std::to_string(options_.max_values) + " values");
  }

  Value parse_value(int depth) {
    if (at_end()) fail("a value");
    count_value();
    switch (peek()) {
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_array(depth + 1);
      case '"': {
        Value v;
        v.type_ = Type::String;
        parse_string(v.string_);
        return v;
      }
      case 't':
        return parse_literal("true", Type::Bool, true);
      case 'f':
        return parse_literal("false", Type::Bool, false);
      case 'n':
        return parse_literal("null", Type::Null, false);
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail("a value (object, array, string, number, true, false or null)");
    }
  }

  Value parse_literal(std::string_view word, Type type, bool flag) {
    if (text_.substr(pos_, word.size()) != word) fail(std::string("'") + std::string(word) + "'");
    pos_ += word.size();
    Value v;
    v.type_ = type;
    if (type == Type::Bool) v.scalar_.boolean = flag;
    return v;
  }

  void check_depth(int depth) {
    if (depth > options_.max_depth)
      fail_at(pos_, "arrays/objects nested deeper than " + std::to_string(options_.max_depth) + " levels");
  }

  Value parse_array(int depth) {
    check_depth(depth);
    Value v;
    v.type_ = Type::Array;
    ++pos_;  // '['
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return v;
    }
    for (;;) {
      skip_whitespace();
      v.items_.push_back(parse_value(depth));
      skip_whitespace();
      if (at_end()) fail("',' or ']' after an array element");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      fail("',' or ']' after an array element");
    }
  }

  Value parse_object(int depth) {
    check_depth(depth);
    size_t start = pos_;
    Value v;
    v.type_ = Type::Object;
    ++pos_;  // '{'
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return v;
    }
    for (;;) {
      skip_whitespace();
      if (at_end() || peek() != '"') fail("a string key");
      std::string key;
      parse_string(key);
      skip_whitespace();
      if (at_end() || peek() != ':') fail("':' after an object key");
      ++pos_;
      skip_whitespace();
      v.keys_.push_back(std::move(key));
      v.items_.push_back(parse_value(depth));
      skip_whitespace();
      if (at_end()) fail("',' or '}' after an object member");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      fail("',' or '}' after an object member");
    }
    reject_duplicate_keys(v, start);
    return v;
  }

  void reject_duplicate_keys(const Value& object, size_t start) const {
    const auto& keys = object.keys_;
    if (keys.size() < 2) return;
    if (keys.size() <= 8) {  // small objects: pairwise is cheaper than sorting
      for (size_t i = 0; i < keys.size(); ++i)
        for (size_t j = i + 1; j < keys.size(); ++j)
          if (keys[i] == keys[j]) fail_at(start, "duplicate key " + quoted_excerpt(keys[i]) + " in object");
      return;
    }
    std::vector<const std::string*> sorted;
    sorted.reserve(keys.size());
    for (const auto& k : keys) sorted.push_back(&k);
    std::sort(sorted.begin(), sorted.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    for (size_t i = 1; i < sorted.size(); ++i)
      if (*sorted[i] == *sorted[i - 1]) fail_at(start, "duplicate key " + quoted_excerpt(*sorted[i]) + " in object");
  }

  // ---- strings ----

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  uint32_t parse_hex4() {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (at_end()) fail("a hex digit in a \\u escape");
      char c = text_[pos_];
      uint32_t digit;
      if (c >= '0' && c <= '9')
        digit = c - '0';
      else if (c >= 'a' && c <= 'f')
        digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        digit = c - 'A' + 10;
      else
        fail("a hex digit in a \\u escape");
      value = value * 16 + digit;
      ++pos_;
    }
    return value;
  }

  // Length of the well-formed UTF-8 sequence starting at pos_ (lead byte >= 0x80), or 0.
  // Rejects overlong forms, UTF-16 surrogates (U+D800..DFFF) and code points past U+10FFFF.
  size_t utf8_sequence_length() const {
    auto byte = [&](size_t i) -> unsigned {
      return pos_ + i < text_.size() ? static_cast<unsigned char>(text_[pos_ + i]) : 0u;
    };
    auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
      unsigned b = byte(i);
      return b >= lo && b <= hi;
    };
    unsigned lead = byte(0);
    if (lead >= 0xC2 && lead <= 0xDF) return cont(1) ? 2 : 0;
    if (lead == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
    if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (lead == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    if (lead == 0xF0) return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
    if (lead >= 0xF1 && lead <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (lead == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
  }

  void parse_string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      // Copy the run of plain ASCII characters in one go.
      size_t run = pos_;
      while (run < text_.size()) {
        unsigned char c = static_cast<unsigned char>(text_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      out.append(text_.data() + pos_, run - pos_);
      pos_ = run;
      if (at_end()) fail_at(pos_, "expected '\"' to close the string, found end of input");
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return;
      }
      if (c < 0x20)
        fail_at(pos_, "control character inside a string must be escaped (found byte " + std::to_string(c) + ")");
      if (c >= 0x80) {
        size_t n = utf8_sequence_length();
        if (n == 0) fail_at(pos_, "invalid UTF-8 inside a string");
        out.append(text_.data() + pos_, n);
        pos_ += n;
        continue;
      }
      // Backslash escape.
      ++pos_;
      if (at_end()) fail("an escape character after '\\'");
      char e = peek();
      ++pos_;
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          size_t escape_start = pos_ - 2;
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at(escape_start, "unpaired low surrogate \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by \u and a low surrogate; together they
            // encode U+10000 + ((high - 0xD800) << 10 | (low - 0xDC00)).
            if (text_.substr(pos_, 2) != "\\u")
              fail_at(escape_start, "high surrogate \\u escape not followed by a low surrogate");
            pos_ += 2;
            uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF)
              fail_at(escape_start, "high surrogate \\u escape not followed by a low surrogate");
            cp = 0x10000 + (((cp - 0xD800) << 10) | (low - 0xDC00));
          }
          append_utf8(out, cp);
          break;
        }
        default:
          pos_ -= 1;
          fail("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
      }
    }
  }

  // ---- numbers ----

  // Grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  Value parse_number() {
    size_t start = pos_;
    bool negative = false;
    if (peek() == '-') {
      negative = true;
      ++pos_;
    }
    if (at_end() || !is_digit(peek())) fail("a digit");
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && is_digit(peek())) fail_at(pos_ - 1, "numbers must not have leading zeros");
    } else {
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    bool integral = true;
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      if (at_end() || !is_digit(peek())) fail("a digit after the decimal point");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) fail("a digit in the exponent");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    Value v;
    // "-0" stays a double so that its sign survives.
    if (integral && !(negative && pos_ - start == 2 && first[1] == '0')) {
      int64_t parsed = 0;
      auto [ptr, ec] = std::from_chars(first, last, parsed);
      if (ec == std::errc() && ptr == last) {
        v.type_ = Type::Int;
        v.scalar_.integer = parsed;
        return v;
      }
      // Too large for int64: fall through to a double.
    }
    double parsed = 0;
    auto [ptr, ec] = parse_double(first, last, parsed);
    if (ec == std::errc::result_out_of_range) {
      // Underflow to zero is harmless; overflow to infinity is not representable in JSON.
      bool exponent_negative = false;
      for (const char* p = first; p != last; ++p)
        if ((*p == 'e' || *p == 'E') && p + 1 != last && p[1] == '-') exponent_negative = true;
      if (!exponent_negative) fail_at(start, "number out of range of a double");
      parsed = negative ? -0.0 : 0.0;
    } else if (ec != std::errc() || ptr != last) {
      fail_at(start, "a malformed number");
    }
    v.type_ = Type::Double;
    v.scalar_.number = parsed;
    return v;
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
};

Value parse(std::string_view text, const ParseOptions& options) { return Parser(text, options).parse_document(); }

}  // namespace tidal::json
