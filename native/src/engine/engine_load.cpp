#include "engine/tensor_source.h"
#include "model/model_config.h"
#include "model/weight_store.h"
#include "tidal/engine.h"

namespace tidal {

std::unique_ptr<Engine> Engine::load(const std::string& model_dir, const EngineOptions& options) {
  ModelConfig config = load_model_config(model_dir);
  auto tensors = std::make_shared<WeightStoreTensors>(WeightStore::open(model_dir));
  return from_tensors(config, std::move(tensors), options);
}

}  // namespace tidal
