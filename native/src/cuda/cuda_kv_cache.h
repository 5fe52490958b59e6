// The CUDA backend's KV cache of one sequence and the memory account shared by all caches of a
// backend (the max_kv_bytes cap).
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "cuda/attention_kernels.h"
#include "cuda/device_buffer.h"
#include "cuda/quest_kernels.h"
#include "engine/backend.h"
#include "tidal/error.h"

namespace tidal::cuda {

// KV memory of every cache of one backend.
struct KvAccount {
  size_t in_use = 0, peak = 0, cap = 0;
  cudaStream_t stream = nullptr;
  void add(size_t bytes) {
    in_use += bytes;
    peak = std::max(peak, in_use);
  }
};

struct KvShape {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  size_t bytes_for(int64_t capacity) const {
    const size_t rows = static_cast<size_t>(layers * kv_heads);
    const size_t kv = rows * static_cast<size_t>(capacity * head_dim) * 2 * 2;
    const size_t pages = rows * static_cast<size_t>(capacity / kQuestPageTokens * head_dim) * 2 * 2;
    return kv + pages;
  }
};

// One sequence's cache: K and V [layer][kv_head][capacity][head_dim] bf16, Quest key min/max
// [layer][kv_head][capacity / 16][head_dim] bf16. Capacity grows by a quarter at least (copying
// the valid positions); fork copies.
class CudaKvCache final : public KvCache {
 public:
  CudaKvCache(std::shared_ptr<KvAccount> account, KvShape shape) : account_(std::move(account)), shape_(shape) {}
  ~CudaKvCache() override { account_->in_use -= shape_.bytes_for(capacity_); }

  int64_t length() const override { return length_; }
  void trim(int64_t length) override {
    if (length < 0 || length > length_) throw RequestError("KV cache trim beyond its length");
    length_ = length;
    refresh_partial_page();
  }
  std::unique_ptr<KvCache> fork(int64_t length) const override {
    if (length < 0 || length > length_) throw RequestError("KV cache fork beyond its length");
    auto copy = std::make_unique<CudaKvCache>(account_, shape_);
    copy->reserve(length);
    copy_positions(*this, *copy, length);
    copy->length_ = length;
    copy->refresh_partial_page();
    return copy;
  }
  size_t bytes_referenced() const override { return shape_.bytes_for(capacity_); }

  void reserve(int64_t positions) {
    if (positions <= capacity_) return;
    // Grows by a quarter at least (a 100K-token cache of a 7B MHA model is 52 GB: doubling
    // would ask for twice that).
    int64_t capacity = std::max<int64_t>({positions, capacity_ + capacity_ / 4, 256});
    capacity = (capacity + 255) / 256 * 256;
    const size_t bytes = shape_.bytes_for(capacity);
    const size_t old_bytes = shape_.bytes_for(capacity_);
    if (account_->cap && account_->in_use - old_bytes + bytes > account_->cap)
      throw OutOfMemoryError("the KV cache needs " + gib(account_->in_use - old_bytes + bytes) + " for " +
                             std::to_string(positions) + " positions, over the max_kv_bytes cap of " +
                             gib(account_->cap) + "; raise the cap or use a shorter context");
    CudaKvCache grown(account_, shape_);
    grown.allocate(capacity);
    copy_positions(*this, grown, length_);
    std::swap(keys_, grown.keys_);
    std::swap(values_, grown.values_);
    std::swap(key_min_, grown.key_min_);
    std::swap(key_max_, grown.key_max_);
    std::swap(capacity_, grown.capacity_);
  }
  void commit(int64_t length) { length_ = length; }

  int64_t capacity() const { return capacity_; }
  const KvShape& shape() const { return shape_; }
  cudaStream_t stream() const { return account_->stream; }
  uint16_t* keys(int64_t layer) const { return keys_.get<uint16_t>() + layer * layer_elements(); }
  uint16_t* values(int64_t layer) const { return values_.get<uint16_t>() + layer * layer_elements(); }
  KvLayerView view(int64_t layer) const {
    KvLayerView v;
    v.keys = keys(layer);
    v.values = values(layer);
    v.key_head_stride = v.value_head_stride = capacity_ * shape_.head_dim;
    v.key_row_stride = v.value_row_stride = shape_.head_dim;
    v.num_kv_heads = static_cast<int>(shape_.kv_heads);
    v.head_dim = static_cast<int>(shape_.head_dim);
    return v;
  }
  QuestPageTable pages(int64_t layer) const {
    QuestPageTable t;
    const int64_t page_elements = shape_.kv_heads * page_capacity() * shape_.head_dim;
    t.key_min = key_min_.get<uint16_t>() + layer * page_elements;
    t.key_max = key_max_.get<uint16_t>() + layer * page_elements;
    t.head_stride = page_capacity() * shape_.head_dim;
    t.max_pages = page_capacity();
    return t;
  }
  void update_pages(int64_t first, int64_t end) const {
    if (end <= first) return;
    for (int64_t layer = 0; layer < shape_.layers; ++layer)
      update_quest_pages(view(layer), pages(layer), first, end, account_->stream);
  }

 private:
  int64_t layer_elements() const { return shape_.kv_heads * capacity_ * shape_.head_dim; }
  int64_t page_capacity() const { return capacity_ / kQuestPageTokens; }

  void allocate(int64_t capacity) {
    const size_t kv_bytes = static_cast<size_t>(shape_.layers * shape_.kv_heads * capacity * shape_.head_dim) * 2;
    const size_t page_bytes = kv_bytes / kQuestPageTokens;
    keys_ = DeviceBuffer(kv_bytes, "the KV cache (keys)");
    values_ = DeviceBuffer(kv_bytes, "the KV cache (values)");
    key_min_ = DeviceBuffer(page_bytes, "Quest page metadata");
    key_max_ = DeviceBuffer(page_bytes, "Quest page metadata");
    capacity_ = capacity;
    account_->add(shape_.bytes_for(capacity));
  }

  static void copy_positions(const CudaKvCache& from, CudaKvCache& to, int64_t length) {
    if (length <= 0) return;
    const int64_t rows = from.shape_.layers * from.shape_.kv_heads, d = from.shape_.head_dim;
    const cudaStream_t stream = from.account_->stream;
    for (const auto& [source, target] : {std::pair{&from.keys_, &to.keys_}, std::pair{&from.values_, &to.values_}})
      throw_if_failed(cudaMemcpy2DAsync(target->get(), to.capacity_ * d * 2, source->get(), from.capacity_ * d * 2,
                                        length * d * 2, rows, cudaMemcpyDeviceToDevice, stream),
                      "copying the KV cache");
    const int64_t pages = (length + kQuestPageTokens - 1) / kQuestPageTokens;
    for (const auto& [source, target] :
         {std::pair{&from.key_min_, &to.key_min_}, std::pair{&from.key_max_, &to.key_max_}})
      throw_if_failed(
          cudaMemcpy2DAsync(target->get(), to.page_capacity() * d * 2, source->get(), from.page_capacity() * d * 2,
                            pages * d * 2, rows, cudaMemcpyDeviceToDevice, stream),
          "copying Quest page metadata");
  }

  // After a cut inside a page, that page's bounds are recomputed from the positions kept.
  void refresh_partial_page() const {
    const int64_t first = length_ / kQuestPageTokens * kQuestPageTokens;
    update_pages(first, length_);
  }

  std::shared_ptr<KvAccount> account_;
  KvShape shape_;
  DeviceBuffer keys_, values_, key_min_, key_max_;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
};

}  // namespace tidal::cuda
