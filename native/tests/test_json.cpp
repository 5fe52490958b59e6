#include <cstdint>
#include <random>
#include <string>

#include "harness.h"
#include "model/json.h"
#include "tidal/error.h"

using tidal::json::parse;
using tidal::json::Type;
using tidal::json::Value;

TIDAL_TEST(json_scalars_keep_integers_exact) {
  CHECK(parse("null").is_null());
  CHECK_EQ(parse("true").as_bool(), true);
  CHECK_EQ(parse(" false ").as_bool(), false);
  // 2^53 + 1 is not representable as a double; it must survive as an integer.
  Value big = parse("9007199254740993");
  CHECK(big.type() == Type::Int);
  CHECK_EQ(big.as_int(), int64_t(9007199254740993));
  CHECK_EQ(parse("9223372036854775807").as_int(), INT64_MAX);
  CHECK_EQ(parse("-9223372036854775808").as_int(), INT64_MIN);
  // One past int64: becomes a double.
  Value past = parse("9223372036854775808");
  CHECK(past.type() == Type::Double);
  CHECK_EQ(past.as_double(), 9223372036854775808.0);
  CHECK(parse("1.5").type() == Type::Double);
  CHECK_EQ(parse("1.5").as_double(), 1.5);
  CHECK_EQ(parse("-2.5e-3").as_double(), -0.0025);
  CHECK_EQ(parse("1E3").as_double(), 1000.0);
  CHECK_EQ(parse("1e+2").as_double(), 100.0);
  CHECK_EQ(parse("0").as_int(), 0);
  // "-0" keeps its sign as a double.
  Value negative_zero = parse("-0");
  CHECK(negative_zero.type() == Type::Double);
  CHECK(std::signbit(negative_zero.as_double()));
  // Underflow rounds to zero; overflow is an error.
  CHECK_EQ(parse("1e-400").as_double(), 0.0);
  CHECK_THROWS_WITH(parse("1e400"), "number out of range");
  // Integral doubles convert to integers on request; fractions do not.
  CHECK_EQ(parse("4096.0").as_int(), 4096);
  CHECK_EQ(parse("1e3").as_int(), 1000);
  CHECK_THROWS_WITH(parse("1.5").as_int(), "expected an integer, found number 1.5");
  CHECK_THROWS_WITH(parse("\"7\"").as_int(), "expected an integer, found string \"7\"");
  CHECK_EQ(parse("7").as_double(), 7.0);
}

TIDAL_TEST(json_strings_decode_escapes_and_utf8) {
  CHECK_EQ(parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string(), std::string("a\"b\\c/d\b\f\n\r\t"));
  CHECK_EQ(parse(R"("\u0041\u00e9\u20AC")").as_string(), std::string("A\xC3\xA9\xE2\x82\xAC"));
  // U+1F600 as a surrogate pair: D83D DE00 -> F0 9F 98 80.
  CHECK_EQ(parse(R"("\ud83d\ude00")").as_string(), std::string("\xF0\x9F\x98\x80"));
  // U+10FFFF, the last code point: DBFF DFFF -> F4 8F BF BF.
  CHECK_EQ(parse(R"("\uDBFF\uDFFF")").as_string(), std::string("\xF4\x8F\xBF\xBF"));
  CHECK_EQ(parse(R"("\u0000")").as_string(), std::string(1, '\0'));
  // Raw UTF-8 passes through unchanged.
  CHECK_EQ(parse("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"").as_string(),
           std::string("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  CHECK_EQ(parse("\"\"").as_string(), std::string());
  // Leading byte order mark is skipped.
  CHECK_EQ(parse("\xEF\xBB\xBF[1]").size(), size_t(1));
}

TIDAL_TEST(json_objects_and_arrays_keep_document_order) {
  Value v = parse(R"({"b": [1, 2.5, "x", null, true, {}], "a": {"nested": {"deep": -7}}, "": 0})");
  CHECK(v.is_object());
  CHECK_EQ(v.size(), size_t(3));
  CHECK_EQ(v.key(0), std::string("b"));
  CHECK_EQ(v.key(1), std::string("a"));
  CHECK_EQ(v.key(2), std::string(""));
  const Value* b = v.find("b");
  CHECK(b && b->is_array());
  CHECK_EQ(b->size(), size_t(6));
  CHECK_EQ((*b)[0].as_int(), 1);
  CHECK_EQ((*b)[1].as_double(), 2.5);
  CHECK_EQ((*b)[2].as_string(), std::string("x"));
  CHECK((*b)[3].is_null());
  CHECK((*b)[4].as_bool());
  CHECK((*b)[5].is_object() && (*b)[5].size() == 0);
  CHECK_EQ(v.find("a")->find("nested")->find("deep")->as_int(), -7);
  CHECK(v.find("missing") == nullptr);
  CHECK(parse("[]").is_array() && parse("[]").size() == 0);
  CHECK(parse("[1]").find("x") == nullptr);
}

TIDAL_TEST(json_malformed_inputs_name_offset_and_expectation) {
  CHECK_THROWS_WITH(parse(""), "expected a value");
  CHECK_THROWS_WITH(parse("   "), "found end of input");
  CHECK_THROWS_WITH(parse("{\"a\":1,}"), "expected a string key, found '}'");
  CHECK_THROWS_WITH(parse("{\"a\" 1}"), "expected ':' after an object key");
  CHECK_THROWS_WITH(parse("{\"a\":1 \"b\":2}"), "expected ',' or '}' after an object member");
  CHECK_THROWS_WITH(parse("{1:2}"), "expected a string key");
  CHECK_THROWS_WITH(parse("[1,]"), "expected a value");
  CHECK_THROWS_WITH(parse("[1 2]"), "expected ',' or ']' after an array element");
  CHECK_THROWS_WITH(parse("[1"), "expected ',' or ']' after an array element, found end of input");
  CHECK_THROWS_WITH(parse("01"), "leading zeros");
  CHECK_THROWS_WITH(parse("1."), "a digit after the decimal point");
  CHECK_THROWS_WITH(parse("-"), "expected a digit");
  CHECK_THROWS_WITH(parse("1e"), "a digit in the exponent");
  CHECK_THROWS_WITH(parse("+1"), "expected a value");
  CHECK_THROWS_WITH(parse(".5"), "expected a value");
  CHECK_THROWS_WITH(parse("NaN"), "expected a value");
  CHECK_THROWS_WITH(parse("Infinity"), "expected a value");
  CHECK_THROWS_WITH(parse("tru"), "expected 'true'");
  CHECK_THROWS_WITH(parse("nul"), "expected 'null'");
  CHECK_THROWS_WITH(parse("1 2"), "expected end of input after the top-level value, found '2'");
  CHECK_THROWS_WITH(parse("\"abc"), "close the string, found end of input");
  CHECK_THROWS_WITH(parse("\"\\x\""), "a valid escape");
  CHECK_THROWS_WITH(parse("\"\\u12G4\""), "a hex digit");
  CHECK_THROWS_WITH(parse("\"\\u12\""), "a hex digit");
  CHECK_THROWS_WITH(parse("\"\\ud800\""), "high surrogate \\u escape not followed by a low surrogate");
  CHECK_THROWS_WITH(parse("\"\\ud800\\u0041\""), "not followed by a low surrogate");
  CHECK_THROWS_WITH(parse("\"\\udc00\""), "unpaired low surrogate");
  CHECK_THROWS_WITH(parse(std::string("\"a\x01\"")), "control character inside a string must be escaped");
  CHECK_THROWS_WITH(parse("\"a\nb\""), "control character");
  CHECK_THROWS_WITH(parse("\"\xC0\xAF\""), "invalid UTF-8");          // overlong '/'
  CHECK_THROWS_WITH(parse("\"\xED\xA0\x80\""), "invalid UTF-8");      // encoded surrogate
  CHECK_THROWS_WITH(parse("\"\xF4\x90\x80\x80\""), "invalid UTF-8");  // past U+10FFFF
  CHECK_THROWS_WITH(parse("\"\xE2\x82\""), "invalid UTF-8");          // truncated sequence
  CHECK_THROWS_WITH(parse("\"\x80\""), "invalid UTF-8");              // stray continuation byte
  CHECK_THROWS_WITH(parse("{\"a\":1,\"a\":2}"), "duplicate key \"a\"");
  CHECK_THROWS_WITH(
      parse("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k3\":9}"),
      "duplicate key \"k3\"");
  CHECK_THROWS_WITH(parse("\xEF\xBB"), "expected a value");
  CHECK_THROWS_WITH(parse(std::string("[1]\0", 4)), "expected end of input");

  // The error carries line, column and byte offset of the offending character.
  try {
    parse("[1,\n 2 x]");
    CHECK(false);
  } catch (const tidal::json::ParseError& e) {
    CHECK_EQ(e.offset, size_t(7));
    CHECK(std::string(e.what()).find("line 2, column 4 (byte 7)") != std::string::npos);
  }
  // ParseError is a ModelError, so callers can catch one type.
  bool caught_as_model_error = false;
  try {
    parse("{");
  } catch (const tidal::ModelError&) {
    caught_as_model_error = true;
  }
  CHECK(caught_as_model_error);
}

TIDAL_TEST(json_depth_and_size_limits) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  CHECK_EQ(parse(nested(64)).size(), size_t(1));
  CHECK_THROWS_WITH(parse(nested(65)), "nested deeper than 64 levels");
  // Far deeper than any stack could recurse: rejected at depth 65, not a crash.
  CHECK_THROWS_WITH(parse(std::string(1000000, '[')), "nested deeper than 64 levels");
  CHECK_THROWS_WITH(parse(std::string(100000, '{')), "a string key");
  tidal::json::ParseOptions shallow;
  shallow.max_depth = 2;
  CHECK_EQ(parse("[[1]]", shallow).size(), size_t(1));
  CHECK_THROWS_WITH(parse("[[[1]]]", shallow), "nested deeper than 2 levels");
  tidal::json::ParseOptions few;
  few.max_values = 4;
  CHECK_EQ(parse("[1,2,3]", few).size(), size_t(3));  // the array plus three numbers
  CHECK_THROWS_WITH(parse("[1,2,3,4]", few), "more than 4 values");
}

TIDAL_TEST(json_large_documents_parse_in_linear_time) {
  // 200k-member object (sorted duplicate check) and a 200k-element array.
  std::string object = "{";
  for (int i = 0; i < 200000; ++i) object += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  object += "}";
  Value v = parse(object);
  CHECK_EQ(v.size(), size_t(200000));
  CHECK_EQ(v.key(199999), std::string("k199999"));
  CHECK_EQ(v[123456].as_int(), 123456);
  std::string duplicated = object;
  duplicated.back() = ',';
  duplicated += "\"k77\":1}";
  CHECK_THROWS_WITH(parse(duplicated), "duplicate key \"k77\"");

  std::string long_string = "\"" + std::string(4 << 20, 'a') + "\\n\"";
  CHECK_EQ(parse(long_string).as_string().size(), size_t((4 << 20) + 1));
}

namespace {

const char* kFuzzSeedDocument = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0},
  "eos_token_id": [128001, 128008], "name": "caf\u00e9 \ud83d\ude00 \"q\" \\ \/",
  "nested": [[[[1, -2.5e-3, true, false, null]]]], "empty": {}, "utf8": "Ã©"
})";

}  // namespace

TIDAL_TEST(json_random_mutations_never_crash) {
  std::mt19937 rng(20241011);
  const std::string seed = kFuzzSeedDocument;
  CHECK(parse(seed).is_object());
  const char alphabet[] = "{}[]\":,\\u0123456789abcdefEe+-.tfnrl \n\xC3\xA9\xED\xF0\x80\xFF";
  int accepted = 0, rejected = 0;
  for (int round = 0; round < 5000; ++round) {
    std::string doc = seed;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !doc.empty(); ++e) {
      size_t at = rng() % doc.size();
      switch (rng() % 5) {
        case 0:
          doc[at] = static_cast<char>(rng() & 0xFF);
          break;  // random byte
        case 1:
          doc[at] = alphabet[rng() % (sizeof alphabet - 1)];
          break;  // syntax byte
        case 2:
          doc.erase(at, 1 + rng() % 3);
          break;  // delete
        case 3:
          doc.insert(at, 1, alphabet[rng() % (sizeof alphabet - 1)]);
          break;  // insert
        case 4:
          doc.resize(at);
          break;  // truncate
      }
    }
    try {
      parse(doc);
      ++accepted;
    } catch (const tidal::Error&) {
      ++rejected;
    } catch (const std::exception&) {
      CHECK(false);  // only tidal::Error may escape
      break;
    }
  }
  // Both outcomes must occur, or the mutations are not exercising the parser.
  CHECK(accepted > 50);
  CHECK(rejected > 2500);
}
