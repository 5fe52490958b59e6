#include "convert.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "tidal/error.h"
#include "tidal/option_limits.h"

namespace tidal_addon {
namespace limits = tidal::limits;
namespace {

// A finite whole number in [lo, hi] (NaN and non-numbers, passed as NaN, are not).
bool IsIntegerIn(double number, int64_t lo, int64_t hi) {
  return std::isfinite(number) && std::floor(number) == number && number >= double(lo) && number <= double(hi);
}

Napi::Object AsOptionalObject(Napi::Env env, Napi::Value value, const char* what) {
  if (value.IsUndefined() || value.IsNull()) return Napi::Object::New(env);
  if (!value.IsObject() || value.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an object");
  return value.As<Napi::Object>();
}

// Reads an integer field in [lo, hi]; absent fields keep `fallback`.
int64_t IntField(Napi::Env env, Napi::Object object, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  Napi::Value value = object.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!IsIntegerIn(number, lo, hi)) {
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                                         std::to_string(hi) + "], got " + value.ToString().Utf8Value());
  }
  return int64_t(number);
}

// Reads a boolean field; absent fields keep `fallback`.
bool BoolField(Napi::Env env, Napi::Object object, const char* name, bool fallback) {
  Napi::Value value = object.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) throw Napi::TypeError::New(env, std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

double NumberField(Napi::Env env, Napi::Object object, const char* name, double fallback, double lo, double hi) {
  Napi::Value value = object.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || number < lo || number > hi) {
    throw Napi::RangeError::New(env, std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                                         std::to_string(hi) + "], got " + value.ToString().Utf8Value());
  }
  return number;
}

std::vector<int32_t> IntList(Napi::Env env, Napi::Value value, const char* name, int64_t lo, int64_t hi) {
  std::vector<int32_t> out;
  if (value.IsUndefined()) return out;
  if (!value.IsArray()) throw Napi::TypeError::New(env, std::string(name) + " must be an array of integers");
  auto array = value.As<Napi::Array>();
  if (array.Length() > 4096) throw Napi::RangeError::New(env, std::string(name) + " has more than 4096 entries");
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    double number = item.IsNumber() ? item.As<Napi::Number>().DoubleValue() : std::nan("");
    if (!IsIntegerIn(number, lo, hi)) {
      throw Napi::RangeError::New(env, std::string(name) + "[" + std::to_string(i) + "] must be an integer in [" +
                                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    out.push_back(int32_t(number));
  }
  return out;
}

}  // namespace

tidal::EngineOptions ToEngineOptions(Napi::Env env, Napi::Value value) {
  Napi::Object object = AsOptionalObject(env, value, "options");
  tidal::EngineOptions options;
  Napi::Value backend = object.Get("backend");
  if (!backend.IsUndefined()) {
    if (!backend.IsString()) throw Napi::TypeError::New(env, "backend must be a string");
    options.backend = backend.As<Napi::String>().Utf8Value();
  }
  options.threads = int(IntField(env, object, "threads", 0, 0, limits::kMaxThreads));
  options.max_context = IntField(env, object, "maxContext", 0, 0, limits::kMaxContext);
  options.prefill_chunk = IntField(env, object, "prefillChunk", 0, 0, limits::kMaxPrefillChunk);
  options.max_kv_bytes = size_t(IntField(env, object, "maxKvBytes", 0, 0, limits::kMaxKvBytes));
  options.kv_fp8_simulation = BoolField(env, object, "kvFp8Simulation", false);
  options.kv_fp8 = BoolField(env, object, "kvFp8", false);
  return options;
}

tidal::AttentionOptions ToAttentionOptions(Napi::Env env, Napi::Value value) {
  Napi::Object object = AsOptionalObject(env, value, "attention");
  tidal::AttentionOptions options;
  Napi::Value mode = object.Get("mode");
  if (!mode.IsUndefined()) {
    std::string name = mode.IsString() ? mode.As<Napi::String>().Utf8Value() : "";
    if (name == "full")
      options.mode = tidal::AttentionMode::Full;
    else if (name == "tidal")
      options.mode = tidal::AttentionMode::Tidal;
    else if (name == "quest")
      options.mode = tidal::AttentionMode::Quest;
    else
      throw Napi::TypeError::New(env, "attention.mode must be 'full', 'tidal' or 'quest'");
  }
  options.token_budget = IntField(env, object, "tokenBudget", options.token_budget, 1, limits::kMaxTokenBudget);
  options.dense_layers = IntField(env, object, "denseLayers", options.dense_layers, 0, limits::kMaxDenseLayers);
  for (int32_t layer : IntList(env, object.Get("selectionLayers"), "selectionLayers", 0, limits::kMaxLayerIndex)) {
    options.selection_layers.push_back(layer);
  }
  Napi::Value policy = object.Get("selectionPolicy");
  if (!policy.IsUndefined()) {
    std::string name = policy.IsString() ? policy.As<Napi::String>().Utf8Value() : "";
    if (name == "perQueryHead")
      options.selection_policy = tidal::SelectionPolicy::PerQueryHead;
    else if (name == "perKvHeadMax")
      options.selection_policy = tidal::SelectionPolicy::PerKvHeadMax;
    else if (name == "perKvHeadSum")
      options.selection_policy = tidal::SelectionPolicy::PerKvHeadSum;
    else
      throw Napi::TypeError::New(env, "selectionPolicy must be 'perQueryHead', 'perKvHeadMax' or 'perKvHeadSum'");
  }
  options.correction_interval = IntField(env, object, "correctionInterval", 0, 0, limits::kMaxCorrectionInterval);
  options.sparse_first_step = BoolField(env, object, "sparseFirstStep", options.sparse_first_step);
  options.sparse_prefill = BoolField(env, object, "sparsePrefill", options.sparse_prefill);
  return options;
}

tidal::GenerateOptions ToGenerateOptions(Napi::Env env, Napi::Value value) {
  Napi::Object object = AsOptionalObject(env, value, "options");
  tidal::GenerateOptions options;
  options.max_tokens = IntField(env, object, "maxTokens", options.max_tokens, 0, limits::kMaxNewTokens);
  options.stop_tokens = IntList(env, object.Get("stopTokens"), "stopTokens", 0, limits::kMaxTokenId);
  Napi::Value stop_at_eos = object.Get("stopAtEos");
  if (!stop_at_eos.IsUndefined()) options.stop_at_eos = stop_at_eos.ToBoolean().Value();
  Napi::Object sampling = AsOptionalObject(env, object.Get("sampling"), "sampling");
  options.sampling.temperature = float(NumberField(env, sampling, "temperature", 0.0, 0.0, limits::kMaxTemperature));
  options.sampling.top_k = IntField(env, sampling, "topK", 0, 0, limits::kMaxTopK);
  options.sampling.top_p = float(NumberField(env, sampling, "topP", 1.0, 0.0, 1.0));
  options.sampling.seed = uint64_t(IntField(env, sampling, "seed", 0, 0, limits::kMaxSeed));
  options.attention = ToAttentionOptions(env, object.Get("attention"));
  options.prefill_chunk = IntField(env, object, "prefillChunk", 0, 0, limits::kMaxPrefillChunk);
  return options;
}

tidal::PrefillOptions ToPrefillOptions(Napi::Env env, Napi::Value value) {
  Napi::Object object = AsOptionalObject(env, value, "prefill options");
  tidal::PrefillOptions options;
  options.all_logits = object.Get("allLogits").ToBoolean().Value();
  options.chunk = IntField(env, object, "chunk", 0, 0, limits::kMaxPrefillChunk);
  options.attention = ToAttentionOptions(env, object.Get("attention"));
  return options;
}

std::vector<std::pair<int64_t, int64_t>> ToRanges(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "ranges must be an array of [start, count] pairs");
  auto array = value.As<Napi::Array>();
  std::vector<std::pair<int64_t, int64_t>> ranges;
  ranges.reserve(array.Length());
  const int64_t limit = (int64_t(1) << 53) - 1;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    const std::string name = "ranges[" + std::to_string(i) + "]";
    if (!item.IsArray() || item.As<Napi::Array>().Length() != 2)
      throw Napi::TypeError::New(env, name + " must be a [start, count] pair");
    auto pair = item.As<Napi::Array>();
    int64_t parts[2];
    for (uint32_t j = 0; j < 2; ++j) {
      Napi::Value part = pair.Get(j);
      const double number = part.IsNumber() ? part.As<Napi::Number>().DoubleValue() : std::nan("");
      if (!IsIntegerIn(number, 0, limit))
        throw Napi::RangeError::New(env, name + (j == 0 ? ": start" : ": count") + " must be an integer >= 0");
      parts[j] = int64_t(number);
    }
    ranges.emplace_back(parts[0], parts[1]);
  }
  return ranges;
}

std::string ToPath(Napi::Env env, Napi::Value value, const char* call) {
  if (!value.IsString()) throw Napi::TypeError::New(env, std::string(call) + ": path must be a string");
  std::string path = value.As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, std::string(call) + ": path must be a non-empty string without NUL characters");
  return path;
}

std::vector<int32_t> ToTokens(Napi::Env env, Napi::Value value, int64_t vocab_size, const char* what) {
  std::vector<int32_t> tokens;
  auto check = [&](double number, size_t index) {
    if (!IsIntegerIn(number, 0, vocab_size - 1)) {
      std::ostringstream shown;
      shown << number;
      throw Napi::RangeError::New(env, std::string(what) + "[" + std::to_string(index) + "] = " + shown.str() +
                                           " is not a token id in [0, " + std::to_string(vocab_size) + ")");
    }
    return int32_t(number);
  };
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto array = value.As<Napi::Int32Array>();
    tokens.reserve(array.ElementLength());
    for (size_t i = 0; i < array.ElementLength(); ++i) tokens.push_back(check(array[i], i));
  } else if (value.IsArray()) {
    auto array = value.As<Napi::Array>();
    tokens.reserve(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value item = array.Get(i);
      tokens.push_back(check(item.IsNumber() ? item.As<Napi::Number>().DoubleValue() : std::nan(""), i));
    }
  } else {
    throw Napi::TypeError::New(env, std::string(what) + " must be an array of token ids or an Int32Array");
  }
  return tokens;
}

Napi::Object FromModelInfo(Napi::Env env, const tidal::ModelInfo& info) {
  auto out = Napi::Object::New(env);
  out.Set("architecture", info.architecture);
  out.Set("numLayers", double(info.num_layers));
  out.Set("numHeads", double(info.num_heads));
  out.Set("numKvHeads", double(info.num_kv_heads));
  out.Set("headDim", double(info.head_dim));
  out.Set("hiddenSize", double(info.hidden_size));
  out.Set("intermediateSize", double(info.intermediate_size));
  out.Set("vocabSize", double(info.vocab_size));
  out.Set("maxPositionEmbeddings", double(info.max_position_embeddings));
  out.Set("maxContext", double(info.max_context));
  out.Set("dtype", info.dtype);
  out.Set("weightBytes", double(info.weight_bytes));
  out.Set("kvBytesPerToken", double(info.kv_bytes_per_token));
  auto eos = Napi::Array::New(env, info.eos_token_ids.size());
  for (size_t i = 0; i < info.eos_token_ids.size(); ++i) eos.Set(uint32_t(i), double(info.eos_token_ids[i]));
  out.Set("eosTokenIds", eos);
  out.Set("backend", info.backend);
  out.Set("threads", info.threads);
  return out;
}

static const char* ModeName(tidal::AttentionMode mode) {
  switch (mode) {
    case tidal::AttentionMode::Full:
      return "full";
    case tidal::AttentionMode::Tidal:
      return "tidal";
    case tidal::AttentionMode::Quest:
      return "quest";
  }
  return "full";
}

Napi::Object FromUsage(Napi::Env env, const tidal::UsageStats& usage) {
  auto out = Napi::Object::New(env);
  out.Set("weightBytes", double(usage.weight_bytes));
  out.Set("kvBytes", double(usage.kv_bytes));
  out.Set("kvBytesPeak", double(usage.kv_bytes_peak));
  out.Set("sequences", double(usage.sequences));
  out.Set("tokensPrefilled", double(usage.tokens_prefilled));
  out.Set("tokensDecoded", double(usage.tokens_decoded));
  out.Set("prefillSeconds", usage.prefill_seconds);
  out.Set("decodeSeconds", usage.decode_seconds);
  auto selection = Napi::Object::New(env);
  selection.Set("mode", ModeName(usage.last_selection.mode));
  selection.Set("contextLength", double(usage.last_selection.context_length));
  selection.Set("tokenBudget", double(usage.last_selection.token_budget));
  selection.Set("selectionLayersRun", double(usage.last_selection.selection_layers_run));
  selection.Set("attendedFraction", usage.last_selection.attended_fraction);
  selection.Set("corrections", double(usage.last_selection.corrections));
  out.Set("lastSelection", selection);
  return out;
}

Napi::Object FromGenerateResult(Napi::Env env, const tidal::GenerateResult& result) {
  auto out = Napi::Object::New(env);
  auto tokens = Napi::Int32Array::New(env, result.tokens.size());
  for (size_t i = 0; i < result.tokens.size(); ++i) tokens[i] = result.tokens[i];
  out.Set("tokens", Published(env, tokens));
  out.Set("finishReason", tidal::finish_reason_name(result.finish_reason));
  out.Set("promptTokens", double(result.prompt_tokens));
  out.Set("prefillSeconds", result.prefill_seconds);
  out.Set("decodeSeconds", result.decode_seconds);
  return out;
}

Napi::Float32Array FromFloats(Napi::Env env, const std::vector<float>& values) {
  auto array = Napi::Float32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), array.Data());
  return Published(env, array);
}

Napi::Error ToJsError(Napi::Env env, const std::string& message, const std::string& code) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void DescribeCurrentException(std::string& message, std::string& code) {
  try {
    throw;
  } catch (const tidal::ModelError& e) {
    message = e.what(), code = "ERR_TIDAL_MODEL";
  } catch (const tidal::RequestError& e) {
    message = e.what(), code = "ERR_TIDAL_REQUEST";
  } catch (const tidal::OutOfMemoryError& e) {
    message = e.what(), code = "ERR_TIDAL_OUT_OF_MEMORY";
  } catch (const tidal::CancelledError& e) {
    message = e.what(), code = "ERR_TIDAL_CANCELLED";
  } catch (const std::bad_alloc&) {
    message = "out of memory", code = "ERR_TIDAL_OUT_OF_MEMORY";
  } catch (const std::exception& e) {
    message = e.what(), code = "ERR_TIDAL_ENGINE";
  } catch (...) {
    message = "unknown engine error", code = "ERR_TIDAL_ENGINE";
  }
}

}  // namespace tidal_addon
