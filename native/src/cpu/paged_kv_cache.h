// The CPU KV cache: fixed-size pages of kKvPageTokens positions, shared between sequences by
// reference count. A fork shares every full page and copies only a partial last page; a
// write into a shared page copies it first (copy on write), so forks never see each
// other's later tokens.
//
// One page holds, for every layer, [kv_heads][16][head_dim] keys, the same for values, and
// the Quest bounds of the page: per KV head the element-wise min and max of its keys, kept
// up to date on every append and rebuilt when a trim cuts into the page. Those bounds cost
// 2 / (2 * 16) = 6.25% on top of the K/V floats.
//
// Keys and values are kept in f32, as the reference computes them: 4 bytes per element
// (Qwen2.5-1.5B: 28 layers x 2 KV heads x 128 x 2 x 4 B = 56 KiB per token, 1.8 GiB at 32K).
// A 16-bit cache would halve that and the bytes a decode step reads.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/attention.h"
#include "engine/backend.h"

namespace tidal::cpu {

struct KvPageLayout {
  int64_t layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;

  int64_t block_floats() const { return kv_heads * kKvPageTokens * head_dim; }
  int64_t layer_floats() const { return 2 * block_floats() + 2 * kv_heads * head_dim; }
  int64_t page_floats() const { return layers * layer_floats(); }
  size_t page_bytes() const { return static_cast<size_t>(page_floats()) * sizeof(float); }

  int64_t key_offset(int64_t layer, int64_t head) const {
    return layer * layer_floats() + head * kKvPageTokens * head_dim;
  }
  int64_t value_offset(int64_t layer, int64_t head) const { return key_offset(layer, head) + block_floats(); }
  int64_t key_min_offset(int64_t layer, int64_t head) const {
    return layer * layer_floats() + 2 * block_floats() + head * head_dim;
  }
  int64_t key_max_offset(int64_t layer, int64_t head) const {
    return key_min_offset(layer, head) + kv_heads * head_dim;
  }
};

// Allocates pages and counts the memory they hold; enforces an optional cap. With
// `fp8_rows`, every K/V row written is first rounded as an FP8 E4M3 cache with an f16 scale
// per row keeps it (cpu/fp8_e4m3.h): an accuracy measurement, the pages still hold floats.
class KvPagePool {
 public:
  KvPagePool(const KvPageLayout& layout, size_t max_bytes, bool fp8_rows = false);
  const KvPageLayout& layout() const { return layout_; }
  bool fp8_rows() const { return fp8_rows_; }
  // A zero-initialised page. Throws OutOfMemoryError naming the bytes asked for.
  std::shared_ptr<float> allocate();
  size_t bytes_in_use() const { return counters_->bytes.load(); }
  size_t bytes_peak() const { return counters_->peak.load(); }

 private:
  struct Counters {
    std::atomic<size_t> bytes{0};
    std::atomic<size_t> peak{0};
  };
  KvPageLayout layout_;
  size_t max_bytes_;
  bool fp8_rows_;
  std::shared_ptr<Counters> counters_;
};

class PagedKvCache final : public KvCache {
 public:
  explicit PagedKvCache(std::shared_ptr<KvPagePool> pool);

  int64_t length() const override { return length_; }
  const KvPageLayout& layout() const { return pool_->layout(); }
  bool fp8_rows() const { return pool_->fp8_rows(); }
  void trim(int64_t length) override;
  std::unique_ptr<KvCache> fork(int64_t length) const override;
  size_t bytes_referenced() const override { return pages_.size() * pool_->layout().page_bytes(); }

  // Makes positions [length(), new_length) writable: allocates the missing pages and copies
  // a shared partial last page. Throws OutOfMemoryError before changing anything visible.
  void reserve(int64_t new_length);
  // Declares positions [0, new_length) valid after they were written.
  void commit(int64_t new_length);
  // Forgets positions written since the last commit (after a failed forward pass): drops
  // their pages and restores the bounds of the last valid page.
  void rollback();

  // Stores the key and value of one KV head at `position` (reserved, >= every position
  // written before in this page; rounded first when the pool has fp8_rows) and widens the
  // page's key bounds.
  void write(int64_t layer, int64_t kv_head, int64_t position, const float* key, const float* value);

  // Rewriting rows in place (compaction, cpu/kv_compaction.h): make_writable copies the
  // shared pages among those holding positions [first_position, end_position) so their rows
  // can be rewritten (throws OutOfMemoryError with nothing visible changed: a private copy
  // holds what the shared page held); finish_rewrite then keeps `new_length` positions and
  // rebuilds the bounds of every page from first_position's.
  void make_writable(int64_t first_position, int64_t end_position);
  float* key_row(int64_t layer, int64_t kv_head, int64_t position);
  float* value_row(int64_t layer, int64_t kv_head, int64_t position);
  void finish_rewrite(int64_t first_position, int64_t new_length);

  // The K/V of positions [0, length()) in file order (see KvByteSink).
  void save(KvByteSink& sink) const;
  // Fills an empty cache with `length` positions in file order (rounded when the pool has
  // fp8_rows) and rebuilds their bounds. On an exception the cache stays empty.
  void load(int64_t length, KvByteSource& source);

  // Page base pointers, one per page.
  const float* const* page_table() const { return page_pointers_.data(); }
  int64_t page_count() const { return static_cast<int64_t>(pages_.size()); }
  KvHeadView head_view(int64_t layer, int64_t kv_head) const;
  const float* key_min(int64_t page, int64_t layer, int64_t kv_head) const;
  const float* key_max(int64_t page, int64_t layer, int64_t kv_head) const;

 private:
  void make_page_private(int64_t page);
  void rebuild_bounds(int64_t page, int64_t valid_positions);

  std::shared_ptr<KvPagePool> pool_;
  std::vector<std::shared_ptr<float>> pages_;
  std::vector<const float*> page_pointers_;
  int64_t length_ = 0;
};

}  // namespace tidal::cpu
