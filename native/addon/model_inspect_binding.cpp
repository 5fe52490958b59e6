#include "model_inspect_binding.h"

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "convert.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/model_inspect.h"

namespace tidal_addon {

namespace {

Napi::Array StringArray(Napi::Env env, const std::vector<std::string>& items) {
  Napi::Array out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) out.Set(i, Napi::String::New(env, items[i]));
  return out;
}

Napi::Object FromRope(Napi::Env env, const tidal::ModelConfig& c) {
  Napi::Object scaling = Napi::Object::New(env);
  scaling.Set("type", Napi::String::New(env, c.rope_scaling.type));
  scaling.Set("factor", Napi::Number::New(env, c.rope_scaling.factor));
  scaling.Set("lowFreqFactor", Napi::Number::New(env, c.rope_scaling.low_freq_factor));
  scaling.Set("highFreqFactor", Napi::Number::New(env, c.rope_scaling.high_freq_factor));
  scaling.Set("originalMaxPositions", Napi::Number::New(env, double(c.rope_scaling.original_max_position_embeddings)));
  Napi::Array frequencies = Napi::Array::New(env, c.rope_frequencies.size());
  for (size_t i = 0; i < c.rope_frequencies.size(); ++i)
    frequencies.Set(i, Napi::Number::New(env, c.rope_frequencies[i]));
  Napi::Object rope = Napi::Object::New(env);
  rope.Set("theta", Napi::Number::New(env, c.rope_theta));
  rope.Set("scaling", scaling);
  rope.Set("frequencies", frequencies);
  return rope;
}

Napi::Object FromShape(Napi::Env env, const tidal::ModelConfig& c) {
  Napi::Object shape = Napi::Object::New(env);
  shape.Set("layers", Napi::Number::New(env, double(c.num_layers)));
  shape.Set("hiddenSize", Napi::Number::New(env, double(c.hidden_size)));
  shape.Set("intermediateSize", Napi::Number::New(env, double(c.intermediate_size)));
  shape.Set("heads", Napi::Number::New(env, double(c.num_heads)));
  shape.Set("kvHeads", Napi::Number::New(env, double(c.num_kv_heads)));
  shape.Set("headDim", Napi::Number::New(env, double(c.head_dim)));
  shape.Set("vocabSize", Napi::Number::New(env, double(c.vocab_size)));
  shape.Set("maxPositions", Napi::Number::New(env, double(c.max_position_embeddings)));
  shape.Set("tiedEmbeddings", Napi::Boolean::New(env, c.tie_word_embeddings));
  shape.Set("rope", FromRope(env, c));
  return shape;
}

// An optional id or flag: the value, or undefined.
template <typename T>
Napi::Value Optional(Napi::Env env, const std::optional<T>& value) {
  if (!value) return env.Undefined();
  if constexpr (std::is_same_v<T, bool>)
    return Napi::Boolean::New(env, *value);
  else
    return Napi::Number::New(env, double(*value));
}

}  // namespace

Napi::Value InspectModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = ToPath(env, info[0], "inspectModel");
  const tidal::ModelInspection inspection = tidal::inspect_model(path);
  Napi::Object out = Napi::Object::New(env);
  out.Set("path", Napi::String::New(env, inspection.path));
  out.Set("format", Napi::String::New(env, inspection.format.empty() ? "unknown" : inspection.format));
  out.Set("architecture", Napi::String::New(env, inspection.architecture));
  out.Set("name", Napi::String::New(env, inspection.name));
  if (inspection.has_config) {
    out.Set("family", Napi::String::New(env, tidal::architecture_name(inspection.config.architecture)));
    out.Set("shape", FromShape(env, inspection.config));
  }
  out.Set("dtypes", StringArray(env, inspection.dtypes));
  out.Set("tensorCount", Napi::Number::New(env, double(inspection.tensor_count)));
  out.Set("parameters", Napi::Number::New(env, double(inspection.parameters)));
  out.Set("weightBytes", Napi::Number::New(env, double(inspection.weight_bytes)));
  out.Set("loadedWeightBytes", Napi::Number::New(env, double(inspection.loaded_weight_bytes)));
  out.Set("gpuWeightBytes", Napi::Number::New(env, double(inspection.gpu_weight_bytes)));
  out.Set("tokenizerTokens", Napi::Number::New(env, double(inspection.tokenizer_tokens)));
  Napi::Array problems = Napi::Array::New(env, inspection.problems.size());
  for (size_t i = 0; i < inspection.problems.size(); ++i) {
    Napi::Object problem = Napi::Object::New(env);
    problem.Set("kind", Napi::String::New(env, tidal::model_problem_kind_name(inspection.problems[i].kind)));
    problem.Set("message", Napi::String::New(env, inspection.problems[i].message));
    problems.Set(i, problem);
  }
  out.Set("problems", problems);
  return out;
}

Napi::Value ReadGgufTokenizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = ToPath(env, info[0], "readGgufTokenizer");
  tidal::GgufTokenizerMetadata t;
  try {
    tidal::GgufFile file = tidal::GgufFile::open(path);
    t = tidal::read_gguf_tokenizer(file.contents());
  } catch (...) {
    std::string message, code;
    DescribeCurrentException(message, code);
    throw ToJsError(env, message, code);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("model", Napi::String::New(env, t.model));
  out.Set("pre", Napi::String::New(env, t.pre));
  out.Set("tokens", StringArray(env, t.tokens));
  out.Set("merges", StringArray(env, t.merges));
  Napi::Float32Array scores = Napi::Float32Array::New(env, t.scores.size());
  for (size_t i = 0; i < t.scores.size(); ++i) scores[i] = t.scores[i];
  out.Set("scores", Published(env, scores));
  Napi::Int32Array types = Napi::Int32Array::New(env, t.token_types.size());
  for (size_t i = 0; i < t.token_types.size(); ++i) types[i] = t.token_types[i];
  out.Set("tokenTypes", Published(env, types));
  out.Set("bosId", Optional(env, t.bos_id));
  out.Set("eosId", Optional(env, t.eos_id));
  out.Set("eotId", Optional(env, t.eot_id));
  out.Set("unknownId", Optional(env, t.unknown_id));
  out.Set("paddingId", Optional(env, t.padding_id));
  out.Set("addBos", Optional(env, t.add_bos));
  out.Set("addEos", Optional(env, t.add_eos));
  out.Set("addSpacePrefix", Optional(env, t.add_space_prefix));
  out.Set("chatTemplate", Napi::String::New(env, t.chat_template));
  return out;
}

}  // namespace tidal_addon
