// Engine::save_sequence and load_sequence: a sequence to and from a KV file (engine/kv_file.h),
// and the checks that a file fits this engine before any K/V is read.
#include <string>

#include "engine/engine_impl.h"
#include "tidal/error.h"

namespace tidal {

namespace {

const ModelFingerprint& fingerprint_of(Engine::Impl& engine) {
  if (!engine.fingerprint) engine.fingerprint = model_fingerprint(engine.config, engine.weights);
  return *engine.fingerprint;
}

void check_fits(Engine::Impl& engine, const KvFileReader& file, const std::string& path) {
  const KvFileHeader& h = file.header();
  const std::string difference = fingerprint_difference(h.model, fingerprint_of(engine));
  if (!difference.empty())
    throw RequestError("KV file '" + path + "' was saved for another model (" + difference +
                       "); it cannot be used with this one");
  const std::string backend = engine.backend->name(), dtype = engine.backend->kv_dtype();
  if (h.backend != backend || h.kv_dtype != dtype)
    throw RequestError("KV file '" + path + "' was saved by the " + h.backend + " backend (" + h.kv_dtype +
                       " K/V); this engine runs the " + backend + " backend (" + dtype +
                       " K/V): load it with that backend, or prefill the tokens again");
  if (h.layers != engine.config.num_layers || h.kv_heads != engine.config.num_kv_heads ||
      h.head_dim != engine.config.head_dim)
    throw RequestError("KV file '" + path + "' holds K/V of another shape (layers, kv heads, head dim " +
                       std::to_string(h.layers) + ", " + std::to_string(h.kv_heads) + ", " +
                       std::to_string(h.head_dim) + ")");
  if (h.token_count > engine.info.max_context)
    throw RequestError("KV file '" + path + "' holds " + std::to_string(h.token_count) +
                       " tokens, more than this engine's context limit of " + std::to_string(engine.info.max_context) +
                       " (raise max_context)");
  if (h.logits_count != 0 && h.logits_count != engine.vocab())
    throw RequestError("KV file '" + path + "' is corrupt: it holds " + std::to_string(h.logits_count) +
                       " logits for a vocabulary of " + std::to_string(engine.vocab()));
  for (size_t i = 0; i < file.tokens().size(); ++i) {
    const int32_t token = file.tokens()[i];
    if (token < 0 || token >= engine.vocab())
      throw RequestError("KV file '" + path + "' holds token id " + std::to_string(token) + " at index " +
                         std::to_string(i) + ", outside the vocabulary [0, " + std::to_string(engine.vocab()) + ")");
  }
}

// Passes K/V pieces on to the file unless the caller cancelled the save.
class CancellableSink final : public KvByteSink {
 public:
  CancellableSink(KvByteSink& inner, const std::atomic<bool>* cancel) : inner_(inner), cancel_(cancel) {}
  void write(const void* data, size_t bytes) override {
    if (cancel_ && cancel_->load()) throw CancelledError("the save was cancelled");
    inner_.write(data, bytes);
  }

 private:
  KvByteSink& inner_;
  const std::atomic<bool>* cancel_;
};

}  // namespace

size_t Engine::save_sequence(SequenceId id, const std::string& path, const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Impl& engine = *impl_;
  const Sequence& sequence = engine.find(id);
  KvFileHeader header;
  header.backend = engine.backend->name();
  header.kv_dtype = engine.backend->kv_dtype();
  header.layers = engine.config.num_layers;
  header.kv_heads = engine.config.num_kv_heads;
  header.head_dim = engine.config.head_dim;
  header.model = fingerprint_of(engine);
  header.token_count = static_cast<int64_t>(sequence.tokens.size());
  header.cached_count = sequence.cache->length();
  const bool with_logits = sequence.logits_valid && header.cached_count > 0;
  header.logits_count = with_logits ? engine.vocab() : 0;
  header.first_sparse_position =
      sequence.first_sparse_position == Sequence::kNoSparsePosition ? -1 : sequence.first_sparse_position;
  return write_kv_file(path, header, sequence.tokens, with_logits ? sequence.logits : std::vector<float>{},
                       [&](KvByteSink& sink) {
                         CancellableSink checked(sink, cancel);
                         engine.backend->save_kv(*sequence.cache, checked);
                       });
}

SequenceId Engine::load_sequence(const std::string& path) {
  std::lock_guard<std::mutex> lock(impl_->request_mutex);
  Impl& engine = *impl_;
  KvFileReader file(path);
  check_fits(engine, file, path);
  const KvFileHeader& h = file.header();
  auto sequence = std::make_unique<Sequence>();
  sequence->tokens = file.tokens();
  sequence->cache = engine.backend->create_kv_cache();
  engine.backend->load_kv(*sequence->cache, h.cached_count, file.kv());
  if (file.kv_bytes_read() != file.kv_bytes())
    throw Error("the " + std::string(engine.backend->name()) + " backend read " + std::to_string(file.kv_bytes_read()) +
                " of the " + std::to_string(file.kv_bytes()) + " K/V bytes of '" + path + "'");
  if (h.logits_count > 0) {
    sequence->logits = file.logits();
    sequence->logits_valid = true;
  }
  if (h.first_sparse_position >= 0 && h.first_sparse_position < h.cached_count)
    sequence->first_sparse_position = h.first_sparse_position;
  return engine.add(std::move(sequence));
}

}  // namespace tidal
