#include <sys/stat.h>

#include <cstring>
#include <fstream>

#include "engine/tensor_source.h"
#include "model/model_config.h"
#include "model/weight_store.h"
#include "tidal/engine.h"

namespace tidal {

namespace {

bool is_gguf_file(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace

// `model_dir` is a Hugging Face model folder, or a single .gguf file.
std::unique_ptr<Engine> Engine::load(const std::string& model_dir, const EngineOptions& options) {
  if (is_gguf_file(model_dir)) {
    GgufModel model = GgufModel::open(model_dir);
    ModelConfig config = model.config();
    return from_tensors(config, std::make_shared<GgufTensors>(std::move(model)), options);
  }
  ModelConfig config = load_model_config(model_dir);
  auto tensors = std::make_shared<WeightStoreTensors>(WeightStore::open(model_dir));
  return from_tensors(config, std::move(tensors), options);
}

}  // namespace tidal
