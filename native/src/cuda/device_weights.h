// The model's weights on the device, by job apart from the forward: upload (conversion to bf16
// and fusion of q|k|v and gate|up into one matrix each, so a layer does 4 matrix products; or
// GGUF's quantised blocks as they are, the embedding's too) or random generation for
// benchmarks without a checkpoint.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "engine/model_weights.h"
#include "kernels/quant_format.h"
#include "model/model_config.h"

namespace tidal::cuda {

// One block-quantised matrix on the device as the file stores it (kernels/quant_format.h).
struct QuantMatrix {
  QuantFormat format = QuantFormat::Q8_0;
  DeviceBuffer blocks;
  int64_t rows = 0, cols = 0;
};

// A layer matrix: bf16 (q|k|v and gate|up fused into one), or, for a GGUF model whose matrices
// are Q8_0 / Q4_K / Q6_K, those matrices kept in their blocks: parts stacked by rows, each in
// its own format, consecutive matrices of one format joined into one part (q|k|v: 1 to 3
// parts, gate|up: 1 or 2, the others 1).
struct DeviceMatrix {
  DeviceBuffer bf16;
  std::vector<QuantMatrix> parts;
  int64_t rows = 0, cols = 0;
  bool quantized() const { return !parts.empty(); }
  size_t bytes() const;
};

// The embedding table kept in host memory (CudaBackendOptions::embedding_on_host): a step
// needs one row a token, so the rows of a pass are gathered on the host and uploaded with its
// token ids. The device then holds none of it: 0.3 GB of Llama-3.1-8B's Q4_K_M weights, 1 GB
// of its bf16 ones. Only for an untied embedding (a tied one is the output matrix too).
struct HostEmbedding {
  std::vector<uint8_t> rows;  // [vocab][row_bytes]: bf16 values, or blocks in `format`
  bool quantized = false;
  QuantFormat format = QuantFormat::Q8_0;
  int64_t row_bytes = 0;
  bool empty() const { return rows.empty(); }
  // Copies the rows of `tokens` (valid ids) into `out` (count * row_bytes).
  void gather(const int32_t* tokens, int64_t count, uint8_t* out) const;
};

struct DeviceLayer {
  DeviceMatrix qkv, o, gate_up, down;
  DeviceBuffer input_norm, post_norm;             // fp32 [hidden]
  DeviceBuffer qkv_bias, o_bias, q_norm, k_norm;  // fp32, may be empty
};

// fp32 values in a new device buffer (empty when there are none); synchronous.
DeviceBuffer upload_floats(const std::vector<float>& values, const char* what);

struct DeviceWeights {
  // [vocab][hidden]: bf16, or (keep_quantized, a Q8_0 / Q4_K / Q6_K file) one part in its blocks,
  // gathered a row per token by kernels/embedding.cu. Also the output matrix when tied. Empty
  // when the table is in host_embed.
  DeviceMatrix embed;
  HostEmbedding host_embed;
  DeviceBuffer final_norm;  // fp32
  DeviceMatrix lm_head;     // empty when tied to the embedding
  std::vector<DeviceLayer> layers;
  // bf16 rows of quantised matrices dequantised for products of more than one token, a slice
  // of rows at a time (64 MiB at most: set_dequantized_limit); empty when no matrix is
  // quantised.
  DeviceBuffer dequantized;

  // Throws OutOfMemoryError when the weights do not fit. keep_quantized: Q8_0 / Q4_K / Q6_K
  // matrices (the embedding too) stay in their blocks (read by kernels/gemv_quant.cu for one
  // token, dequantised into `dequantized` for more); off, or for other types, every matrix
  // becomes bf16. embedding_on_host: an untied embedding goes to host_embed instead (in its
  // blocks when the matrices stay in theirs, else bf16).
  void upload(const ModelConfig& config, const ModelWeights& weights, bool keep_quantized, bool embedding_on_host,
              cudaStream_t stream);
  // Variance ~1/fan_in, norms near 1, as synthetic_model.h.
  void randomize(const ModelConfig& config, uint64_t seed, bool embedding_on_host, cudaStream_t stream);
  // The same with quantised matrices: "q8_0" (all Q8_0) or "q4_k_m" (llama.cpp's recipe for an
  // 8B-class model: Q4_K, with v_proj and down_proj in Q6_K in the layers its use_more_bits rule
  // picks (the first and last eighth, and every third between: 16 of 32), the output in Q6_K,
  // the embedding in Q4_K, or Q6_K when it is the output too). The blocks are quantised on the
  // host once per matrix shape and format, and every layer gets its own copy.
  void randomize_quantized(const ModelConfig& config, const std::string& mix, uint64_t seed, bool embedding_on_host,
                           cudaStream_t stream);
  // The output matrix: lm_head, or the embedding when tied.
  const DeviceMatrix& output() const { return lm_head.rows ? lm_head : embed; }
  // Bytes of the matrices one decode step reads (every layer's weights and the output head).
  size_t decode_bytes() const;
  // Bytes of every weight on the device (not `dequantized`).
  size_t bytes() const;
  // Bytes of the weights kept in host memory (host_embed).
  size_t host_bytes() const { return host_embed.rows.size(); }
  // Resizes `dequantized` for a bound of `bytes` (0: the 64 MiB default; tests lower it so
  // that products run in many slices).
  void set_dequantized_limit(size_t bytes);

 private:
  // Bytes of `dequantized` at most; 0: kDequantizedLimit (device_weights.cpp).
  size_t dequantized_limit_ = 0;
  void randomize_parts(const ModelConfig& config, uint64_t seed, bool bf16_matrices, cudaStream_t stream);
  // Sizes `dequantized` for the largest quantised matrix, or the limit when that is smaller
  // (at least one row of the widest), empty when none is quantised.
  void allocate_dequantized();
};

}  // namespace tidal::cuda
