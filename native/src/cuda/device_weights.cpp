#include "cuda/device_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/cuda_error.h"
#include "kernels/random_fill.h"
#include "model/half.h"

namespace tidal::cuda {

namespace {

// Copies a matrix to the device as bf16, starting at row `row_offset` of `target`. Other
// types (f32, f16, the block-quantised ones) are converted on the host, a slice of rows at a
// time.
void upload_matrix(const cpu::MatrixView& m, uint16_t* target, cudaStream_t stream) {
  const size_t count = static_cast<size_t>(m.rows * m.cols);
  if (m.dtype == DType::BF16) {
    throw_if_failed(cudaMemcpyAsync(target, m.data, count * 2, cudaMemcpyHostToDevice, stream), "uploading weights");
    throw_if_failed(cudaStreamSynchronize(stream), "uploading weights");
    return;
  }
  const int64_t slice_rows = std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(m.cols, 1));
  const size_t stored_row_bytes = dtype_bytes(m.dtype, m.cols);
  std::vector<float> values;
  std::vector<uint16_t> staging;
  for (int64_t first = 0; first < m.rows; first += slice_rows) {
    const int64_t rows = std::min(slice_rows, m.rows - first);
    const size_t n = static_cast<size_t>(rows * m.cols);
    values.resize(n);
    staging.resize(n);
    convert_to_f32(m.dtype, static_cast<const uint8_t*>(m.data) + static_cast<size_t>(first) * stored_row_bytes,
                   values.data(), n);
    for (size_t i = 0; i < n; ++i) staging[i] = f32_to_bf16(values[i]);
    throw_if_failed(cudaMemcpyAsync(target + static_cast<size_t>(first * m.cols), staging.data(), n * 2,
                                    cudaMemcpyHostToDevice, stream),
                    "uploading weights");
    throw_if_failed(cudaStreamSynchronize(stream), "uploading weights");
  }
}

void allocate_layer(const ModelConfig& config, DeviceLayer& d) {
  const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  d.qkv = DeviceBuffer(static_cast<size_t>((q_size + 2 * kv_size) * hidden) * 2, "the q|k|v matrices");
  d.o = DeviceBuffer(static_cast<size_t>(hidden * q_size) * 2, "o_proj");
  d.gate_up = DeviceBuffer(static_cast<size_t>(2 * inner * hidden) * 2, "the gate|up matrices");
  d.down = DeviceBuffer(static_cast<size_t>(hidden * inner) * 2, "down_proj");
}

}  // namespace

DeviceBuffer upload_floats(const std::vector<float>& values, const char* what) {
  if (values.empty()) return {};
  DeviceBuffer buffer(values.size() * sizeof(float), what);
  throw_if_failed(cudaMemcpy(buffer.get(), values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice), what);
  return buffer;
}

void DeviceWeights::upload(const ModelConfig& config, const ModelWeights& weights, cudaStream_t stream) {
  const int64_t q = config.num_heads * config.head_dim, kv = config.num_kv_heads * config.head_dim;
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  layers.resize(static_cast<size_t>(config.num_layers));
  embed = DeviceBuffer(static_cast<size_t>(config.vocab_size * hidden) * 2, "the embedding matrix");
  upload_matrix(weights.embed_tokens, embed.get<uint16_t>(), stream);
  if (weights.lm_head.data != weights.embed_tokens.data) {
    lm_head = DeviceBuffer(static_cast<size_t>(config.vocab_size * hidden) * 2, "the output matrix");
    upload_matrix(weights.lm_head, lm_head.get<uint16_t>(), stream);
  }
  final_norm = upload_floats(weights.final_norm, "the final norm");
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    DeviceLayer& d = layers[l];
    allocate_layer(config, d);
    uint16_t* qkv = d.qkv.get<uint16_t>();
    upload_matrix(w.q_proj, qkv, stream);
    upload_matrix(w.k_proj, qkv + q * hidden, stream);
    upload_matrix(w.v_proj, qkv + (q + kv) * hidden, stream);
    upload_matrix(w.o_proj, d.o.get<uint16_t>(), stream);
    upload_matrix(w.gate_proj, d.gate_up.get<uint16_t>(), stream);
    upload_matrix(w.up_proj, d.gate_up.get<uint16_t>() + inner * hidden, stream);
    upload_matrix(w.down_proj, d.down.get<uint16_t>(), stream);
    d.input_norm = upload_floats(w.input_norm, "a norm");
    d.post_norm = upload_floats(w.post_attention_norm, "a norm");
    if (!w.q_bias.empty()) {
      std::vector<float> bias(w.q_bias);
      bias.insert(bias.end(), w.k_bias.begin(), w.k_bias.end());
      bias.insert(bias.end(), w.v_bias.begin(), w.v_bias.end());
      d.qkv_bias = upload_floats(bias, "a bias");
    }
    d.o_bias = upload_floats(w.o_bias, "a bias");
    d.q_norm = upload_floats(w.q_norm, "a norm");
    d.k_norm = upload_floats(w.k_norm, "a norm");
  }
}

void DeviceWeights::randomize(const ModelConfig& config, uint64_t seed, cudaStream_t stream) {
  const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  layers.resize(static_cast<size_t>(config.num_layers));
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  auto fill = [&](DeviceBuffer& b, float center, float half) {
    throw_if_failed(cuda::launch_fill_uniform_bf16(b.get<uint16_t>(), b.bytes() / 2, center, half, seed++, stream),
                    "filling random weights");
  };
  auto fill_f32 = [&](DeviceBuffer& b, float center, float half) {
    throw_if_failed(cuda::launch_fill_uniform_f32(b.get<float>(), b.bytes() / 4, center, half, seed++, stream),
                    "filling random weights");
  };
  auto fan_in = [](int64_t cols) { return static_cast<float>(std::sqrt(3.0 / static_cast<double>(cols))); };
  embed = DeviceBuffer(static_cast<size_t>(config.vocab_size * hidden) * 2, "the embedding matrix");
  fill(embed, 0.0f, 1.0f);
  if (!config.tie_word_embeddings) {
    lm_head = DeviceBuffer(static_cast<size_t>(config.vocab_size * hidden) * 2, "the output matrix");
    fill(lm_head, 0.0f, fan_in(hidden));
  }
  final_norm = DeviceBuffer(static_cast<size_t>(hidden) * 4, "the final norm");
  fill_f32(final_norm, 1.0f, 0.1f);
  for (DeviceLayer& d : layers) {
    allocate_layer(config, d);
    fill(d.qkv, 0.0f, fan_in(hidden));
    fill(d.o, 0.0f, fan_in(q_size));
    fill(d.gate_up, 0.0f, fan_in(hidden));
    fill(d.down, 0.0f, fan_in(inner));
    d.input_norm = DeviceBuffer(static_cast<size_t>(hidden) * 4, "a norm");
    d.post_norm = DeviceBuffer(static_cast<size_t>(hidden) * 4, "a norm");
    fill_f32(d.input_norm, 1.0f, 0.1f);
    fill_f32(d.post_norm, 1.0f, 0.1f);
    if (config.attention_bias) {
      d.qkv_bias = DeviceBuffer(static_cast<size_t>(q_size + 2 * kv_size) * 4, "a bias");
      fill_f32(d.qkv_bias, 0.0f, 0.02f);
    }
    if (config.qk_norm) {
      d.q_norm = DeviceBuffer(static_cast<size_t>(config.head_dim) * 4, "a norm");
      d.k_norm = DeviceBuffer(static_cast<size_t>(config.head_dim) * 4, "a norm");
      fill_f32(d.q_norm, 1.0f, 0.1f);
      fill_f32(d.k_norm, 1.0f, 0.1f);
    }
  }
  throw_if_failed(cudaStreamSynchronize(stream), "filling random weights");
}

size_t DeviceWeights::decode_bytes() const {
  size_t bytes = (lm_head.bytes() ? lm_head.bytes() : embed.bytes()) + final_norm.bytes();
  for (const DeviceLayer& d : layers)
    bytes +=
        d.qkv.bytes() + d.o.bytes() + d.gate_up.bytes() + d.down.bytes() + d.input_norm.bytes() + d.post_norm.bytes();
  return bytes;
}

}  // namespace tidal::cuda
