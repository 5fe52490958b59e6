#include "cpu/kv_compaction.h"

#include <cstring>

#include "cpu/fp8_e4m3.h"
#include "cpu/rope.h"

namespace tidal::cpu {

namespace {

// One range that moves: rows [from, from + count) go to [to, to + count), to < from, with
// the rotation by (to - from) * inv_freq_i.
struct Move {
  int64_t from, to, count;
  std::vector<double> cos_values, sin_values;
};

}  // namespace

void compact_paged_kv(PagedKvCache& cache, const KvRanges& ranges, const std::vector<float>& inverse_frequencies,
                      ThreadPool& pool) {
  const int64_t half = static_cast<int64_t>(inverse_frequencies.size());
  std::vector<Move> moves;
  int64_t new_length = 0;
  for (const auto& [start, count] : ranges) {
    if (start != new_length) {
      Move move{start, new_length, count, std::vector<double>(static_cast<size_t>(half)),
                std::vector<double>(static_cast<size_t>(half))};
      rope_delta_angles(inverse_frequencies.data(), half, new_length - start, move.cos_values.data(),
                        move.sin_values.data());
      moves.push_back(std::move(move));
    }
    new_length += count;
  }
  if (moves.empty()) {  // the ranges are a prefix [0, new_length)
    cache.trim(new_length);
    return;
  }
  const int64_t first_moved = moves.front().to;
  cache.make_writable(first_moved, new_length);

  // Rows only move down and are visited in ascending order, so a row is read before any
  // write can land on it; (layer, kv_head) blocks are disjoint, one task each.
  const KvPageLayout& layout = cache.layout();
  const size_t row_bytes = static_cast<size_t>(layout.head_dim) * sizeof(float);
  const bool fp8 = cache.fp8_rows();
  pool.parallel_for(layout.layers * layout.kv_heads, [&](int64_t begin, int64_t end, int) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t layer = block / layout.kv_heads, head = block % layout.kv_heads;
      for (const Move& move : moves)
        for (int64_t i = 0; i < move.count; ++i) {
          float* key = cache.key_row(layer, head, move.to + i);
          std::memcpy(key, cache.key_row(layer, head, move.from + i), row_bytes);
          rotate_pairs(key, move.cos_values.data(), move.sin_values.data(), half);
          // A rotated key is a new row: an FP8 cache stores it rounded again (as the GPU's does).
          if (fp8) round_row_fp8_e4m3(key, layout.head_dim);
          std::memcpy(cache.value_row(layer, head, move.to + i), cache.value_row(layer, head, move.from + i),
                      row_bytes);
        }
    }
  });
  cache.finish_rewrite(first_moved, new_length);
}

}  // namespace tidal::cpu
