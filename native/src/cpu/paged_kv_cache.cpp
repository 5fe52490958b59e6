#include "cpu/paged_kv_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/fp8_e4m3.h"
#include "cpu/quest_pages.h"
#include "tidal/error.h"

namespace tidal::cpu {

namespace {

int64_t pages_for(int64_t positions) { return (positions + kKvPageTokens - 1) / kKvPageTokens; }

// File order is [layer][keys, values][kv_head][position][head_dim]; a page holds 16 rows of
// one (layer, kv_head) block contiguously, so each page contributes one piece per block.
// Calls piece(page, float offset in the page, bytes) for the pieces of `length` positions in
// file order: save and load walk the same way.
template <typename Piece>
void for_each_file_piece(const KvPageLayout& layout, int64_t length, Piece piece) {
  const size_t row_bytes = static_cast<size_t>(layout.head_dim) * sizeof(float);
  for (int64_t layer = 0; layer < layout.layers; ++layer)
    for (int values = 0; values < 2; ++values)
      for (int64_t head = 0; head < layout.kv_heads; ++head) {
        const int64_t offset = values ? layout.value_offset(layer, head) : layout.key_offset(layer, head);
        for (int64_t page = 0; page < pages_for(length); ++page) {
          const int64_t rows = std::min<int64_t>(kKvPageTokens, length - page * kKvPageTokens);
          piece(static_cast<size_t>(page), offset, static_cast<size_t>(rows) * row_bytes);
        }
      }
}

}  // namespace

KvPagePool::KvPagePool(const KvPageLayout& layout, size_t max_bytes, bool fp8_rows)
    : layout_(layout), max_bytes_(max_bytes), fp8_rows_(fp8_rows), counters_(std::make_shared<Counters>()) {}

std::shared_ptr<float> KvPagePool::allocate() {
  const size_t bytes = layout_.page_bytes();
  if (max_bytes_ != 0 && counters_->bytes.load() + bytes > max_bytes_)
    throw OutOfMemoryError("KV cache page of " + std::to_string(bytes) + " bytes would exceed the KV memory cap of " +
                           std::to_string(max_bytes_) + " bytes (" + std::to_string(counters_->bytes.load()) +
                           " in use); release or trim sequences, or raise max_kv_bytes");
  float* data = static_cast<float*>(::operator new(bytes, std::align_val_t(64), std::nothrow));
  if (!data)
    throw OutOfMemoryError("could not allocate a KV cache page of " + std::to_string(bytes) + " bytes (" +
                           std::to_string(counters_->bytes.load()) + " bytes of KV cache in use)");
  std::memset(data, 0, bytes);
  const size_t now = counters_->bytes.fetch_add(bytes) + bytes;
  size_t peak = counters_->peak.load();
  while (now > peak && !counters_->peak.compare_exchange_weak(peak, now)) {
  }
  std::shared_ptr<Counters> counters = counters_;
  return std::shared_ptr<float>(data, [counters, bytes](float* p) {
    ::operator delete(p, std::align_val_t(64));
    counters->bytes.fetch_sub(bytes);
  });
}

PagedKvCache::PagedKvCache(std::shared_ptr<KvPagePool> pool) : pool_(std::move(pool)) {}

KvHeadView PagedKvCache::head_view(int64_t layer, int64_t kv_head) const {
  const KvPageLayout& layout = pool_->layout();
  KvHeadView view;
  view.pages = page_pointers_.data();
  view.key_offset = layout.key_offset(layer, kv_head);
  view.value_offset = layout.value_offset(layer, kv_head);
  view.head_dim = layout.head_dim;
  return view;
}

const float* PagedKvCache::key_min(int64_t page, int64_t layer, int64_t kv_head) const {
  return page_pointers_[static_cast<size_t>(page)] + pool_->layout().key_min_offset(layer, kv_head);
}

const float* PagedKvCache::key_max(int64_t page, int64_t layer, int64_t kv_head) const {
  return page_pointers_[static_cast<size_t>(page)] + pool_->layout().key_max_offset(layer, kv_head);
}

void PagedKvCache::make_page_private(int64_t page) {
  auto& slot = pages_[static_cast<size_t>(page)];
  if (slot.use_count() <= 1) return;
  std::shared_ptr<float> copy = pool_->allocate();
  std::memcpy(copy.get(), slot.get(), pool_->layout().page_bytes());
  slot = std::move(copy);
  page_pointers_[static_cast<size_t>(page)] = slot.get();
}

void PagedKvCache::rebuild_bounds(int64_t page, int64_t valid_positions) {
  const KvPageLayout& layout = pool_->layout();
  float* base = pages_[static_cast<size_t>(page)].get();
  for (int64_t layer = 0; layer < layout.layers; ++layer)
    for (int64_t head = 0; head < layout.kv_heads; ++head)
      page_bounds_rebuild(base + layout.key_offset(layer, head), valid_positions, layout.head_dim,
                          base + layout.key_min_offset(layer, head), base + layout.key_max_offset(layer, head));
}

void PagedKvCache::reserve(int64_t new_length) {
  const int64_t needed = pages_for(new_length);
  const int64_t first_written = length_ / kKvPageTokens;
  // Allocate everything first so a failure leaves the cache untouched.
  std::vector<std::shared_ptr<float>> fresh;
  for (int64_t p = static_cast<int64_t>(pages_.size()); p < needed; ++p) fresh.push_back(pool_->allocate());
  if (length_ % kKvPageTokens != 0 && first_written < static_cast<int64_t>(pages_.size()))
    make_page_private(first_written);
  for (auto& page : fresh) {
    page_pointers_.push_back(page.get());
    pages_.push_back(std::move(page));
  }
}

void PagedKvCache::commit(int64_t new_length) { length_ = new_length; }

void PagedKvCache::rollback() {
  const int64_t kept_pages = pages_for(length_);
  pages_.resize(static_cast<size_t>(kept_pages));
  page_pointers_.resize(static_cast<size_t>(kept_pages));
  if (length_ % kKvPageTokens != 0) rebuild_bounds(kept_pages - 1, length_ % kKvPageTokens);
}

void PagedKvCache::write(int64_t layer, int64_t kv_head, int64_t position, const float* key, const float* value) {
  const KvPageLayout& layout = pool_->layout();
  float* base = pages_[static_cast<size_t>(position / kKvPageTokens)].get();
  const int64_t slot = position % kKvPageTokens;
  const size_t row_bytes = static_cast<size_t>(layout.head_dim) * sizeof(float);
  float* key_row = base + layout.key_offset(layer, kv_head) + slot * layout.head_dim;
  float* value_row = base + layout.value_offset(layer, kv_head) + slot * layout.head_dim;
  std::memcpy(key_row, key, row_bytes);
  std::memcpy(value_row, value, row_bytes);
  if (pool_->fp8_rows()) {
    round_row_fp8_e4m3(key_row, layout.head_dim);
    round_row_fp8_e4m3(value_row, layout.head_dim);
    key = key_row;  // the bounds cover the keys as stored
  }
  float* key_min = base + layout.key_min_offset(layer, kv_head);
  float* key_max = base + layout.key_max_offset(layer, kv_head);
  if (slot == 0)
    page_bounds_reset(key, layout.head_dim, key_min, key_max);
  else
    page_bounds_extend(key, layout.head_dim, key_min, key_max);
}

void PagedKvCache::trim(int64_t length) {
  if (length < 0 || length > length_)
    throw RequestError("cannot trim a KV cache of " + std::to_string(length_) + " positions to " +
                       std::to_string(length));
  const int64_t kept_pages = pages_for(length);
  pages_.resize(static_cast<size_t>(kept_pages));
  page_pointers_.resize(static_cast<size_t>(kept_pages));
  const int64_t in_last = length % kKvPageTokens;
  if (in_last != 0 && length < length_) {
    make_page_private(kept_pages - 1);
    rebuild_bounds(kept_pages - 1, in_last);
  }
  length_ = length;
}

void PagedKvCache::make_writable(int64_t first_position, int64_t end_position) {
  const int64_t end_page = std::min<int64_t>(pages_for(end_position), static_cast<int64_t>(pages_.size()));
  for (int64_t page = first_position / kKvPageTokens; page < end_page; ++page) make_page_private(page);
}

float* PagedKvCache::key_row(int64_t layer, int64_t kv_head, int64_t position) {
  return pages_[static_cast<size_t>(position / kKvPageTokens)].get() + pool_->layout().key_offset(layer, kv_head) +
         position % kKvPageTokens * pool_->layout().head_dim;
}

float* PagedKvCache::value_row(int64_t layer, int64_t kv_head, int64_t position) {
  return pages_[static_cast<size_t>(position / kKvPageTokens)].get() + pool_->layout().value_offset(layer, kv_head) +
         position % kKvPageTokens * pool_->layout().head_dim;
}

void PagedKvCache::finish_rewrite(int64_t first_position, int64_t new_length) {
  const int64_t kept_pages = pages_for(new_length);
  pages_.resize(static_cast<size_t>(kept_pages));
  page_pointers_.resize(static_cast<size_t>(kept_pages));
  length_ = new_length;
  for (int64_t page = first_position / kKvPageTokens; page < kept_pages; ++page)
    rebuild_bounds(page, std::min<int64_t>(kKvPageTokens, new_length - page * kKvPageTokens));
}

void PagedKvCache::save(KvByteSink& sink) const {
  for_each_file_piece(pool_->layout(), length_, [&](size_t page, int64_t offset, size_t bytes) {
    sink.write(page_pointers_[page] + offset, bytes);
  });
}

void PagedKvCache::load(int64_t length, KvByteSource& source) {
  if (length_ != 0 || !pages_.empty()) throw RequestError("KV cache load into a cache that is not empty");
  reserve(length);
  try {
    const int64_t head_dim = pool_->layout().head_dim;
    for_each_file_piece(pool_->layout(), length, [&](size_t page, int64_t offset, size_t bytes) {
      float* rows = pages_[page].get() + offset;
      source.read(rows, bytes);
      // A file saved without the rounding is rounded as it comes in, like every row written.
      if (pool_->fp8_rows())
        for (size_t row = 0; row < bytes / sizeof(float) / size_t(head_dim); ++row)
          round_row_fp8_e4m3(rows + row * size_t(head_dim), head_dim);
    });
  } catch (...) {
    rollback();
    throw;
  }
  finish_rewrite(0, length);
}

std::unique_ptr<KvCache> PagedKvCache::fork(int64_t length) const {
  if (length < 0 || length > length_)
    throw RequestError("cannot fork " + std::to_string(length) + " positions of a KV cache holding " +
                       std::to_string(length_));
  auto copy = std::make_unique<PagedKvCache>(pool_);
  const int64_t kept_pages = pages_for(length);
  copy->pages_.assign(pages_.begin(), pages_.begin() + kept_pages);
  copy->page_pointers_.assign(page_pointers_.begin(), page_pointers_.begin() + kept_pages);
  copy->length_ = length;
  const int64_t in_last = length % kKvPageTokens;
  if (in_last != 0 && length < length_) {
    copy->make_page_private(kept_pages - 1);
    copy->rebuild_bounds(kept_pages - 1, in_last);
  }
  return copy;
}

}  // namespace tidal::cpu
