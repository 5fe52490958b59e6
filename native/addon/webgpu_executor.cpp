#include "webgpu_executor.h"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "convert.h"
#include "tidal/error.h"

namespace tidal_addon {
namespace {

// One tape in flight: the engine thread waits on `done`; the JS thread fills the reads.
struct TapeJob {
  tidal::Tape* tape = nullptr;
  tidal::Tape owned;  // a detached job's tape
  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;
  std::string error;

  void finish(std::string message) {
    std::lock_guard<std::mutex> lock(mutex);
    error = std::move(message);
    done = true;
    changed.notify_all();
  }
};

class JsWebGpuExecutor final : public tidal::WebGpuExecutor {
 public:
  // `execute` is bound to its device already: nothing here refers to a JS object, so the
  // executor may be destroyed on any thread, and a detached call may outlive it.
  JsWebGpuExecutor(Napi::Env env, Napi::Function execute, uint64_t max_binding_bytes)
      : max_binding_bytes_(max_binding_bytes) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, execute, "tidal.webgpu", 0, 1);
    tsfn_.Unref(env);  // an idle device does not keep Node alive
  }
  ~JsWebGpuExecutor() override { tsfn_.Release(); }

  uint64_t max_binding_bytes() const override { return max_binding_bytes_; }

  void run_detached(tidal::Tape tape) override {
    auto job = std::make_shared<TapeJob>();
    job->owned = std::move(tape);
    job->tape = &job->owned;
    auto* held = new std::shared_ptr<TapeJob>(job);
    const napi_status status =
        tsfn_.NonBlockingCall(held, [](Napi::Env env, Napi::Function execute, std::shared_ptr<TapeJob>* held) {
          std::shared_ptr<TapeJob> job = std::move(*held);
          delete held;
          Submit(env, execute, job);
        });
    if (status != napi_ok) delete held;  // the JS thread is gone, and the device with it
  }

  void run(tidal::Tape& tape) override {
    // Shared with the JS side: its last unlock may come after this thread has woken.
    auto job = std::make_shared<TapeJob>();
    job->tape = &tape;
    auto* held = new std::shared_ptr<TapeJob>(job);
    const napi_status status =
        tsfn_.BlockingCall(held, [](Napi::Env env, Napi::Function execute, std::shared_ptr<TapeJob>* held) {
          std::shared_ptr<TapeJob> job = std::move(*held);
          delete held;
          Submit(env, execute, job);
        });
    if (status != napi_ok) {
      delete held;
      throw tidal::Error("the WebGPU device is no longer reachable (the JS thread has stopped)");
    }
    std::unique_lock<std::mutex> lock(job->mutex);
    job->changed.wait(lock, [&] { return job->done; });
    if (!job->error.empty()) throw tidal::Error("WebGPU device: " + job->error);
  }

 private:
  // On the JS thread: hands the tape to device.execute and settles the job when its promise does.
  static void Submit(Napi::Env env, Napi::Function execute, const std::shared_ptr<TapeJob>& job) {
    Napi::HandleScope scope(env);
    try {
      tidal::Tape& tape = *job->tape;
      auto words = Napi::Uint32Array::New(env, tape.words.size());
      std::memcpy(words.Data(), tape.words.data(), tape.words.size() * sizeof(uint32_t));
      words = Published(env, words);
      auto uploads = Napi::Array::New(env, tape.uploads.size());
      for (size_t i = 0; i < tape.uploads.size(); ++i) {
        auto buffer = Napi::ArrayBuffer::New(env, tape.uploads[i].bytes);
        std::memcpy(buffer.Data(), tape.uploads[i].data, tape.uploads[i].bytes);
        uploads.Set(static_cast<uint32_t>(i), Published(env, buffer));
      }
      Napi::Value promise = execute.Call({words, uploads});
      auto on_done = Napi::Function::New(env, [job](const Napi::CallbackInfo& info) {
        try {
          tidal::Tape& tape = *job->tape;
          Napi::Array results = info[0].As<Napi::Array>();
          if (results.Length() != tape.reads.size())
            throw std::runtime_error("read results do not match the tape's reads");
          for (size_t i = 0; i < tape.reads.size(); ++i) {
            Napi::ArrayBuffer data = results.Get(static_cast<uint32_t>(i)).As<Napi::ArrayBuffer>();
            if (data.ByteLength() < tape.reads[i].bytes) throw std::runtime_error("a read came back short");
            std::memcpy(tape.reads[i].destination, data.Data(), tape.reads[i].bytes);
          }
          job->finish("");
        } catch (const std::exception& e) {
          job->finish(e.what());
        }
      });
      auto on_error = Napi::Function::New(env, [job](const Napi::CallbackInfo& info) {
        Napi::Value reason = info[0];
        std::string message = "failed";
        if (reason.IsObject() && reason.As<Napi::Object>().Get("message").IsString())
          message = reason.As<Napi::Object>().Get("message").As<Napi::String>().Utf8Value();
        else if (reason.IsString())
          message = reason.As<Napi::String>().Utf8Value();
        job->finish(message);
      });
      if (!promise.IsObject() || !promise.As<Napi::Object>().Get("then").IsFunction())
        throw std::runtime_error("device.execute did not return a promise");
      promise.As<Napi::Object>().Get("then").As<Napi::Function>().Call(promise, {on_done, on_error});
    } catch (const Napi::Error& e) {
      job->finish(e.Message());
    } catch (const std::exception& e) {
      job->finish(e.what());
    }
  }

  Napi::ThreadSafeFunction tsfn_;
  uint64_t max_binding_bytes_;
};

}  // namespace

std::shared_ptr<tidal::WebGpuExecutor> CreateWebGpuExecutor(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) throw Napi::TypeError::New(env, "webgpu must be a device object (src/webgpu)");
  Napi::Object device = value.As<Napi::Object>();
  Napi::Value execute = device.Get("execute");
  Napi::Value max_binding = device.Get("maxBindingBytes");
  if (!execute.IsFunction() || !max_binding.IsNumber())
    throw Napi::TypeError::New(env, "webgpu must have execute(words, uploads) and maxBindingBytes");
  const double bytes = max_binding.As<Napi::Number>().DoubleValue();
  if (!(bytes >= 1024)) throw Napi::RangeError::New(env, "webgpu.maxBindingBytes must be at least 1024");
  Napi::Function bound =
      execute.As<Napi::Object>().Get("bind").As<Napi::Function>().Call(execute, {device}).As<Napi::Function>();
  return std::make_shared<JsWebGpuExecutor>(env, bound, static_cast<uint64_t>(bytes));
}

}  // namespace tidal_addon
