// A small, strict JSON reader (RFC 8259) for the files a model folder holds: config.json,
// safetensors headers, shard indexes, tokenizer files. Input is untrusted, so the parser
// bounds nesting depth and the number of values, validates UTF-8, rejects duplicate object
// keys, and runs in time linear in the input (object key checks are n log n per object).
//
// Numbers: a literal without fraction or exponent that fits in int64 is kept exactly as an
// integer; every other number is a double. Errors are tidal::json::ParseError (a
// tidal::ModelError) carrying the byte offset and what the parser expected there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/error.h"

namespace tidal::json {

enum class Type : uint8_t { Null, Bool, Int, Double, String, Array, Object };

// "null", "boolean", "integer", "number", "string", "array", "object".
const char* type_name(Type type);

struct ParseError : ModelError {
  ParseError(const std::string& message, size_t byte_offset);
  size_t offset;  // byte offset into the input where the problem was found
};

struct ParseOptions {
  int max_depth = 64;                   // arrays/objects nested deeper are rejected
  size_t max_values = size_t(1) << 22;  // bounds memory for hostile inputs (~100 B per value)
};

class Value {
 public:
  Value() = default;  // null

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_int() const { return type_ == Type::Int; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Double; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed accessors throw tidal::ModelError naming the type found when the type differs.
  bool as_bool() const;
  int64_t as_int() const;    // integers, and doubles with an exact int64 value
  double as_double() const;  // integers (converted) and doubles
  const std::string& as_string() const;

  // Arrays: the elements. Objects: the member values, in document order (keys via key(i)).
  const std::vector<Value>& items() const;
  size_t size() const { return items_.size(); }
  const Value& operator[](size_t i) const { return items_.at(i); }
  const std::string& key(size_t i) const;  // objects only

  // Objects: the member with this key, or nullptr (also for non-objects). Linear scan:
  // meant for small objects; iterate with key(i)/items() over large ones.
  const Value* find(std::string_view key) const;

  // A short description for error messages: `string "abc"`, `integer 3`, `an object`.
  std::string describe() const;

 private:
  friend class Parser;
  Type type_ = Type::Null;
  union {
    bool boolean;
    int64_t integer;
    double number;
  } scalar_{};
  std::string string_;
  std::vector<Value> items_;       // array elements or object member values
  std::vector<std::string> keys_;  // object member keys, parallel to items_
};

// Parses a complete document (one value, surrounded only by whitespace; a leading UTF-8
// byte order mark is skipped). Throws ParseError.
Value parse(std::string_view text, const ParseOptions& options = {});

}  // namespace tidal::json
