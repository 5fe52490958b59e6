// Conversions between JS values and the engine's option/result structs. Every bad field
// becomes a TypeError/RangeError naming the field and what was expected.
#pragma once
#include <napi.h>
#ifdef __EMSCRIPTEN__
#include <emnapi.h>
#endif

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tidal/engine.h"

namespace tidal_addon {

tidal::EngineOptions ToEngineOptions(Napi::Env env, Napi::Value value);
tidal::AttentionOptions ToAttentionOptions(Napi::Env env, Napi::Value value);
tidal::GenerateOptions ToGenerateOptions(Napi::Env env, Napi::Value value);
// { allLogits?, chunk? } (the cancel token is read by the caller).
tidal::PrefillOptions ToPrefillOptions(Napi::Env env, Napi::Value value);
// [start, count][] of integers >= 0 (the engine checks order, bounds and empty ranges).
std::vector<std::pair<int64_t, int64_t>> ToRanges(Napi::Env env, Napi::Value value);
// A non-empty string without NUL characters; `call` names the method in the error.
std::string ToPath(Napi::Env env, Napi::Value value, const char* call);
// number[] or Int32Array of token ids; each must be an integer in [0, vocab_size).
std::vector<int32_t> ToTokens(Napi::Env env, Napi::Value value, int64_t vocab_size, const char* what);

Napi::Object FromModelInfo(Napi::Env env, const tidal::ModelInfo& info);
Napi::Object FromUsage(Napi::Env env, const tidal::UsageStats& usage);
Napi::Object FromGenerateResult(Napi::Env env, const tidal::GenerateResult& result);
Napi::Float32Array FromFloats(Napi::Env env, const std::vector<float>& values);

// Makes what C++ wrote through a typed array's or ArrayBuffer's Data() visible to JS; returns
// the value to hand to JS. Natively Data() is the array's own memory and this does nothing. In
// the WebAssembly build (emnapi, native/wasm/) Data() is a copy in the module's memory, copied
// into the JS array here.
template <typename Array>
Array Published(Napi::Env env, Array array) {
#ifdef __EMSCRIPTEN__
  if (array.ByteLength() == 0) return array;
  napi_value value = array;
  NAPI_THROW_IF_FAILED(env, emnapi_sync_memory(env, false, &value, 0, SIZE_MAX), Array());
  return Array(env, value);
#else
  (void)env;
  return array;
#endif
}

// A JS Error whose `code` property says which engine error it was: "ERR_TIDAL_MODEL",
// "ERR_TIDAL_REQUEST", "ERR_TIDAL_OUT_OF_MEMORY", "ERR_TIDAL_CANCELLED" or "ERR_TIDAL_ENGINE".
Napi::Error ToJsError(Napi::Env env, const std::string& message, const std::string& code);

// Classifies the exception in flight (call inside a catch block) into {message, code}.
void DescribeCurrentException(std::string& message, std::string& code);

}  // namespace tidal_addon
