#include "webgpu/webgpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu/rope.h"
#include "engine/decoder.h"
#include "model/rope_frequencies.h"
#include "tidal/error.h"
#include "webgpu/webgpu_device.h"
#include "webgpu/webgpu_kv_cache.h"

namespace tidal {

namespace {

constexpr uint64_t kFloat = sizeof(float);
// Weight buffers stay at most this large (the largest binding of many devices, and a bounded
// copy through JavaScript when they are uploaded).
constexpr uint64_t kMaxWeightBandBytes = uint64_t{256} << 20;

uint32_t u32(int64_t value) { return static_cast<uint32_t>(value); }

// A weight matrix on the device, in row bands that each fit one buffer binding.
struct DeviceMatrix {
  struct Band {
    uint32_t buffer;
    int64_t first_row, rows;
  };
  TapeWeightType type = TapeWeightType::F32;
  int64_t rows = 0, cols = 0;
  std::vector<Band> bands;
};

// The matrices of one product (q|k|v, gate|up, or one matrix): runs of the same stored type
// stacked by rows into one DeviceMatrix each, with the first output column of each run.
struct DeviceProduct {
  std::vector<std::pair<DeviceMatrix, int64_t>> runs;
};

struct DeviceLayer {
  uint32_t input_norm = 0, post_attention_norm = 0;
  DeviceProduct qkv, o, gate_up, down;
  uint32_t o_bias = 0;
  // q|k|v biases then q|k norm weights, back to back (whichever the model has), and which are there.
  uint32_t qkv_extras = 0, qkv_extras_flags = 0;
};

constexpr uint32_t kQkvBias = 1, kQkNorm = 2;

// How a matrix of `dtype` and `cols` columns is kept on the device: as stored where the kernels
// read that type and rows stay 4-byte aligned, else widened to f32.
TapeWeightType device_type(DType dtype, int64_t cols) {
  const bool aligned = dtype_bytes(dtype, cols) % 4 == 0;
  switch (dtype) {
    case DType::F16:
      return aligned ? TapeWeightType::F16 : TapeWeightType::F32;
    case DType::BF16:
      return aligned ? TapeWeightType::BF16 : TapeWeightType::F32;
    case DType::Q8_0:
      return aligned ? TapeWeightType::Q8_0 : TapeWeightType::F32;
    case DType::Q4_K:
      return aligned ? TapeWeightType::Q4_K : TapeWeightType::F32;
    case DType::Q6_K:
      return aligned ? TapeWeightType::Q6_K : TapeWeightType::F32;
    default:
      return TapeWeightType::F32;
  }
}

uint32_t policy_word(SelectionPolicy policy) {
  switch (policy) {
    case SelectionPolicy::PerKvHeadMax:
      return 1;
    case SelectionPolicy::PerKvHeadSum:
      return 2;
    case SelectionPolicy::PerQueryHead:
      break;
  }
  return 0;
}

class WebGpuBackend final : public Backend, public DecoderOps {
 public:
  WebGpuBackend(const ModelConfig& config, const ModelWeights& weights, const WebGpuBackendOptions& options)
      : config_(config),
        weights_(weights),
        device_(std::make_shared<WebGpuDevice>(options.executor, options.max_kv_bytes)),
        max_positions_(options.max_positions),
        inverse_frequencies_(config.rope_frequencies) {
    check_rope_frequencies(config);
    upload_weights();
  }

  // Its buffers are freed on the device when the device goes (after the last cache).
  ~WebGpuBackend() override;

  const char* name() const override { return "webgpu"; }
  int threads() const override { return 1; }
  DecoderOps& decoder_ops() override { return *this; }

  std::unique_ptr<KvCache> create_kv_cache() override {
    return std::make_unique<WebGpuKvCache>(device_, config_.num_layers, kv_size(), max_positions_);
  }
  size_t kv_bytes_in_use() const override { return device_->kv_bytes_in_use(); }
  size_t kv_bytes_peak() const override { return device_->kv_bytes_peak(); }
  size_t kv_bytes_per_token() const override {
    return static_cast<size_t>(2 * config_.num_layers * kv_size()) * sizeof(float);
  }
  const char* kv_dtype() const override { return "f32"; }

  SelectionTrace last_selection_trace() const override;
  void compact(KvCache& cache, const KvRanges& ranges) override;
  void save_kv(const KvCache& cache, KvByteSink& sink) override;
  void load_kv(KvCache& cache, int64_t length, KvByteSource& source) override;

  void forward(KvCache& cache, const int32_t* tokens, int64_t count, const AttentionPlan* plan, LogitsWanted wanted,
               float* logits, ForwardStats* stats, const std::atomic<bool>* cancel) override {
    if (count <= 0) return;
    DecoderPass pass;
    pass.start = cache.length();
    pass.count = count;
    pass.plan = count == 1 ? plan : nullptr;
    pass.logit_rows = wanted == LogitsWanted::All ? count : wanted == LogitsWanted::Last ? 1 : 0;
    pass.cancel = count > 1 ? cancel : nullptr;
    const DecoderRoute route = route_pass(config_, pass);
    begin_pass(cache, tokens, pass);
    logits_destination_ = logits;
    try {
      run_decoder(config_, *this, pass, route);
    } catch (...) {
      logits_destination_ = nullptr;
      end_pass(false);
      throw;
    }
    end_pass(true);
    logits_destination_ = nullptr;
    if (route.selects) traced_positions_ = pass.positions();
    add_stats(stats, route.stats);
  }

  // ---- DecoderOps ----
  void embed(const DecoderPass& pass) override;
  void rms_norm(Activation in, int64_t layer, NormWeight weight, Activation out, int64_t first_row) override;
  void linear(int64_t layer, LayerMatrix matrix, Activation in, Activation out, bool accumulate) override;
  void qkv_rope_append(int64_t layer, const DecoderPass& pass) override;
  void attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) override;
  void select_top_k(const SelectionSpec& selection) override;
  void quest_pages(int64_t layer, const QuestSpec& quest) override;
  void attend_lists(int64_t layer, PositionLists lists, const DecoderPass& pass) override;
  void swiglu() override;
  void logits(int64_t rows) override;

  void begin_pass(KvCache& cache_base, const int32_t* tokens, const DecoderPass& pass) override {
    auto& cache = dynamic_cast<WebGpuKvCache&>(cache_base);
    if (pass.start != cache.length() || pass.count <= 0)
      throw std::logic_error("a pass starts at the cache's length and has tokens");
    cache.reserve(pass.positions());
    cache_ = &cache;
    tokens_ = tokens;
    count_ = pass.count;
    pass_positions_ = pass.positions();
    logit_rows_ = pass.logit_rows;
    size_activations(pass.count, std::max<int64_t>(pass.logit_rows, 1));
  }

  void end_pass(bool keep) override {
    if (keep && logits_destination_ && logit_rows_ > 0)
      device_->read(activation_buffer(Activation::Logits), 0,
                    static_cast<size_t>(logit_rows_ * config_.vocab_size) * sizeof(float), logits_destination_);
    device_->flush();
    if (keep) cache_->commit(pass_positions_);
  }

  void synchronize() override { device_->flush(); }
  void write_activation(Activation activation, int64_t rows, const float* values) override;
  void read_activation(Activation activation, int64_t rows, float* values) override;
  std::vector<std::vector<int32_t>> read_position_lists(PositionLists lists) override;

 private:
  void upload_weights();
  DeviceMatrix upload_matrix(const std::vector<const cpu::MatrixView*>& parts);
  DeviceProduct upload_product(const std::vector<const cpu::MatrixView*>& parts);
  uint32_t upload_vector(const std::vector<float>& values);
  void size_activations(int64_t tokens, int64_t logit_rows);
  // (Re)creates `*id` with room for `bytes` when it has less.
  void ensure(uint32_t* id, uint64_t* capacity, uint64_t bytes);
  uint32_t activation_buffer(Activation a) const;
  void record_product(const DeviceProduct& product, uint32_t bias, uint32_t in, int64_t in_stride, uint32_t out,
                      int64_t out_offset, int64_t out_stride, int64_t tokens, bool accumulate);
  void record_linear(const DeviceMatrix& w, uint32_t bias, uint32_t in, int64_t in_offset, int64_t in_stride,
                     uint32_t out, int64_t out_offset, int64_t out_stride, int64_t tokens, bool accumulate);

  int64_t q_size() const { return config_.num_heads * config_.head_dim; }
  int64_t kv_size() const { return config_.num_kv_heads * config_.head_dim; }
  int64_t qkv_width() const { return q_size() + 2 * kv_size(); }
  float attention_scale() const { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim))); }
  uint32_t eps_word() const { return float_word(static_cast<float>(config_.rms_norm_eps)); }

  ModelConfig config_;
  const ModelWeights& weights_;
  std::shared_ptr<WebGpuDevice> device_;
  int64_t max_positions_;
  std::vector<float> inverse_frequencies_;

  std::vector<DeviceLayer> layers_;
  uint32_t final_norm_ = 0;
  DeviceProduct lm_head_;

  // Activations, row-major [tokens][activation_width], and the pass's RoPE angles
  // [tokens][cos half | sin half]; each buffer with its capacity in bytes.
  struct Buffer {
    uint32_t id = 0;
    uint64_t bytes = 0;
  };
  Buffer residual_, normed_, qkv_, attention_, gate_up_, gated_, logits_buffer_, rope_;
  // Selection scores [heads][positions] of a selection layer, the position lists
  // [heads][stride] (int32) of the last selection and of Quest, and Quest's page bounds scratch.
  Buffer scores_, selected_, quest_lists_, quest_bounds_;
  int64_t selected_stride_ = 0, quest_stride_ = 0, quest_count_ = 0;
  int64_t traced_positions_ = 0;

  WebGpuKvCache* cache_ = nullptr;
  const int32_t* tokens_ = nullptr;
  int64_t count_ = 0, pass_positions_ = 0, logit_rows_ = 0;
  float* logits_destination_ = nullptr;
};

// Matrices of the same width stacked by rows (q|k|v, gate|up: one product for the group).
DeviceMatrix WebGpuBackend::upload_matrix(const std::vector<const cpu::MatrixView*>& parts) {
  DeviceMatrix out;
  const DType dtype = parts[0]->dtype;
  bool same_type = true;
  out.cols = parts[0]->cols;
  for (const cpu::MatrixView* part : parts) {
    if (part->cols != out.cols) throw std::logic_error("stacked matrices differ in width");
    same_type = same_type && part->dtype == dtype;
    out.rows += part->rows;
  }
  out.type = same_type ? device_type(dtype, out.cols) : TapeWeightType::F32;
  const uint64_t row_bytes =
      out.type == TapeWeightType::F32 ? static_cast<uint64_t>(out.cols) * 4 : dtype_bytes(dtype, out.cols);
  const uint64_t band_bytes = std::min<uint64_t>(device_->max_binding_bytes(), kMaxWeightBandBytes);
  const int64_t band_rows = std::max<int64_t>(1, static_cast<int64_t>(band_bytes / row_bytes));
  for (int64_t first = 0; first < out.rows; first += band_rows) {
    const int64_t rows = std::min(band_rows, out.rows - first);
    const uint32_t id = device_->create_buffer(static_cast<uint64_t>(rows) * row_bytes);
    int64_t part_first = 0;  // the part's first row in the stack
    for (const cpu::MatrixView* part : parts) {
      const int64_t begin = std::max(first, part_first), end = std::min(first + rows, part_first + part->rows);
      if (begin < end) {
        const uint64_t at = static_cast<uint64_t>(begin - first) * row_bytes;
        const int64_t local = begin - part_first, count = end - begin;
        if (part->dtype == DType::F32 || out.type != TapeWeightType::F32) {  // as stored
          device_->upload(id, at, static_cast<const uint8_t*>(part->data) + local * row_bytes, count * row_bytes, true);
        } else {
          std::vector<float> widened(static_cast<size_t>(count * out.cols));
          for (int64_t r = 0; r < count; ++r) cpu::load_matrix_row(*part, local + r, widened.data() + r * out.cols);
          device_->upload(id, at, widened.data(), widened.size() * sizeof(float));
        }
      }
      part_first += part->rows;
    }
    out.bands.push_back({id, first, rows});
    device_->flush();  // one band's copy in flight at a time
  }
  return out;
}

WebGpuBackend::~WebGpuBackend() {
  auto free_product = [&](const DeviceProduct& product) {
    for (const auto& run : product.runs)
      for (const DeviceMatrix::Band& band : run.first.bands) device_->free_buffer(band.buffer);
  };
  for (const DeviceLayer& layer : layers_) {
    for (uint32_t id : {layer.input_norm, layer.post_attention_norm, layer.o_bias, layer.qkv_extras})
      device_->free_buffer(id);
    for (const DeviceProduct* product : {&layer.qkv, &layer.o, &layer.gate_up, &layer.down}) free_product(*product);
  }
  device_->free_buffer(final_norm_);
  free_product(lm_head_);
  for (const Buffer* buffer : {&residual_, &normed_, &qkv_, &attention_, &gate_up_, &gated_, &logits_buffer_, &rope_,
                               &scores_, &selected_, &quest_lists_, &quest_bounds_})
    device_->free_buffer(buffer->id);
}

DeviceProduct WebGpuBackend::upload_product(const std::vector<const cpu::MatrixView*>& parts) {
  DeviceProduct product;
  int64_t column = 0;
  for (size_t first = 0; first < parts.size();) {
    size_t end = first + 1;
    while (end < parts.size() && parts[end]->dtype == parts[first]->dtype) ++end;
    const std::vector<const cpu::MatrixView*> run(parts.begin() + static_cast<std::ptrdiff_t>(first),
                                                  parts.begin() + static_cast<std::ptrdiff_t>(end));
    product.runs.emplace_back(upload_matrix(run), column);
    for (const cpu::MatrixView* part : run) column += part->rows;
    first = end;
  }
  return product;
}

uint32_t WebGpuBackend::upload_vector(const std::vector<float>& values) {
  if (values.empty()) return 0;
  const uint32_t id = device_->create_buffer(values.size() * sizeof(float));
  device_->upload(id, 0, values.data(), values.size() * sizeof(float));
  return id;
}

void WebGpuBackend::upload_weights() {
  for (const LayerWeights& w : weights_.layers) {
    DeviceLayer layer;
    layer.input_norm = upload_vector(w.input_norm);
    layer.post_attention_norm = upload_vector(w.post_attention_norm);
    layer.o_bias = upload_vector(w.o_bias);
    std::vector<float> extras;
    if (!w.q_bias.empty()) {
      // A model with attention biases has all three (tensor_names.h).
      extras.insert(extras.end(), w.q_bias.begin(), w.q_bias.end());
      extras.insert(extras.end(), w.k_bias.begin(), w.k_bias.end());
      extras.insert(extras.end(), w.v_bias.begin(), w.v_bias.end());
      layer.qkv_extras_flags |= kQkvBias;
    }
    if (!w.q_norm.empty()) {
      extras.insert(extras.end(), w.q_norm.begin(), w.q_norm.end());
      extras.insert(extras.end(), w.k_norm.begin(), w.k_norm.end());
      layer.qkv_extras_flags |= kQkNorm;
    }
    layer.qkv_extras = upload_vector(extras);
    layer.qkv = upload_product({&w.q_proj, &w.k_proj, &w.v_proj});
    layer.o = upload_product({&w.o_proj});
    layer.gate_up = upload_product({&w.gate_proj, &w.up_proj});
    layer.down = upload_product({&w.down_proj});
    layers_.push_back(std::move(layer));
  }
  final_norm_ = upload_vector(weights_.final_norm);
  lm_head_ = upload_product({&weights_.lm_head});
  device_->flush();
}

void WebGpuBackend::ensure(uint32_t* id, uint64_t* capacity, uint64_t bytes) {
  bytes = std::max<uint64_t>(bytes, 16);
  if (*id != 0 && *capacity >= bytes) return;
  device_->free_buffer(*id);
  *id = device_->create_buffer(bytes);
  *capacity = bytes;
}

void WebGpuBackend::size_activations(int64_t tokens, int64_t logit_rows) {
  const uint64_t t = static_cast<uint64_t>(tokens);
  ensure(&residual_.id, &residual_.bytes, t * config_.hidden_size * kFloat);
  ensure(&normed_.id, &normed_.bytes, t * config_.hidden_size * kFloat);
  ensure(&qkv_.id, &qkv_.bytes, t * qkv_width() * kFloat);
  ensure(&attention_.id, &attention_.bytes, t * q_size() * kFloat);
  ensure(&gate_up_.id, &gate_up_.bytes, t * 2 * config_.intermediate_size * kFloat);
  ensure(&gated_.id, &gated_.bytes, t * config_.intermediate_size * kFloat);
  ensure(&logits_buffer_.id, &logits_buffer_.bytes, static_cast<uint64_t>(logit_rows) * config_.vocab_size * kFloat);
  ensure(&rope_.id, &rope_.bytes, t * config_.head_dim * kFloat);
}

uint32_t WebGpuBackend::activation_buffer(Activation a) const {
  switch (a) {
    case Activation::Residual:
      return residual_.id;
    case Activation::Normed:
      return normed_.id;
    case Activation::Qkv:
      return qkv_.id;
    case Activation::Attention:
      return attention_.id;
    case Activation::GateUp:
      return gate_up_.id;
    case Activation::Gated:
      return gated_.id;
    case Activation::Logits:
      return logits_buffer_.id;
  }
  return 0;
}

void WebGpuBackend::record_product(const DeviceProduct& product, uint32_t bias, uint32_t in, int64_t in_stride,
                                   uint32_t out, int64_t out_offset, int64_t out_stride, int64_t tokens,
                                   bool accumulate) {
  // A bias belongs to a one-matrix product (o_proj), so the runs' column offsets apply to it too.
  for (const auto& [matrix, column] : product.runs)
    record_linear(matrix, bias, in, 0, in_stride, out, out_offset + column, out_stride, tokens, accumulate);
}

void WebGpuBackend::record_linear(const DeviceMatrix& w, uint32_t bias, uint32_t in, int64_t in_offset,
                                  int64_t in_stride, uint32_t out, int64_t out_offset, int64_t out_stride,
                                  int64_t tokens, bool accumulate) {
  for (const DeviceMatrix::Band& band : w.bands) {
    // A band's bias is the matching slice: bias offsets travel in the out offset's place, so
    // the kernel reads bias[row - first row of the band] through a shifted view.
    device_->op(TapeOp::Linear, {band.buffer, static_cast<uint32_t>(w.type), u32(band.rows), u32(w.cols), in,
                                 u32(in_offset), u32(in_stride), out, u32(out_offset + band.first_row), u32(out_stride),
                                 u32(tokens), bias, accumulate ? 1u : 0u, u32(band.first_row)});
  }
}

void WebGpuBackend::embed(const DecoderPass& pass) {
  const int64_t hidden = config_.hidden_size, half = config_.head_dim / 2;
  std::vector<float> rows(static_cast<size_t>(pass.count * hidden));
  std::vector<float> angles(static_cast<size_t>(pass.count * 2 * half));
  for (int64_t t = 0; t < pass.count; ++t) {
    cpu::load_matrix_row(weights_.embed_tokens, tokens_[t], rows.data() + t * hidden);
    float* cos_values = angles.data() + t * 2 * half;
    cpu::rope_angles(inverse_frequencies_.data(), half, pass.start + t, cos_values, cos_values + half);
  }
  device_->upload(residual_.id, 0, rows.data(), rows.size() * sizeof(float));
  device_->upload(rope_.id, 0, angles.data(), angles.size() * sizeof(float));
}

void WebGpuBackend::rms_norm(Activation in, int64_t layer, NormWeight which, Activation out, int64_t first_row) {
  const uint32_t weight = which == NormWeight::Final   ? final_norm_
                          : which == NormWeight::Input ? layers_[static_cast<size_t>(layer)].input_norm
                                                       : layers_[static_cast<size_t>(layer)].post_attention_norm;
  const int64_t width = config_.hidden_size;
  device_->op(TapeOp::RmsNorm, {activation_buffer(in), u32(first_row * width), u32(width), activation_buffer(out), 0,
                                u32(width), weight, u32(count_ - first_row), u32(width), eps_word()});
}

void WebGpuBackend::linear(int64_t layer_index, LayerMatrix matrix, Activation in, Activation out, bool accumulate) {
  const DeviceLayer& layer = layers_[static_cast<size_t>(layer_index)];
  const uint32_t x = activation_buffer(in);
  const int64_t x_stride = activation_width(config_, in), inner = config_.intermediate_size;
  switch (matrix) {
    case LayerMatrix::Qkv:
      // Their biases are added by qkv_rope_append.
      record_product(layer.qkv, 0, x, x_stride, qkv_.id, 0, qkv_width(), count_, false);
      return;
    case LayerMatrix::GateUp:
      record_product(layer.gate_up, 0, x, x_stride, gate_up_.id, 0, 2 * inner, count_, false);
      return;
    case LayerMatrix::O:
      record_product(layer.o, layer.o_bias, x, x_stride, activation_buffer(out), 0, config_.hidden_size, count_,
                     accumulate);
      return;
    case LayerMatrix::Down:
      record_product(layer.down, 0, x, x_stride, activation_buffer(out), 0, config_.hidden_size, count_, accumulate);
      return;
  }
}

void WebGpuBackend::qkv_rope_append(int64_t layer_index, const DecoderPass& pass) {
  const DeviceLayer& layer = layers_[static_cast<size_t>(layer_index)];
  device_->op(TapeOp::QkvRope, {qkv_.id, u32(pass.count), u32(config_.num_heads), u32(config_.num_kv_heads),
                                u32(config_.head_dim), rope_.id, layer.qkv_extras, layer.qkv_extras_flags, eps_word(),
                                cache_->keys(layer_index), cache_->values(layer_index), u32(pass.start)});
  const int64_t first_page = pass.start / kQuestPageTokens;
  const int64_t end_page = (pass.positions() + kQuestPageTokens - 1) / kQuestPageTokens;
  device_->op(TapeOp::PageBounds, {cache_->keys(layer_index), cache_->key_min(layer_index),
                                   cache_->key_max(layer_index), u32(config_.num_kv_heads), u32(config_.head_dim),
                                   u32(first_page), u32(end_page), u32(pass.positions())});
}

void WebGpuBackend::attend_dense(int64_t layer, const DecoderPass& pass, bool keep_scores) {
  const int64_t positions = pass.positions();
  if (keep_scores) ensure(&scores_.id, &scores_.bytes, static_cast<uint64_t>(config_.num_heads * positions) * kFloat);
  device_->op(TapeOp::Attend,
              {qkv_.id, u32(pass.count), u32(config_.num_heads), u32(config_.num_kv_heads), u32(config_.head_dim),
               u32(pass.start), cache_->keys(layer), cache_->values(layer), attention_.id,
               float_word(attention_scale()), keep_scores ? scores_.id : 0, u32(positions), 0, 0, 0});
}

void WebGpuBackend::select_top_k(const SelectionSpec& s) {
  selected_stride_ = s.count();
  ensure(&selected_.id, &selected_.bytes, static_cast<uint64_t>(config_.num_heads * selected_stride_) * 4);
  device_->op(TapeOp::SelectTopK,
              {scores_.id, u32(config_.num_heads), u32(config_.num_heads / config_.num_kv_heads), u32(s.positions),
               u32(s.candidates), u32(s.keep), policy_word(s.policy), selected_.id, u32(selected_stride_)});
}

void WebGpuBackend::quest_pages(int64_t layer, const QuestSpec& quest) {
  quest_stride_ = quest.page_budget * kQuestPageTokens;
  quest_count_ = quest.count;
  ensure(&quest_lists_.id, &quest_lists_.bytes, static_cast<uint64_t>(config_.num_heads * quest_stride_) * 4);
  ensure(&quest_bounds_.id, &quest_bounds_.bytes, static_cast<uint64_t>(config_.num_heads * quest.pages) * kFloat);
  device_->op(TapeOp::QuestPages,
              {qkv_.id, u32(config_.num_heads), u32(config_.num_kv_heads), u32(config_.head_dim),
               cache_->key_min(layer), cache_->key_max(layer), u32(quest.pages), u32(quest.page_budget),
               u32(quest.positions), quest_lists_.id, u32(quest_stride_), quest_bounds_.id});
}

void WebGpuBackend::attend_lists(int64_t layer, PositionLists which, const DecoderPass& pass) {
  const bool selection = which == PositionLists::Selection;
  device_->op(TapeOp::Attend,
              {qkv_.id, 1, u32(config_.num_heads), u32(config_.num_kv_heads), u32(config_.head_dim), u32(pass.start),
               cache_->keys(layer), cache_->values(layer), attention_.id, float_word(attention_scale()), 0,
               u32(pass.positions()), selection ? selected_.id : quest_lists_.id,
               u32(selection ? selected_stride_ : quest_stride_), u32(selection ? selected_stride_ : quest_count_)});
}

void WebGpuBackend::swiglu() {
  device_->op(TapeOp::Swiglu, {gate_up_.id, u32(count_), u32(config_.intermediate_size), gated_.id});
}

void WebGpuBackend::logits(int64_t rows) {
  record_product(lm_head_, 0, normed_.id, config_.hidden_size, logits_buffer_.id, 0, config_.vocab_size, rows, false);
}

void WebGpuBackend::write_activation(Activation a, int64_t rows, const float* values) {
  if (rows > count_ && a != Activation::Logits) throw std::logic_error("more rows than the pass has tokens");
  device_->upload(activation_buffer(a), 0, values,
                  static_cast<size_t>(rows * activation_width(config_, a)) * sizeof(float));
}

void WebGpuBackend::read_activation(Activation a, int64_t rows, float* values) {
  if (rows > count_ && a != Activation::Logits) throw std::logic_error("more rows than the pass has tokens");
  device_->read(activation_buffer(a), 0, static_cast<size_t>(rows * activation_width(config_, a)) * sizeof(float),
                values);
  device_->flush();
}

std::vector<std::vector<int32_t>> WebGpuBackend::read_position_lists(PositionLists which) {
  const bool selection = which == PositionLists::Selection;
  const int64_t stride = selection ? selected_stride_ : quest_stride_;
  const int64_t count = selection ? selected_stride_ : quest_count_;
  std::vector<int32_t> lists(static_cast<size_t>(config_.num_heads * stride));
  device_->read(selection ? selected_.id : quest_lists_.id, 0, lists.size() * sizeof(int32_t), lists.data());
  device_->flush();
  std::vector<std::vector<int32_t>> out;
  for (int64_t h = 0; h < config_.num_heads; ++h)
    out.emplace_back(lists.begin() + h * stride, lists.begin() + h * stride + count);
  return out;
}

SelectionTrace WebGpuBackend::last_selection_trace() const {
  SelectionTrace trace;
  if (traced_positions_ == 0) return trace;
  auto& self = const_cast<WebGpuBackend&>(*this);  // reading back waits for the device
  trace.positions = traced_positions_;
  trace.scores.resize(static_cast<size_t>(config_.num_heads * traced_positions_));
  self.device_->read(scores_.id, 0, trace.scores.size() * sizeof(float), trace.scores.data());
  trace.selected = self.read_position_lists(PositionLists::Selection);
  return trace;
}

// Context shift (Backend::compact): each range that moves goes down to follow the previous
// one; values are copied, keys copied and rotated by the RoPE angle of the move (delta *
// inv_freq_i per pair, computed in double on the host as the CPU backend does), then the Quest
// page bounds are rebuilt from the first moved position. A copy within one buffer goes through
// a scratch buffer (WebGPU copies need two buffers).
void WebGpuBackend::compact(KvCache& cache_base, const KvRanges& ranges) {
  auto& cache = dynamic_cast<WebGpuKvCache&>(cache_base);
  const int64_t half = config_.head_dim / 2;
  const uint64_t row_bytes = static_cast<uint64_t>(kv_size()) * sizeof(float);
  int64_t largest = 0;
  for (const auto& range : ranges) largest = std::max(largest, range.second);
  int64_t next = 0, first_moved = -1;
  uint32_t scratch = 0;
  for (const auto& [start, count] : ranges) {
    if (start != next) {
      if (first_moved < 0) {
        first_moved = next;
        scratch = device_->create_buffer(static_cast<uint64_t>(largest) * row_bytes);
      }
      std::vector<double> cos_values(static_cast<size_t>(half)), sin_values(static_cast<size_t>(half));
      cpu::rope_delta_angles(inverse_frequencies_.data(), half, next - start, cos_values.data(), sin_values.data());
      std::vector<float> table(static_cast<size_t>(2 * half));
      for (int64_t i = 0; i < half; ++i) {
        table[static_cast<size_t>(i)] = static_cast<float>(cos_values[static_cast<size_t>(i)]);
        table[static_cast<size_t>(half + i)] = static_cast<float>(sin_values[static_cast<size_t>(i)]);
      }
      const uint32_t angles = device_->create_buffer(table.size() * sizeof(float));
      device_->upload(angles, 0, table.data(), table.size() * sizeof(float));
      const uint64_t bytes = static_cast<uint64_t>(count) * row_bytes;
      for (int64_t l = 0; l < config_.num_layers; ++l) {
        for (uint32_t id : {cache.keys(l), cache.values(l)}) {
          device_->copy(id, static_cast<uint64_t>(start) * row_bytes, scratch, 0, bytes);
          device_->copy(scratch, 0, id, static_cast<uint64_t>(next) * row_bytes, bytes);
        }
        device_->op(TapeOp::RotateKeys,
                    {cache.keys(l), u32(config_.num_kv_heads), u32(config_.head_dim), u32(next), u32(count), angles});
      }
      device_->free_buffer(angles);
    }
    next += count;
  }
  if (first_moved >= 0) {
    for (int64_t l = 0; l < config_.num_layers; ++l)
      device_->op(TapeOp::PageBounds, {cache.keys(l), cache.key_min(l), cache.key_max(l), u32(config_.num_kv_heads),
                                       u32(config_.head_dim), u32(first_moved / kQuestPageTokens),
                                       u32((next + kQuestPageTokens - 1) / kQuestPageTokens), u32(next)});
    device_->free_buffer(scratch);
    device_->flush();
  }
  cache.trim(next);
}

// File order is [layer][keys | values][kv_head][position][head_dim]; the device keeps
// [position][kv_head][head_dim] per layer.
void WebGpuBackend::save_kv(const KvCache& cache_base, KvByteSink& sink) {
  const auto& cache = dynamic_cast<const WebGpuKvCache&>(cache_base);
  const int64_t length = cache.length(), kv_heads = config_.num_kv_heads, head_dim = config_.head_dim;
  if (length == 0) return;
  std::vector<float> device_rows(static_cast<size_t>(length * kv_size())), file_rows(device_rows.size());
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    for (uint32_t id : {cache.keys(l), cache.values(l)}) {
      device_->read(id, 0, device_rows.size() * sizeof(float), device_rows.data());
      device_->flush();
      for (int64_t h = 0; h < kv_heads; ++h)
        for (int64_t p = 0; p < length; ++p)
          std::memcpy(file_rows.data() + (h * length + p) * head_dim, device_rows.data() + p * kv_size() + h * head_dim,
                      static_cast<size_t>(head_dim) * sizeof(float));
      sink.write(file_rows.data(), file_rows.size() * sizeof(float));
    }
  }
}

void WebGpuBackend::load_kv(KvCache& cache_base, int64_t length, KvByteSource& source) {
  auto& cache = dynamic_cast<WebGpuKvCache&>(cache_base);
  if (cache.length() != 0) throw std::logic_error("load_kv fills an empty cache");
  if (length == 0) return;
  const int64_t kv_heads = config_.num_kv_heads, head_dim = config_.head_dim;
  cache.reserve(length);
  std::vector<float> file_rows(static_cast<size_t>(length * kv_size())), device_rows(file_rows.size());
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    for (uint32_t id : {cache.keys(l), cache.values(l)}) {
      source.read(file_rows.data(), file_rows.size() * sizeof(float));
      for (int64_t h = 0; h < kv_heads; ++h)
        for (int64_t p = 0; p < length; ++p)
          std::memcpy(device_rows.data() + p * kv_size() + h * head_dim, file_rows.data() + (h * length + p) * head_dim,
                      static_cast<size_t>(head_dim) * sizeof(float));
      device_->upload(id, 0, device_rows.data(), device_rows.size() * sizeof(float));
    }
    device_->op(TapeOp::PageBounds, {cache.keys(l), cache.key_min(l), cache.key_max(l), u32(kv_heads), u32(head_dim), 0,
                                     u32((length + kQuestPageTokens - 1) / kQuestPageTokens), u32(length)});
    device_->flush();
  }
  cache.commit(length);
}

}  // namespace

std::unique_ptr<Backend> create_webgpu_backend(const ModelConfig& config, const ModelWeights& weights,
                                               const WebGpuBackendOptions& options) {
  if (!options.executor)
    throw RequestError(
        "the webgpu backend runs where the engine is loaded from Node with a WebGPU device (the `webgpu` package); "
        "this caller supplied none: choose the cpu backend, or load the model through the extension or `tidal serve`");
  return std::make_unique<WebGpuBackend>(config, weights, options);
}

}  // namespace tidal
