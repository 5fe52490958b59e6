// KV-cache compaction on the CPU backend (llama.cpp's "context shift"): the cache keeps only
// some ranges of its positions, moved down to follow each other. A position moved from `old`
// to `new` keeps its value row; its key row, RoPE-rotated for `old`, is rotated by
// (new - old) * inv_freq_i per pair (see rope_delta_angles), which is exactly the key that
// position `new` would have had for the same pre-RoPE key. The result is approximate only in
// that the moved K/V were computed attending to positions that are now gone.
#pragma once
#include <vector>

#include "cpu/paged_kv_cache.h"
#include "cpu/thread_pool.h"
#include "engine/backend.h"

namespace tidal::cpu {

// `ranges` are validated by the engine (ascending, disjoint, within the cache). Ranges that
// stay where they are (a leading range from 0) are not touched. Throws OutOfMemoryError,
// with the cache unchanged, when shared pages cannot be copied.
void compact_paged_kv(PagedKvCache& cache, const KvRanges& ranges, const std::vector<float>& inverse_frequencies,
                      ThreadPool& pool);

}  // namespace tidal::cpu
