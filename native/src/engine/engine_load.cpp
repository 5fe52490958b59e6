#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/platform_io.h"
#include "engine/tensor_source.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/weight_store.h"
#include "tidal/engine.h"
#include "tidal/error.h"

namespace tidal {

namespace {

enum class ModelPathKind { Folder, GgufFile };

// A folder is read as a Hugging Face model folder, a file must be GGUF; anything else is
// refused here, before a file is mistaken for a folder ("config.json: Not a directory").
ModelPathKind model_path_kind(const std::string& path) {
  const platform::FileStatus info = platform::status(path);
  if (info.kind == platform::FileKind::kMissing)
    throw ModelError("model path '" + path + "' does not exist; give a model folder (config.json and " +
                     "*.safetensors) or a .gguf file");
  if (info.kind == platform::FileKind::kDirectory) return ModelPathKind::Folder;
  if (info.kind != platform::FileKind::kRegular)
    throw ModelError("'" + path + "' is neither a file nor a folder; give a model folder or a .gguf file");
  std::ifstream in = platform::open_input_stream(path);
  if (!in) throw ModelError("cannot open '" + path + "': " + std::strerror(errno));
  uint8_t head[16] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const size_t size = static_cast<size_t>(in.gcount());
  if (size >= 4 && std::memcmp(head, "GGUF", 4) == 0) return ModelPathKind::GgufFile;
  const std::string found = size < 4 ? "it is " + std::to_string(info.size) + " bytes, too short for the magic"
                                     : "bad magic: " + describe_gguf_magic(head, size);
  throw ModelError("'" + path + "' is not a GGUF file (" + found + ") nor a model folder; give a .gguf file, or " +
                   "the folder that holds config.json and the safetensors weights");
}

}  // namespace

// `model_dir` is a Hugging Face model folder, or a single .gguf file.
std::unique_ptr<Engine> Engine::load(const std::string& model_dir, const EngineOptions& options) {
  if (model_path_kind(model_dir) == ModelPathKind::GgufFile) {
    GgufModel model = GgufModel::open(model_dir);
    ModelConfig config = model.config();
    return from_tensors(config, std::make_shared<GgufTensors>(std::move(model)), options);
  }
  ModelConfig config = load_model_config(model_dir);
  auto tensors = std::make_shared<WeightStoreTensors>(WeightStore::open(model_dir));
  return from_tensors(config, std::move(tensors), options);
}

}  // namespace tidal
