// Host-side KV cache layers with random bf16 contents, their device copies, and the float64
// attention reference the GPU results are compared with.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda/attention_kernels.h"
#include "test_support.h"

namespace tidal::gpu_test {

// K and V of one layer, [kv_head][capacity][head_dim] with padded rows and heads so that
// the kernels must honour the strides.
struct HostLayer {
  int kv_heads = 0;
  int head_dim = 0;
  int64_t capacity = 0;
  int64_t key_row_stride = 0, key_head_stride = 0;
  int64_t value_row_stride = 0, value_head_stride = 0;
  std::vector<uint16_t> keys, values;

  size_t key_index(int j, int64_t position, int i) const {
    return size_t(j * key_head_stride + position * key_row_stride + i);
  }
  size_t value_index(int j, int64_t position, int i) const {
    return size_t(j * value_head_stride + position * value_row_stride + i);
  }
  double key(int j, int64_t position, int i) const { return from_bf16(keys[key_index(j, position, i)]); }
  double value(int j, int64_t position, int i) const { return from_bf16(values[value_index(j, position, i)]); }
};

// row_pad / head_pad: extra elements (multiples of 8) after every row / head, filled with NaN
// so that reading them shows in the result.
inline HostLayer make_layer(Rng& rng, int kv_heads, int head_dim, int64_t capacity, int row_pad, int head_pad) {
  HostLayer layer;
  layer.kv_heads = kv_heads;
  layer.head_dim = head_dim;
  layer.capacity = capacity;
  layer.key_row_stride = head_dim + row_pad;
  layer.key_head_stride = capacity * layer.key_row_stride + head_pad;
  // Values use a different padding from keys, to catch a stride mix-up.
  layer.value_row_stride = head_dim + (row_pad ? 0 : 8);
  layer.value_head_stride = capacity * layer.value_row_stride + 16;
  layer.keys.assign(size_t(kv_heads * layer.key_head_stride), 0xFFFF);
  layer.values.assign(size_t(kv_heads * layer.value_head_stride), 0xFFFF);
  for (int j = 0; j < kv_heads; ++j)
    for (int64_t p = 0; p < capacity; ++p)
      for (int i = 0; i < head_dim; ++i) {
        layer.keys[layer.key_index(j, p, i)] = random_bf16(rng);
        layer.values[layer.value_index(j, p, i)] = random_bf16(rng);
      }
  return layer;
}

// Makes position `position` of every KV head's keys 8x the first query head of its group:
// that head's score there (about 8 |q|^2 / sqrt(d), 20 to 30) dominates its softmax, so a
// skipped or misplaced row shows as a large error.
inline void add_spike(HostLayer& layer, const std::vector<float>& query, int group, int64_t position) {
  for (int j = 0; j < layer.kv_heads; ++j)
    for (int i = 0; i < layer.head_dim; ++i)
      layer.keys[layer.key_index(j, position, i)] = to_bf16(8.0f * query[size_t(j * group) * layer.head_dim + i]);
}

struct DeviceLayer {
  DeviceArray<uint16_t> keys, values;
  explicit DeviceLayer(const HostLayer& host) : keys(host.keys), values(host.values) {}
  cuda::KvLayerView view(const HostLayer& host) const {
    cuda::KvLayerView view;
    view.keys = keys.data();
    view.values = values.data();
    view.key_head_stride = host.key_head_stride;
    view.key_row_stride = host.key_row_stride;
    view.value_head_stride = host.value_head_stride;
    view.value_row_stride = host.value_row_stride;
    view.num_kv_heads = host.kv_heads;
    view.head_dim = host.head_dim;
    return view;
  }
};

// A query of num_heads x head_dim values in [-1, 1) (never 0), the values the kernel sees
// (rounded to bf16 when it gets bf16), and the device copy in that type.
struct Query {
  std::vector<float> values;
  DeviceArray<uint8_t> device;
  cuda::ElementType type = cuda::ElementType::F32;
};

inline Query make_query(Rng& rng, int num_heads, int head_dim, bool bf16) {
  Query q;
  const size_t n = size_t(num_heads) * head_dim;
  q.values.resize(n);
  std::vector<uint8_t> bytes(n * (bf16 ? 2 : 4));
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = random_bf16(rng);
    float value = from_bf16(h);
    if (!bf16) {
      value = float(rng.uniform());
      if (value == 0.0f) value = 0.5f;
    }
    q.values[i] = value;
    if (bf16) {
      std::memcpy(&bytes[i * 2], &h, 2);
    } else {
      std::memcpy(&bytes[i * 4], &value, 4);
    }
  }
  q.device = DeviceArray<uint8_t>(bytes);
  q.type = bf16 ? cuda::ElementType::BF16 : cuda::ElementType::F32;
  return q;
}

// out[h][d] = sum_i softmax(s)_i V[pos_i][d], s_i = q_h . K[pos_i] / sqrt(d), in float64,
// where query head h attends lists[h] on KV head h / group. When `scores` is given it gets
// s for every listed position ([h][index in list]) and `score_magnitude` sum_d |q_d k_d| /
// sqrt(d) (the scale of the rounding error a float32 dot product may make).
inline void reference_attention(const HostLayer& layer, const std::vector<float>& query, int num_heads,
                                const std::vector<std::vector<int32_t>>& lists, std::vector<double>& out,
                                std::vector<std::vector<double>>* scores = nullptr,
                                std::vector<std::vector<double>>* score_magnitude = nullptr) {
  const int d = layer.head_dim;
  const int group = num_heads / layer.kv_heads;
  const double scale = 1.0 / std::sqrt(double(d));
  out.assign(size_t(num_heads) * d, 0.0);
  if (scores) scores->assign(size_t(num_heads), {});
  if (score_magnitude) score_magnitude->assign(size_t(num_heads), {});
  for (int h = 0; h < num_heads; ++h) {
    const int j = h / group;
    const std::vector<int32_t>& list = lists[size_t(h)];
    std::vector<double> s(list.size()), magnitude(list.size());
    double max_score = -INFINITY;
    for (size_t n = 0; n < list.size(); ++n) {
      const size_t base = layer.key_index(j, list[n], 0);
      double dot = 0, abs_sum = 0;
      for (int i = 0; i < d; ++i) {
        const double term = double(query[size_t(h) * d + i]) * from_bf16(layer.keys[base + i]);
        dot += term;
        abs_sum += std::fabs(term);
      }
      s[n] = dot * scale;
      magnitude[n] = abs_sum * scale;
      max_score = std::max(max_score, s[n]);
    }
    double sum = 0;
    std::vector<double> acc(size_t(d), 0.0);
    for (size_t n = 0; n < list.size(); ++n) {
      const double p = std::exp(s[n] - max_score);
      sum += p;
      const size_t base = layer.value_index(j, list[n], 0);
      for (int i = 0; i < d; ++i) acc[size_t(i)] += p * from_bf16(layer.values[base + i]);
    }
    for (int i = 0; i < d; ++i) out[size_t(h) * d + i] = acc[size_t(i)] / sum;
    if (scores) (*scores)[size_t(h)] = std::move(s);
    if (score_magnitude) (*score_magnitude)[size_t(h)] = std::move(magnitude);
  }
}

// Attention output of the GPU, downloaded and widened to double.
inline std::vector<double> download_output(const DeviceArray<uint8_t>& out, cuda::ElementType type, size_t count) {
  const std::vector<uint8_t> bytes = out.download();
  std::vector<double> values(count);
  for (size_t i = 0; i < count; ++i) {
    if (type == cuda::ElementType::BF16) {
      uint16_t h;
      std::memcpy(&h, &bytes[i * 2], 2);
      values[i] = from_bf16(h);
    } else {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      values[i] = f;
    }
  }
  return values;
}

// Error bounds on the relative L2 error of an attention output. The reference uses the
// same bf16 inputs exactly, so only float32 arithmetic separates the two (about 1e-6); 1e-4
// leaves room for long sums. A bf16 output adds its own rounding, at most 2^-9 relative
// per element.
constexpr double kAttentionTolF32 = 1e-4;
constexpr double kAttentionTolBf16 = 4e-3;

}  // namespace tidal::gpu_test
