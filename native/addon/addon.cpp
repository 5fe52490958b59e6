// N-API entry point: registers every binding of the engine on the module's exports.
#include <napi.h>

#include "tidal/version.h"

namespace {

Napi::Value EngineVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), tidal::engine_version());
}

Napi::Value CompiledBackends(const Napi::CallbackInfo& info) {
  auto backends = tidal::compiled_backends();
  auto array = Napi::Array::New(info.Env(), backends.size());
  for (size_t i = 0; i < backends.size(); ++i) array.Set(i, Napi::String::New(info.Env(), backends[i]));
  return array;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("engineVersion", Napi::Function::New(env, EngineVersion, "engineVersion"));
  exports.Set("compiledBackends", Napi::Function::New(env, CompiledBackends, "compiledBackends"));
  return exports;
}

}  // namespace

NODE_API_MODULE(tidal_native, Init)
