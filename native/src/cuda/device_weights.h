// The model's weights on the device, by job apart from the forward: upload (conversion to bf16
// and fusion of q|k|v and gate|up into one matrix each, so a layer does 4 matrix products) or
// random generation for benchmarks without a checkpoint.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "cuda/device_buffer.h"
#include "engine/model_weights.h"
#include "model/model_config.h"

namespace tidal::cuda {

struct DeviceLayer {
  DeviceBuffer qkv, o, gate_up, down;             // bf16 matrices
  DeviceBuffer input_norm, post_norm;             // fp32 [hidden]
  DeviceBuffer qkv_bias, o_bias, q_norm, k_norm;  // fp32, may be empty
};

// fp32 values in a new device buffer (empty when there are none); synchronous.
DeviceBuffer upload_floats(const std::vector<float>& values, const char* what);

struct DeviceWeights {
  DeviceBuffer embed, lm_head, final_norm;  // bf16 [vocab][hidden] x2 (lm_head empty when tied), fp32
  std::vector<DeviceLayer> layers;

  // Throws OutOfMemoryError when the weights do not fit.
  void upload(const ModelConfig& config, const ModelWeights& weights, cudaStream_t stream);
  // Variance ~1/fan_in, norms near 1, as synthetic_model.h.
  void randomize(const ModelConfig& config, uint64_t seed, cudaStream_t stream);
  const uint16_t* output() const { return lm_head.bytes() ? lm_head.get<uint16_t>() : embed.get<uint16_t>(); }
  // Bytes of the matrices one decode step reads (every layer's weights and the output head).
  size_t decode_bytes() const;
};

}  // namespace tidal::cuda
