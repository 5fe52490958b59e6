#include "engine_wrap.h"

#include <atomic>
#include <string>
#include <vector>

#include "cancel_token.h"
#include "convert.h"
#include "promise_worker.h"
#include "webgpu_executor.h"

namespace tidal_addon {
namespace {

Napi::FunctionReference* g_engine_constructor = nullptr;

// Streams tokens of one generate() call: Execute runs on the thread pool and pushes each
// token through the progress queue; OnProgress calls the JS callback on the JS thread; the
// promise settles only after every queued token was delivered (node-addon-api defers
// completion until the progress queue is drained).
class GenerateWorker : public Napi::AsyncProgressQueueWorker<int32_t> {
 public:
  GenerateWorker(Napi::Env env, std::shared_ptr<tidal::Engine> engine, tidal::SequenceId sequence,
                 std::vector<int32_t> prompt, tidal::GenerateOptions options, Napi::Function on_token,
                 std::shared_ptr<std::atomic<bool>> cancel)
      : Napi::AsyncProgressQueueWorker<int32_t>(env, "tidal.generate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        engine_(std::move(engine)),
        sequence_(sequence),
        prompt_(std::move(prompt)),
        options_(std::move(options)),
        cancel_(std::move(cancel)) {
    if (!on_token.IsEmpty()) on_token_ = Napi::Persistent(on_token);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      result_ = engine_->generate(
          sequence_, prompt_, options_,
          [&progress](int32_t token) {
            progress.Send(&token, 1);
            return true;
          },
          cancel_.get());
    } catch (...) {
      std::string message;
      DescribeCurrentException(message, code_);
      SetError(message);
    }
  }

  void OnProgress(const int32_t* tokens, size_t count) override {
    if (on_token_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count; ++i) {
      try {
        on_token_.Call({Napi::Number::New(env, tokens[i])});
      } catch (const Napi::Error& e) {
        // A throwing callback stops the generation; the promise rejects with its error.
        if (callback_error_.IsEmpty()) callback_error_ = Napi::Persistent(e.Value());
        if (cancel_) cancel_->store(true);
      }
    }
  }

  void OnOK() override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    deferred_.Resolve(FromGenerateResult(Env(), result_));
  }

  void OnError(const Napi::Error& error) override {
    if (!callback_error_.IsEmpty()) return deferred_.Reject(callback_error_.Value());
    deferred_.Reject(ToJsError(Env(), error.Message(), code_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<tidal::Engine> engine_;
  tidal::SequenceId sequence_;
  std::vector<int32_t> prompt_;
  tidal::GenerateOptions options_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  Napi::FunctionReference on_token_;
  Napi::ObjectReference callback_error_;
  tidal::GenerateResult result_;
  std::string code_ = "ERR_TIDAL_ENGINE";
};

}  // namespace

Napi::Function EngineWrap::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "Engine",
                                    {
                                        InstanceAccessor("modelInfo", &EngineWrap::ModelInfo, nullptr),
                                        InstanceMethod("usage", &EngineWrap::Usage),
                                        InstanceMethod("createSequence", &EngineWrap::CreateSequence),
                                        InstanceMethod("forkSequence", &EngineWrap::ForkSequence),
                                        InstanceMethod("trimSequence", &EngineWrap::TrimSequence),
                                        InstanceMethod("releaseSequence", &EngineWrap::ReleaseSequence),
                                        InstanceMethod("sequenceLength", &EngineWrap::SequenceLength),
                                        InstanceMethod("sequenceTokens", &EngineWrap::SequenceTokens),
                                        InstanceMethod("prefill", &EngineWrap::Prefill),
                                        InstanceMethod("compactSequence", &EngineWrap::CompactSequence),
                                        InstanceMethod("saveSequence", &EngineWrap::SaveSequence),
                                        InstanceMethod("loadSequence", &EngineWrap::LoadSequence),
                                        InstanceMethod("decode", &EngineWrap::Decode),
                                        InstanceMethod("generate", &EngineWrap::Generate),
                                        InstanceMethod("unload", &EngineWrap::Unload),
                                    });
  g_engine_constructor = new Napi::FunctionReference(Napi::Persistent(ctor));
  return ctor;
}

// Constructed only by loadModel: its first argument is an External holding the engine.
EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Engine objects are created by loadModel(dir, options)");
  }
  auto* holder = info[0].As<Napi::External<std::shared_ptr<tidal::Engine>>>().Data();
  engine_ = *holder;
  info_ = engine_->model_info();
}

Napi::Value EngineWrap::LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(env, "loadModel(dir, options?): dir must be a string");
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  tidal::EngineOptions options = ToEngineOptions(env, info.Length() > 1 ? info[1] : env.Undefined());
  if (info.Length() > 1 && info[1].IsObject() && !info[1].As<Napi::Object>().Get("webgpu").IsUndefined())
    options.webgpu_executor = CreateWebGpuExecutor(env, info[1].As<Napi::Object>().Get("webgpu"));
  auto loaded = std::make_shared<std::shared_ptr<tidal::Engine>>();
  return PromiseWorker::Start(
      env, [dir, options, loaded] { *loaded = std::shared_ptr<tidal::Engine>(tidal::Engine::load(dir, options)); },
      [loaded](Napi::Env env) -> Napi::Value {
        std::shared_ptr<tidal::Engine> engine = *loaded;
        auto external = Napi::External<std::shared_ptr<tidal::Engine>>::New(env, &engine);
        return g_engine_constructor->New({external});
      },
      "tidal.loadModel");
}

std::shared_ptr<tidal::Engine> EngineWrap::Require(Napi::Env env) const {
  if (!engine_) throw ToJsError(env, "this model was unloaded; load it again with loadModel()", "ERR_TIDAL_REQUEST");
  return engine_;
}

tidal::SequenceId EngineWrap::SequenceArg(Napi::Env env, Napi::Value value) const {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "sequence must be a sequence id (a number)");
  double id = value.As<Napi::Number>().DoubleValue();
  if (!(id >= 0) || id != double(uint64_t(id)))
    throw Napi::RangeError::New(env, "sequence id must be a non-negative integer");
  return tidal::SequenceId(id);
}

Napi::Value EngineWrap::ModelInfo(const Napi::CallbackInfo& info) { return FromModelInfo(info.Env(), info_); }

Napi::Value EngineWrap::Usage(const Napi::CallbackInfo& info) {
  return FromUsage(info.Env(), Require(info.Env())->usage());
}

Napi::Value EngineWrap::CreateSequence(const Napi::CallbackInfo& info) {
  auto engine = Require(info.Env());
  auto id = std::make_shared<tidal::SequenceId>(0);
  return PromiseWorker::Start(
      info.Env(), [engine, id] { *id = engine->create_sequence(); },
      [id](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*id)); }, "tidal.createSequence");
}

Napi::Value EngineWrap::ForkSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId source = SequenceArg(env, info[0]);
  int64_t length = -1;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "length must be a number");
    length = info[1].As<Napi::Number>().Int64Value();
  }
  auto id = std::make_shared<tidal::SequenceId>(0);
  return PromiseWorker::Start(
      env, [engine, id, source, length] { *id = engine->fork_sequence(source, length); },
      [id](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*id)); }, "tidal.forkSequence");
}

Napi::Value EngineWrap::TrimSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  if (info.Length() < 2 || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "trimSequence(sequence, length): length must be a number");
  int64_t length = info[1].As<Napi::Number>().Int64Value();
  return PromiseWorker::Start(
      env, [engine, sequence, length] { engine->trim_sequence(sequence, length); },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, "tidal.trimSequence");
}

Napi::Value EngineWrap::ReleaseSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  return PromiseWorker::Start(
      env, [engine, sequence] { engine->release_sequence(sequence); },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, "tidal.releaseSequence");
}

Napi::Value EngineWrap::SequenceLength(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  auto length = std::make_shared<int64_t>(0);
  return PromiseWorker::Start(
      env, [engine, sequence, length] { *length = engine->sequence_length(sequence); },
      [length](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*length)); },
      "tidal.sequenceLength");
}

Napi::Value EngineWrap::SequenceTokens(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  auto tokens = std::make_shared<std::vector<int32_t>>();
  return PromiseWorker::Start(
      env, [engine, sequence, tokens] { *tokens = engine->sequence_tokens(sequence); },
      [tokens](Napi::Env env) -> Napi::Value {
        auto array = Napi::Int32Array::New(env, tokens->size());
        std::copy(tokens->begin(), tokens->end(), array.Data());
        return Published(env, array);
      },
      "tidal.sequenceTokens");
}

// prefill(sequence, tokens, { allLogits?, cancel?, chunk? }) -> Promise<Float32Array>
Napi::Value EngineWrap::Prefill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  std::vector<int32_t> tokens = ToTokens(env, info[1], info_.vocab_size, "tokens");
  Napi::Value options_value = info.Length() > 2 ? info[2] : env.Undefined();
  tidal::PrefillOptions options = ToPrefillOptions(env, options_value);
  std::shared_ptr<std::atomic<bool>> cancel;
  if (options_value.IsObject()) cancel = CancelToken::FromValue(env, options_value.As<Napi::Object>().Get("cancel"));
  auto logits = std::make_shared<std::vector<float>>();
  return PromiseWorker::Start(
      env,
      [engine, sequence, tokens = std::move(tokens), options, cancel, logits] {
        *logits = engine->prefill(sequence, tokens, options, cancel.get());
      },
      [logits](Napi::Env env) -> Napi::Value { return FromFloats(env, *logits); }, "tidal.prefill");
}

// compactSequence(sequence, ranges: [start, count][]) -> Promise<void>
Napi::Value EngineWrap::CompactSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  auto ranges = ToRanges(env, info.Length() > 1 ? info[1] : env.Undefined());
  return PromiseWorker::Start(
      env, [engine, sequence, ranges = std::move(ranges)] { engine->compact_sequence(sequence, ranges); },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, "tidal.compactSequence");
}

// saveSequence(sequence, path, { cancel }?) -> Promise<number> (bytes written)
Napi::Value EngineWrap::SaveSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  std::string path = ToPath(env, info.Length() > 1 ? info[1] : env.Undefined(), "saveSequence(sequence, path)");
  std::shared_ptr<std::atomic<bool>> cancel;
  if (info.Length() > 2 && info[2].IsObject())
    cancel = CancelToken::FromValue(env, info[2].As<Napi::Object>().Get("cancel"));
  auto bytes = std::make_shared<size_t>(0);
  return PromiseWorker::Start(
      env, [engine, sequence, path, bytes, cancel] { *bytes = engine->save_sequence(sequence, path, cancel.get()); },
      [bytes](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*bytes)); }, "tidal.saveSequence");
}

// loadSequence(path) -> Promise<number> (the new sequence's id)
Napi::Value EngineWrap::LoadSequence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  std::string path = ToPath(env, info.Length() > 0 ? info[0] : env.Undefined(), "loadSequence(path)");
  auto id = std::make_shared<tidal::SequenceId>(0);
  return PromiseWorker::Start(
      env, [engine, path, id] { *id = engine->load_sequence(path); },
      [id](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*id)); }, "tidal.loadSequence");
}

// decode(sequence, token, attention?) -> Promise<Float32Array>
Napi::Value EngineWrap::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  Napi::Array one = Napi::Array::New(env, 1);
  one.Set(uint32_t(0), info[1]);
  int32_t token = ToTokens(env, one, info_.vocab_size, "token")[0];
  tidal::AttentionOptions attention = ToAttentionOptions(env, info.Length() > 2 ? info[2] : env.Undefined());
  auto logits = std::make_shared<std::vector<float>>();
  return PromiseWorker::Start(
      env, [engine, sequence, token, attention, logits] { *logits = engine->decode(sequence, token, attention); },
      [logits](Napi::Env env) -> Napi::Value { return FromFloats(env, *logits); }, "tidal.decode");
}

// generate(sequence, prompt, options, onToken?, cancel?) -> Promise<GenerateResult>
Napi::Value EngineWrap::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto engine = Require(env);
  tidal::SequenceId sequence = SequenceArg(env, info[0]);
  std::vector<int32_t> prompt = ToTokens(env, info[1], info_.vocab_size, "prompt");
  tidal::GenerateOptions options = ToGenerateOptions(env, info.Length() > 2 ? info[2] : env.Undefined());
  Napi::Function on_token;
  if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
    if (!info[3].IsFunction()) throw Napi::TypeError::New(env, "onToken must be a function");
    on_token = info[3].As<Napi::Function>();
  }
  auto cancel = CancelToken::FromValue(env, info.Length() > 4 ? info[4] : env.Undefined());
  // A private flag when none was given, so a throwing callback can still stop the run.
  if (!cancel) cancel = std::make_shared<std::atomic<bool>>(false);
  auto* worker = new GenerateWorker(env, engine, sequence, std::move(prompt), std::move(options), on_token, cancel);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// unload() -> Promise<void>: drops this object's hold on the engine; a request in flight
// keeps it alive until it ends, then the weights and caches are freed.
Napi::Value EngineWrap::Unload(const Napi::CallbackInfo& info) {
  auto engine = std::move(engine_);
  engine_.reset();
  return PromiseWorker::Start(
      info.Env(), [engine]() mutable { engine.reset(); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); },
      "tidal.unload");
}

}  // namespace tidal_addon
