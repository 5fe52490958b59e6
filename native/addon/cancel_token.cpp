#include "cancel_token.h"

namespace tidal_addon {

static Napi::FunctionReference* g_constructor = nullptr;

Napi::Function CancelToken::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "CancelToken",
                                    {InstanceMethod("cancel", &CancelToken::Cancel),
                                     InstanceAccessor("cancelled", &CancelToken::IsCancelled, nullptr)});
  g_constructor = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.SetInstanceData<Napi::FunctionReference>(g_constructor);
  return ctor;
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}

Napi::Value CancelToken::Cancel(const Napi::CallbackInfo& info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value CancelToken::IsCancelled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), flag_->load());
}

std::shared_ptr<std::atomic<bool>> CancelToken::FromValue(Napi::Env env, Napi::Value value) {
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  if (value.IsObject() && g_constructor && value.As<Napi::Object>().InstanceOf(g_constructor->Value())) {
    return Unwrap(value.As<Napi::Object>())->flag();
  }
  throw Napi::TypeError::New(env, "cancel must be a CancelToken created with new CancelToken()");
}

}  // namespace tidal_addon
