// Runs a piece of engine work on the libuv thread pool and settles a JS promise with its
// result. Engine exceptions become JS errors carrying a `code` (see convert.h).
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "convert.h"

namespace tidal_addon {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;                    // runs off the JS thread
  using Result = std::function<Napi::Value(Napi::Env)>;  // runs on the JS thread afterwards

  static Napi::Promise Start(Napi::Env env, Work work, Result result, const char* name) {
    auto* worker = new PromiseWorker(env, std::move(work), std::move(result), name);
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (...) {
      std::string message;
      DescribeCurrentException(message, code_);
      SetError(message);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& error) override {
    deferred_.Reject(ToJsError(Env(), error.Message(), code_).Value());
  }

 private:
  PromiseWorker(Napi::Env env, Work work, Result result, const char* name)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  Result result_;
  std::string code_ = "ERR_TIDAL_ENGINE";
};

}  // namespace tidal_addon
