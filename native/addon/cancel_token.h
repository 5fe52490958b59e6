// CancelToken: a JS object wrapping a shared atomic flag. Pass it to prefill/generate; call
// cancel() from JS and the running request stops within one decode step.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

namespace tidal_addon {

class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);

  std::shared_ptr<std::atomic<bool>> flag() const { return flag_; }

  // The flag of a CancelToken passed as `value`, or nullptr for undefined/null. Throws a
  // TypeError for anything else.
  static std::shared_ptr<std::atomic<bool>> FromValue(Napi::Env env, Napi::Value value);

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value IsCancelled(const Napi::CallbackInfo& info);
  std::shared_ptr<std::atomic<bool>> flag_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace tidal_addon
