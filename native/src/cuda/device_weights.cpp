#include "cuda/device_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "cuda/cuda_error.h"
#include "engine/sampler.h"
#include "kernels/random_fill.h"
#include "model/half.h"
#include "model/quant.h"
#include "tidal/error.h"

namespace tidal::cuda {

namespace {

// Bytes of `dequantized` at most. A larger matrix is dequantised and multiplied a slice of rows
// at a time (CudaBackend::product): 64 MiB holds 8192 rows of 4096 values or 2340 of 14336,
// slices that keep prefill's cuBLAS products large, where scratch for Llama-3.1-8B's whole
// gate|up would take 235 MB.
constexpr size_t kDequantizedLimit = size_t(64) << 20;

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

void allocate_bf16(DeviceMatrix& m, int64_t rows, int64_t cols, const char* what) {
  m.rows = rows;
  m.cols = cols;
  m.bf16 = DeviceBuffer(static_cast<size_t>(rows * cols) * 2, what);
}

void allocate_layer(const ModelConfig& config, DeviceLayer& d) {
  const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  allocate_bf16(d.qkv, q_size + 2 * kv_size, hidden, "the q|k|v matrices");
  allocate_bf16(d.o, hidden, q_size, "o_proj");
  allocate_bf16(d.gate_up, 2 * inner, hidden, "the gate|up matrices");
  allocate_bf16(d.down, hidden, inner, "down_proj");
}

// The kernels' format of a matrix stored as `dtype`, if they read it (QuantFormat values are
// the GGUF type ids).
bool quant_format_of(DType dtype, QuantFormat* format) {
  const uint32_t id = static_cast<uint32_t>(ggml_type_of(dtype));
  if (!is_quantized(dtype) || !is_quant_format(id)) return false;
  *format = static_cast<QuantFormat>(id);
  return true;
}

// Consecutive parts of one format and width become one part (their blocks copied into one
// buffer, rows stacked): a one-token product is then one launch for them instead of one per
// part, e.g. q|k|v of a Q8_0 file (or of a Q4_K_M layer whose v_proj is Q4_K) and gate|up.
void merge_parts(std::vector<QuantMatrix>& parts, const char* what, cudaStream_t stream) {
  std::vector<QuantMatrix> merged;
  for (size_t i = 0; i < parts.size();) {
    size_t end = i + 1;
    while (end < parts.size() && parts[end].format == parts[i].format && parts[end].cols == parts[i].cols) ++end;
    if (end == i + 1) {
      merged.push_back(std::move(parts[i]));
      i = end;
      continue;
    }
    QuantMatrix group;
    group.format = parts[i].format;
    group.cols = parts[i].cols;
    size_t bytes = 0;
    for (size_t k = i; k < end; ++k) {
      group.rows += parts[k].rows;
      bytes += parts[k].blocks.bytes();
    }
    group.blocks = DeviceBuffer(bytes, what);
    size_t offset = 0;
    for (size_t k = i; k < end; ++k) {
      throw_if_failed(cudaMemcpyAsync(group.blocks.get<char>() + offset, parts[k].blocks.get(), parts[k].blocks.bytes(),
                                      cudaMemcpyDeviceToDevice, stream),
                      "joining weight matrices");
      offset += parts[k].blocks.bytes();
    }
    throw_if_failed(cudaStreamSynchronize(stream), "joining weight matrices");
    for (size_t k = i; k < end; ++k) parts[k].blocks = DeviceBuffer();
    merged.push_back(std::move(group));
    i = end;
  }
  parts = std::move(merged);
}

// `parts` (stacked by rows) as one device matrix: kept in their blocks when every part is in a
// format the kernels read, else converted to one bf16 matrix.
void upload_parts(DeviceMatrix& m, const std::vector<const cpu::MatrixView*>& parts, bool keep_quantized,
                  const char* what, cudaStream_t stream) {
  m.rows = 0;
  m.cols = parts.front()->cols;
  bool quantized = keep_quantized;
  for (const cpu::MatrixView* part : parts) {
    QuantFormat format;
    quantized = quantized && quant_format_of(part->dtype, &format);
    m.rows += part->rows;
  }
  if (!quantized) {
    m.bf16 = DeviceBuffer(static_cast<size_t>(m.rows * m.cols) * 2, what);
    int64_t row = 0;
    for (const cpu::MatrixView* part : parts) {
      upload_matrix(*part, m.bf16.get<uint16_t>() + row * m.cols, stream);
      row += part->rows;
    }
    return;
  }
  for (const cpu::MatrixView* part : parts) {
    QuantMatrix q;
    quant_format_of(part->dtype, &q.format);
    q.rows = part->rows;
    q.cols = part->cols;
    const size_t bytes = static_cast<size_t>(q.rows * quant_row_bytes(q.format, q.cols));
    q.blocks = DeviceBuffer(bytes, what);
    throw_if_failed(cudaMemcpyAsync(q.blocks.get(), part->data, bytes, cudaMemcpyHostToDevice, stream),
                    "uploading weights");
    throw_if_failed(cudaStreamSynchronize(stream), "uploading weights");
    m.parts.push_back(std::move(q));
  }
  merge_parts(m.parts, what, stream);
}

// A matrix's rows into host memory as the embedding's host table: in its blocks when they are
// kept (keep_quantized and a format the kernels read), else bf16 (converted a slice at a time).
void keep_on_host(HostEmbedding& table, const cpu::MatrixView& m, bool keep_quantized) {
  QuantFormat format;
  table.quantized = keep_quantized && quant_format_of(m.dtype, &format);
  if (table.quantized) {
    table.format = format;
    table.row_bytes = quant_row_bytes(format, m.cols);
    const auto* bytes = static_cast<const uint8_t*>(m.data);
    table.rows.assign(bytes, bytes + static_cast<size_t>(m.rows * table.row_bytes));
    return;
  }
  table.row_bytes = m.cols * 2;
  table.rows.resize(static_cast<size_t>(m.rows * table.row_bytes));
  auto* target = reinterpret_cast<uint16_t*>(table.rows.data());
  if (m.dtype == DType::BF16) {
    std::memcpy(target, m.data, table.rows.size());
    return;
  }
  const int64_t slice_rows = std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(m.cols, 1));
  const size_t stored_row_bytes = dtype_bytes(m.dtype, m.cols);
  std::vector<float> values;
  for (int64_t first = 0; first < m.rows; first += slice_rows) {
    const int64_t rows = std::min(slice_rows, m.rows - first);
    const size_t n = static_cast<size_t>(rows * m.cols);
    values.resize(n);
    convert_to_f32(m.dtype, static_cast<const uint8_t*>(m.data) + static_cast<size_t>(first) * stored_row_bytes,
                   values.data(), n);
    for (size_t i = 0; i < n; ++i) target[static_cast<size_t>(first * m.cols) + i] = f32_to_bf16(values[i]);
  }
}

}  // namespace

void HostEmbedding::gather(const int32_t* tokens, int64_t count, uint8_t* out) const {
  const size_t bytes = static_cast<size_t>(row_bytes);
  for (int64_t t = 0; t < count; ++t)
    std::memcpy(out + static_cast<size_t>(t) * bytes, rows.data() + static_cast<size_t>(tokens[t]) * bytes, bytes);
}

DeviceBuffer upload_floats(const std::vector<float>& values, const char* what) {
  if (values.empty()) return {};
  DeviceBuffer buffer(values.size() * sizeof(float), what);
  throw_if_failed(cudaMemcpy(buffer.get(), values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice), what);
  return buffer;
}

size_t DeviceMatrix::bytes() const {
  size_t total = bf16.bytes();
  for (const QuantMatrix& part : parts) total += part.blocks.bytes();
  return total;
}

void DeviceWeights::upload(const ModelConfig& config, const ModelWeights& weights, bool keep_quantized,
                           bool embedding_on_host, cudaStream_t stream) {
  layers.resize(static_cast<size_t>(config.num_layers));
  // Tied (the binding points lm_head at the embedding): the embedding is the output matrix.
  const bool tied = weights.lm_head.data == weights.embed_tokens.data;
  if (tied || !embedding_on_host) {
    upload_parts(embed, {&weights.embed_tokens}, keep_quantized, "the embedding matrix", stream);
  } else {
    keep_on_host(host_embed, weights.embed_tokens, keep_quantized);
  }
  if (!tied) upload_parts(lm_head, {&weights.lm_head}, keep_quantized, "the output matrix", stream);
  final_norm = upload_floats(weights.final_norm, "the final norm");
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    DeviceLayer& d = layers[l];
    upload_parts(d.qkv, {&w.q_proj, &w.k_proj, &w.v_proj}, keep_quantized, "the q|k|v matrices", stream);
    upload_parts(d.o, {&w.o_proj}, keep_quantized, "o_proj", stream);
    upload_parts(d.gate_up, {&w.gate_proj, &w.up_proj}, keep_quantized, "the gate|up matrices", stream);
    upload_parts(d.down, {&w.down_proj}, keep_quantized, "down_proj", stream);
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
  allocate_dequantized();
}

void DeviceWeights::randomize(const ModelConfig& config, uint64_t seed, bool embedding_on_host, cudaStream_t stream) {
  randomize_parts(config, seed, true, stream);
  if (embedding_on_host && !config.tie_word_embeddings) {
    // The same random values, moved to the host.
    host_embed.quantized = false;
    host_embed.row_bytes = config.hidden_size * 2;
    host_embed.rows.resize(embed.bf16.bytes());
    throw_if_failed(cudaMemcpy(host_embed.rows.data(), embed.bf16.get(), embed.bf16.bytes(), cudaMemcpyDeviceToHost),
                    "moving the embedding to the host");
    embed = DeviceMatrix();
  }
}

// Norms and biases, and with bf16_matrices the embedding, output and layer matrices in bf16.
void DeviceWeights::randomize_parts(const ModelConfig& config, uint64_t seed, bool bf16_matrices, cudaStream_t stream) {
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
  if (bf16_matrices) {
    allocate_bf16(embed, config.vocab_size, hidden, "the embedding matrix");
    fill(embed.bf16, 0.0f, 1.0f);
    if (!config.tie_word_embeddings) {
      allocate_bf16(lm_head, config.vocab_size, hidden, "the output matrix");
      fill(lm_head.bf16, 0.0f, fan_in(hidden));
    }
  }
  final_norm = DeviceBuffer(static_cast<size_t>(hidden) * 4, "the final norm");
  fill_f32(final_norm, 1.0f, 0.1f);
  for (DeviceLayer& d : layers) {
    if (bf16_matrices) {
      allocate_layer(config, d);
      fill(d.qkv.bf16, 0.0f, fan_in(hidden));
      fill(d.o.bf16, 0.0f, fan_in(q_size));
      fill(d.gate_up.bf16, 0.0f, fan_in(hidden));
      fill(d.down.bf16, 0.0f, fan_in(inner));
    }
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

namespace {
// llama.cpp's use_more_bits: the layers whose v_proj and down_proj its Q4_K_M stores in Q6_K.
bool more_bits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}
}  // namespace

void DeviceWeights::randomize_quantized(const ModelConfig& config, const std::string& mix, uint64_t seed,
                                        bool embedding_on_host, cudaStream_t stream) {
  if (mix != "q8_0" && mix != "q4_k_m")
    throw RequestError("random weights '" + mix + "' are not one of bf16, q8_0, q4_k_m");
  randomize_parts(config, seed, false, stream);  // norms and biases; the matrices below
  const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  const bool k_quants = mix == "q4_k_m";
  const QuantFormat main = k_quants ? QuantFormat::Q4_K : QuantFormat::Q8_0;
  const QuantFormat wide = k_quants ? QuantFormat::Q6_K : QuantFormat::Q8_0;
  std::map<std::tuple<int, int64_t, int64_t>, std::vector<uint8_t>> host;  // (format, rows, cols) -> blocks
  SamplingRandom random(seed);
  auto blocks_of = [&](QuantFormat format, int64_t rows, int64_t cols) -> const std::vector<uint8_t>& {
    if (cols % quant_block_elements(format) != 0)
      throw RequestError("random weights '" + mix + "' need rows of whole " +
                         std::to_string(quant_block_elements(format)) + "-value blocks; this shape has rows of " +
                         std::to_string(cols) + " values");
    std::vector<uint8_t>& blocks = host[{static_cast<int>(format), rows, cols}];
    if (blocks.empty()) {
      // A slice of rows at a time: a vocabulary-sized matrix in float32 would take gigabytes.
      const double half = std::sqrt(3.0 / static_cast<double>(cols));
      const int64_t row_bytes = quant_row_bytes(format, cols);
      const int64_t slice_rows = std::max<int64_t>(1, (int64_t(16) << 20) / cols);
      blocks.resize(static_cast<size_t>(rows * row_bytes));
      std::vector<float> values;
      for (int64_t first = 0; first < rows; first += slice_rows) {
        const int64_t count = std::min(slice_rows, rows - first);
        values.resize(static_cast<size_t>(count * cols));
        for (float& v : values) v = static_cast<float>(half * (2.0 * random.uniform() - 1.0));
        quantize_from_f32(static_cast<GgmlType>(format), values.data(), values.size(),
                          blocks.data() + first * row_bytes);
      }
    }
    return blocks;
  };
  auto part = [&](QuantFormat format, int64_t rows, int64_t cols) {
    const std::vector<uint8_t>& blocks = blocks_of(format, rows, cols);
    QuantMatrix q;
    q.format = format;
    q.rows = rows;
    q.cols = cols;
    q.blocks = DeviceBuffer(blocks.size(), "random quantised weights");
    throw_if_failed(cudaMemcpyAsync(q.blocks.get(), blocks.data(), blocks.size(), cudaMemcpyHostToDevice, stream),
                    "uploading weights");
    throw_if_failed(cudaStreamSynchronize(stream), "uploading weights");
    return q;
  };
  auto quantized = [&](DeviceMatrix& m, std::vector<QuantMatrix> parts) {
    m.bf16 = DeviceBuffer();
    m.rows = 0;
    m.cols = parts.front().cols;
    for (const QuantMatrix& p : parts) m.rows += p.rows;
    m.parts = std::move(parts);
    merge_parts(m.parts, "random quantised weights", stream);
  };
  for (size_t l = 0; l < layers.size(); ++l) {
    DeviceLayer& d = layers[l];
    const QuantFormat sensitive = more_bits(static_cast<int64_t>(l), config.num_layers) ? wide : main;
    std::vector<QuantMatrix> qkv;
    qkv.push_back(part(main, q_size, hidden));
    qkv.push_back(part(main, kv_size, hidden));
    qkv.push_back(part(sensitive, kv_size, hidden));
    quantized(d.qkv, std::move(qkv));
    std::vector<QuantMatrix> o;
    o.push_back(part(main, hidden, q_size));
    quantized(d.o, std::move(o));
    std::vector<QuantMatrix> gate_up;
    gate_up.push_back(part(main, inner, hidden));
    gate_up.push_back(part(main, inner, hidden));
    quantized(d.gate_up, std::move(gate_up));
    std::vector<QuantMatrix> down;
    down.push_back(part(sensitive, hidden, inner));
    quantized(d.down, std::move(down));
  }
  // The embedding in the mix's main format, as llama.cpp stores token_embd; when it is the
  // output too (tied), in the output's format.
  if (embedding_on_host && !config.tie_word_embeddings) {
    host_embed.quantized = true;
    host_embed.format = main;
    host_embed.row_bytes = quant_row_bytes(main, hidden);
    host_embed.rows = blocks_of(main, config.vocab_size, hidden);
  } else {
    std::vector<QuantMatrix> embedding;
    embedding.push_back(part(config.tie_word_embeddings ? wide : main, config.vocab_size, hidden));
    quantized(embed, std::move(embedding));
  }
  if (!config.tie_word_embeddings) {
    std::vector<QuantMatrix> head;
    head.push_back(part(wide, config.vocab_size, hidden));
    quantized(lm_head, std::move(head));
  }
  allocate_dequantized();
}

void DeviceWeights::set_dequantized_limit(size_t bytes) {
  dequantized_limit_ = bytes;
  allocate_dequantized();
}

void DeviceWeights::allocate_dequantized() {
  // Products dequantise one part at a time: the largest part bounds what is needed.
  int64_t largest = 0, widest = 0;
  std::vector<const DeviceMatrix*> matrices = {&output()};
  for (const DeviceLayer& d : layers) matrices.insert(matrices.end(), {&d.qkv, &d.o, &d.gate_up, &d.down});
  for (const DeviceMatrix* m : matrices)
    for (const QuantMatrix& part : m->parts) {
      largest = std::max(largest, part.rows * part.cols);
      widest = std::max(widest, part.cols);
    }
  dequantized = DeviceBuffer();
  if (largest == 0) return;
  const int64_t limit = static_cast<int64_t>((dequantized_limit_ ? dequantized_limit_ : kDequantizedLimit) / 2);
  const int64_t values = std::max(std::min(largest, limit), widest);
  dequantized = DeviceBuffer(static_cast<size_t>(values) * 2, "dequantised weights for prefill");
}

size_t DeviceWeights::decode_bytes() const {
  size_t bytes = output().bytes() + final_norm.bytes();
  for (const DeviceLayer& d : layers)
    bytes +=
        d.qkv.bytes() + d.o.bytes() + d.gate_up.bytes() + d.down.bytes() + d.input_norm.bytes() + d.post_norm.bytes();
  return bytes;
}

size_t DeviceWeights::bytes() const {
  size_t total = embed.bytes() + lm_head.bytes() + final_norm.bytes();
  for (const DeviceLayer& d : layers)
    for (size_t b : {d.qkv.bytes(), d.o.bytes(), d.gate_up.bytes(), d.down.bytes(), d.input_norm.bytes(),
                     d.post_norm.bytes(), d.qkv_bias.bytes(), d.o_bias.bytes(), d.q_norm.bytes(), d.k_norm.bytes()})
      total += b;
  return total;
}

}  // namespace tidal::cuda
