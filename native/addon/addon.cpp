// N-API entry point: registers every binding of the engine on the module's exports.
#include <napi.h>

#include "cancel_token.h"
#include "engine_wrap.h"
#include "model_inspect_binding.h"
#include "tidal/cuda_probe.h"
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

Napi::Value ProbeCuda(const Napi::CallbackInfo& info) {
  tidal::CudaProbe probe = tidal::probe_cuda();
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  out.Set("compiled", Napi::Boolean::New(env, probe.compiled));
  out.Set("deviceCount", Napi::Number::New(env, probe.device_count));
  out.Set("usable", Napi::Boolean::New(env, probe.usable));
  out.Set("deviceName", Napi::String::New(env, probe.device_name));
  out.Set("computeCapability", Napi::Number::New(env, probe.compute_capability));
  out.Set("memoryTotalGiB", Napi::Number::New(env, probe.memory_total_gib));
  out.Set("message", Napi::String::New(env, probe.message));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("engineVersion", Napi::Function::New(env, EngineVersion, "engineVersion"));
  exports.Set("compiledBackends", Napi::Function::New(env, CompiledBackends, "compiledBackends"));
  exports.Set("CancelToken", tidal_addon::CancelToken::Define(env));
  exports.Set("Engine", tidal_addon::EngineWrap::Define(env));
  exports.Set("loadModel", Napi::Function::New(env, tidal_addon::EngineWrap::LoadModel, "loadModel"));
  exports.Set("probeCuda", Napi::Function::New(env, ProbeCuda, "probeCuda"));
  exports.Set("inspectModel", Napi::Function::New(env, tidal_addon::InspectModel, "inspectModel"));
  exports.Set("readGgufTokenizer", Napi::Function::New(env, tidal_addon::ReadGgufTokenizer, "readGgufTokenizer"));
  return exports;
}

}  // namespace

NODE_API_MODULE(tidal_native, Init)
