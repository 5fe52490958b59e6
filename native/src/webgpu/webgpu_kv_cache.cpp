#include "webgpu/webgpu_kv_cache.h"

#include <algorithm>
#include <stdexcept>

#include "engine/decoder.h"
#include "tidal/error.h"

namespace tidal {

WebGpuKvCache::WebGpuKvCache(std::shared_ptr<WebGpuDevice> device, int64_t layers, int64_t row_values,
                             int64_t max_positions)
    : device_(std::move(device)), layers_(layers), row_values_(row_values), max_positions_(max_positions) {}

WebGpuKvCache::~WebGpuKvCache() { release(); }

int64_t WebGpuKvCache::pages_of(int64_t positions) { return (positions + kQuestPageTokens - 1) / kQuestPageTokens; }

size_t WebGpuKvCache::bytes_for(int64_t capacity) const {
  // Keys and values, and two bounds per page, for every layer.
  const int64_t rows = 2 * capacity + 2 * pages_of(capacity);
  return static_cast<size_t>(layers_ * rows * row_values_) * sizeof(float);
}

void WebGpuKvCache::release() {
  for (auto* ids : {&keys_, &values_, &key_min_, &key_max_}) {
    for (uint32_t id : *ids) device_->free_buffer(id);
    ids->clear();
  }
  device_->release_kv(bytes_);
  bytes_ = 0;
  capacity_ = 0;
}

void WebGpuKvCache::trim(int64_t length) {
  if (length < 0 || length > length_) throw std::logic_error("trim past the cache's length");
  length_ = length;  // a partial page's bounds are rebuilt from its start at the next append
}

void WebGpuKvCache::reserve(int64_t positions) {
  if (positions <= capacity_) return;
  // Growing copies every position, so grow ahead by half (not past max_positions).
  int64_t capacity = std::max<int64_t>({positions, capacity_ + capacity_ / 2, 32});
  if (max_positions_ > 0) capacity = std::max(positions, std::min(capacity, max_positions_));
  capacity = pages_of(capacity) * kQuestPageTokens;
  const uint64_t layer_bytes = static_cast<uint64_t>(capacity) * row_values_ * sizeof(float);
  if (layer_bytes > device_->max_binding_bytes())
    throw OutOfMemoryError("the keys of one layer at " + std::to_string(capacity) + " positions need " +
                           std::to_string(layer_bytes) + " bytes, more than this WebGPU device binds in one buffer (" +
                           std::to_string(device_->max_binding_bytes()) + " bytes): use a shorter context");
  const size_t bytes = bytes_for(capacity);
  device_->reserve_kv(bytes);
  const uint64_t row_bytes = static_cast<uint64_t>(row_values_) * sizeof(float);
  auto grow = [&](std::vector<uint32_t>& ids, int64_t rows, int64_t kept_rows) {
    for (int64_t l = 0; l < layers_; ++l) {
      const uint32_t next = device_->create_buffer(static_cast<uint64_t>(rows) * row_bytes);
      if (static_cast<size_t>(l) < ids.size()) {
        device_->copy(ids[static_cast<size_t>(l)], 0, next, 0, static_cast<uint64_t>(kept_rows) * row_bytes);
        device_->free_buffer(ids[static_cast<size_t>(l)]);
        ids[static_cast<size_t>(l)] = next;
      } else {
        ids.push_back(next);
      }
    }
  };
  grow(keys_, capacity, length_);
  grow(values_, capacity, length_);
  grow(key_min_, pages_of(capacity), pages_of(length_));
  grow(key_max_, pages_of(capacity), pages_of(length_));
  device_->release_kv(bytes_);
  bytes_ = bytes;
  capacity_ = capacity;
}

std::unique_ptr<KvCache> WebGpuKvCache::fork(int64_t length) const {
  if (length < 0 || length > length_) throw std::logic_error("fork past the cache's length");
  auto copy = std::make_unique<WebGpuKvCache>(device_, layers_, row_values_, max_positions_);
  copy->reserve(std::max<int64_t>(length, 1));
  const uint64_t row_bytes = static_cast<uint64_t>(row_values_) * sizeof(float);
  for (int64_t l = 0; l < layers_; ++l) {
    device_->copy(keys(l), 0, copy->keys(l), 0, static_cast<uint64_t>(length) * row_bytes);
    device_->copy(values(l), 0, copy->values(l), 0, static_cast<uint64_t>(length) * row_bytes);
    device_->copy(key_min(l), 0, copy->key_min(l), 0, static_cast<uint64_t>(pages_of(length)) * row_bytes);
    device_->copy(key_max(l), 0, copy->key_max(l), 0, static_cast<uint64_t>(pages_of(length)) * row_bytes);
  }
  copy->length_ = length;
  return copy;
}

}  // namespace tidal
