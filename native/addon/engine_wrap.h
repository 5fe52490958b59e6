// Engine: the JS object of one loaded model. Every method that may wait for the engine runs
// off the JS thread and returns a promise; tokens of generate() are streamed to a callback
// on the JS thread, in order, before its promise settles.
#pragma once
#include <napi.h>

#include <memory>

#include "tidal/engine.h"

namespace tidal_addon {

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // loadModel(dir, options?) -> Promise<Engine>
  static Napi::Value LoadModel(const Napi::CallbackInfo& info);
  explicit EngineWrap(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<tidal::Engine> Require(Napi::Env env) const;
  tidal::SequenceId SequenceArg(Napi::Env env, Napi::Value value) const;

  Napi::Value ModelInfo(const Napi::CallbackInfo& info);
  Napi::Value Usage(const Napi::CallbackInfo& info);
  Napi::Value CreateSequence(const Napi::CallbackInfo& info);
  Napi::Value ForkSequence(const Napi::CallbackInfo& info);
  Napi::Value TrimSequence(const Napi::CallbackInfo& info);
  Napi::Value ReleaseSequence(const Napi::CallbackInfo& info);
  Napi::Value SequenceLength(const Napi::CallbackInfo& info);
  Napi::Value SequenceTokens(const Napi::CallbackInfo& info);
  Napi::Value Prefill(const Napi::CallbackInfo& info);
  Napi::Value CompactSequence(const Napi::CallbackInfo& info);
  Napi::Value SaveSequence(const Napi::CallbackInfo& info);
  Napi::Value LoadSequence(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Unload(const Napi::CallbackInfo& info);

  std::shared_ptr<tidal::Engine> engine_;
  tidal::ModelInfo info_;
};

}  // namespace tidal_addon
