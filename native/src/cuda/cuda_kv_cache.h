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
  bool fp8 = false;  // E4M3 codes and a pair of f16 scales per row instead of bf16
  size_t element_bytes() const { return fp8 ? 1 : 2; }
  // K, V (and the FP8 scales) of `capacity` positions.
  size_t kv_bytes_for(int64_t capacity) const {
    const size_t rows = static_cast<size_t>(layers * kv_heads) * static_cast<size_t>(capacity);
    return rows * (static_cast<size_t>(head_dim) * element_bytes() * 2 + (fp8 ? 4 : 0));
  }
  // Quest's page bounds (bf16 min and max of every 16 positions), when a cache has them.
  size_t page_bytes_for(int64_t capacity) const {
    return static_cast<size_t>(layers * kv_heads) * static_cast<size_t>(capacity / kQuestPageTokens * head_dim) * 2 * 2;
  }
  size_t bytes_for(int64_t capacity, bool pages) const {
    return kv_bytes_for(capacity) + (pages ? page_bytes_for(capacity) : 0);
  }
};

// One sequence's cache: K and V [layer][kv_head][capacity][head_dim], bf16 or (shape.fp8) E4M3
// codes with scales [layer][kv_head][capacity] (key and value f16 scale in one 32-bit word).
// Quest key min/max [layer][kv_head][capacity / 16][head_dim] bf16 are built the first time a
// Quest step asks for them (ensure_pages: 8 KiB a token on an 8B model, as much as FP8 K/V of
// the same positions take, and TidalDecode and full attention never read them) and are kept up
// to date from then on. Capacity grows by a quarter (at most kMaxGrowth positions; copying the valid positions), or
// once to what a prefill or load needs (prepare_for); fork copies.
class CudaKvCache final : public KvCache {
 public:
  CudaKvCache(std::shared_ptr<KvAccount> account, KvShape shape) : account_(std::move(account)), shape_(shape) {}
  ~CudaKvCache() override { account_->in_use -= bytes_referenced(); }

  int64_t length() const override { return length_; }
  void trim(int64_t length) override {
    if (length < 0 || length > length_) throw RequestError("KV cache trim beyond its length");
    length_ = length;
    refresh_partial_page();
  }
  std::unique_ptr<KvCache> fork(int64_t length) const override {
    if (length < 0 || length > length_) throw RequestError("KV cache fork beyond its length");
    auto copy = std::make_unique<CudaKvCache>(account_, shape_);
    copy->with_pages_ = with_pages_;
    copy->reserve(length);
    copy_positions(*this, *copy, length);
    copy->length_ = length;
    copy->refresh_partial_page();
    return copy;
  }
  size_t bytes_referenced() const override { return shape_.bytes_for(capacity_, with_pages_); }

  // Positions a prepared cache keeps free after what it was prepared for: a reply decodes into
  // them without growing (a growth copies every valid position and briefly holds both copies).
  static constexpr int64_t kDecodeRoom = 2048;
  // Growth adds a quarter of the capacity, at most this many positions (at 100K positions of an
  // 8B model a quarter is 1.7 GB of FP8 codes, or 3.3 GB of bf16, that a 16 GB card may lack).
  static constexpr int64_t kMaxGrowth = 8192;

  void prepare_for(int64_t positions) override {
    if (positions <= capacity_) return;
    try {
      grow_to(positions + kDecodeRoom, positions);
    } catch (const OutOfMemoryError&) {
      grow_to(positions, positions);  // without the room when only the exact size fits
    }
  }
  void reserve(int64_t positions) {
    if (positions <= capacity_) return;
    grow_to(std::max<int64_t>({positions, capacity_ + std::min(capacity_ / 4, kMaxGrowth), 256}), positions);
  }
  void commit(int64_t length) { length_ = length; }

  // Allocates and builds the Quest page bounds of [0, length) if this cache has none yet.
  void ensure_pages() {
    if (with_pages_) return;
    check_cap(shape_.bytes_for(capacity_, true), "Quest's page bounds");
    allocate_pages(capacity_);
    with_pages_ = true;
    account_->add(shape_.page_bytes_for(capacity_));
    update_pages(0, length_);
  }
  bool has_pages() const { return with_pages_; }

  int64_t capacity() const { return capacity_; }
  const KvShape& shape() const { return shape_; }
  cudaStream_t stream() const { return account_->stream; }
  // Layer bases: bf16 elements or FP8 codes (a byte each).
  void* keys(int64_t layer) const { return keys_.get<char>() + layer * layer_bytes_for(capacity_); }
  void* values(int64_t layer) const { return values_.get<char>() + layer * layer_bytes_for(capacity_); }
  // FP8 only (null otherwise): [kv_head][capacity] scale pairs of a layer.
  uint32_t* scales(int64_t layer) const {
    return shape_.fp8 ? scales_.get<uint32_t>() + layer * shape_.kv_heads * capacity_ : nullptr;
  }
  KvLayerView view(int64_t layer) const {
    KvLayerView v;
    v.keys = keys(layer);
    v.values = values(layer);
    v.key_head_stride = v.value_head_stride = capacity_ * shape_.head_dim;
    v.key_row_stride = v.value_row_stride = shape_.head_dim;
    v.num_kv_heads = static_cast<int>(shape_.kv_heads);
    v.head_dim = static_cast<int>(shape_.head_dim);
    v.scales = scales(layer);
    v.scale_head_stride = capacity_;
    return v;
  }
  // Empty (null tables) while the cache has no page bounds.
  QuestPageTable pages(int64_t layer) const {
    QuestPageTable t;
    if (!with_pages_) return t;
    const int64_t page_elements = shape_.kv_heads * page_capacity() * shape_.head_dim;
    t.key_min = key_min_.get<uint16_t>() + layer * page_elements;
    t.key_max = key_max_.get<uint16_t>() + layer * page_elements;
    t.head_stride = page_capacity() * shape_.head_dim;
    t.max_pages = page_capacity();
    return t;
  }
  void update_pages(int64_t first, int64_t end) const {
    if (end <= first || !with_pages_) return;
    for (int64_t layer = 0; layer < shape_.layers; ++layer)
      update_quest_pages(view(layer), pages(layer), first, end, account_->stream);
  }

 private:
  int64_t page_capacity() const { return capacity_ / kQuestPageTokens; }

  // A new allocation of `capacity` (rounded up to 256 positions) holding the valid positions.
  void grow_to(int64_t capacity, int64_t positions) {
    capacity = (capacity + 255) / 256 * 256;
    check_cap(shape_.bytes_for(capacity, with_pages_), std::to_string(positions) + " positions");
    CudaKvCache grown(account_, shape_);
    grown.with_pages_ = with_pages_;
    grown.allocate(capacity);
    copy_positions(*this, grown, length_);
    swap_storage(grown);
  }

  void check_cap(size_t bytes, const std::string& what) const {
    const size_t old_bytes = bytes_referenced();
    if (account_->cap && account_->in_use - old_bytes + bytes > account_->cap)
      throw OutOfMemoryError("the KV cache needs " + gib(account_->in_use - old_bytes + bytes) + " for " + what +
                             ", over the max_kv_bytes cap of " + gib(account_->cap) +
                             "; raise the cap or use a shorter context");
  }

  void allocate(int64_t capacity) {
    const size_t kv_bytes = layer_bytes_for(capacity) * static_cast<size_t>(shape_.layers);
    keys_ = DeviceBuffer(kv_bytes, "the KV cache (keys)");
    values_ = DeviceBuffer(kv_bytes, "the KV cache (values)");
    if (shape_.fp8)
      scales_ = DeviceBuffer(static_cast<size_t>(shape_.layers * shape_.kv_heads * capacity) * 4,
                             "the KV cache (FP8 scales)");
    if (with_pages_) allocate_pages(capacity);
    capacity_ = capacity;
    account_->add(shape_.bytes_for(capacity, with_pages_));
  }
  void allocate_pages(int64_t capacity) {
    const size_t page_bytes = shape_.page_bytes_for(capacity) / 2;
    key_min_ = DeviceBuffer(page_bytes, "Quest page metadata");
    key_max_ = DeviceBuffer(page_bytes, "Quest page metadata");
  }
  size_t layer_bytes_for(int64_t capacity) const {
    return static_cast<size_t>(shape_.kv_heads * capacity * shape_.head_dim) * shape_.element_bytes();
  }
  void swap_storage(CudaKvCache& other) {
    std::swap(keys_, other.keys_);
    std::swap(values_, other.values_);
    std::swap(scales_, other.scales_);
    std::swap(key_min_, other.key_min_);
    std::swap(key_max_, other.key_max_);
    std::swap(capacity_, other.capacity_);
  }

  static void copy_positions(const CudaKvCache& from, CudaKvCache& to, int64_t length) {
    if (length <= 0) return;
    const int64_t rows = from.shape_.layers * from.shape_.kv_heads, d = from.shape_.head_dim;
    const size_t e = from.shape_.element_bytes();
    const cudaStream_t stream = from.account_->stream;
    for (const auto& [source, target] : {std::pair{&from.keys_, &to.keys_}, std::pair{&from.values_, &to.values_}})
      throw_if_failed(cudaMemcpy2DAsync(target->get(), to.capacity_ * d * e, source->get(), from.capacity_ * d * e,
                                        length * d * e, rows, cudaMemcpyDeviceToDevice, stream),
                      "copying the KV cache");
    if (from.shape_.fp8)
      throw_if_failed(cudaMemcpy2DAsync(to.scales_.get(), to.capacity_ * 4, from.scales_.get(), from.capacity_ * 4,
                                        length * 4, rows, cudaMemcpyDeviceToDevice, stream),
                      "copying the KV cache's scales");
    if (!from.with_pages_ || !to.with_pages_) return;
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
  DeviceBuffer keys_, values_, scales_, key_min_, key_max_;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  bool with_pages_ = false;
};

}  // namespace tidal::cuda
