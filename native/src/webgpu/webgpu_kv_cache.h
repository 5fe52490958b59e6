// A sequence's K/V on the WebGPU device: per layer, keys and values [position][kv_head][head_dim]
// as f32 (a row is the k or v part of a Qkv row, so appending is a copy), and the Quest page
// bounds [page][kv_head][head_dim] (min and max of the page's keys). Buffers grow by copying
// into larger ones; a fork copies the prefix it keeps (no page sharing).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/backend.h"
#include "webgpu/webgpu_device.h"

namespace tidal {

class WebGpuKvCache final : public KvCache {
 public:
  // `max_positions` (0: none) caps how far the buffers grow ahead of what is asked.
  WebGpuKvCache(std::shared_ptr<WebGpuDevice> device, int64_t layers, int64_t row_values, int64_t max_positions);
  ~WebGpuKvCache() override;

  int64_t length() const override { return length_; }
  void trim(int64_t length) override;
  std::unique_ptr<KvCache> fork(int64_t length) const override;
  size_t bytes_referenced() const override { return bytes_; }

  // Room for `positions` positions (the contents of [0, length) kept). Throws OutOfMemoryError.
  void reserve(int64_t positions);
  void commit(int64_t positions) { length_ = positions; }

  uint32_t keys(int64_t layer) const { return keys_[static_cast<size_t>(layer)]; }
  uint32_t values(int64_t layer) const { return values_[static_cast<size_t>(layer)]; }
  uint32_t key_min(int64_t layer) const { return key_min_[static_cast<size_t>(layer)]; }
  uint32_t key_max(int64_t layer) const { return key_max_[static_cast<size_t>(layer)]; }
  int64_t row_values() const { return row_values_; }

 private:
  static int64_t pages_of(int64_t positions);
  size_t bytes_for(int64_t capacity) const;
  void release();

  std::shared_ptr<WebGpuDevice> device_;
  int64_t layers_, row_values_, max_positions_;
  int64_t length_ = 0, capacity_ = 0;
  size_t bytes_ = 0;
  std::vector<uint32_t> keys_, values_, key_min_, key_max_;
};

}  // namespace tidal
