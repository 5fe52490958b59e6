// Top-k token selection of TidalDecode's selection layers. The scores are the raw scaled
// q . k of the current query against every cached position but the current one; the k - 1
// best positions are kept (the current token is always attended on top of them).
//
// Ranking: higher score first; equal scores rank the lower position first; NaN ranks last.
// The kept positions are returned in ascending order, which is the order the sparse
// attention visits them, so a selection that keeps everything reproduces dense attention.
#pragma once
#include <cstdint>

namespace tidal::cpu {

// How the query heads sharing one KV head (a GQA group) choose positions.
enum class GroupSelection {
  PerQueryHead,  // every query head ranks its own scores
  KvHeadMax,     // one shared list per KV head, ranked by the max over the group's heads
  KvHeadSum,     // one shared list per KV head, ranked by the sum over the group's heads
};

// Writes the min(keep, count) best positions of scores[0, count) to `out`, ascending, and
// returns how many. `scratch` holds `count` int32.
int64_t select_top_positions(const float* scores, int64_t count, int64_t keep, int32_t* out, int32_t* scratch);

// out[i] = max or sum (heads in index order) of scores[(first_head + g) * stride + i] over
// g < group_size, for i < count.
void reduce_group_scores(const float* scores, int64_t stride, int64_t first_head, int64_t group_size, int64_t count,
                         GroupSelection reduce, float* out);

// Selection for every query head: scores is [num_heads][stride]; query head h belongs to KV
// head h / group_size. Writes min(keep, count) ascending positions per head to
// out[h * keep ...] and returns that count. Single-threaded reference of what the backend
// does per head in parallel.
int64_t select_positions_for_heads(const float* scores, int64_t stride, int64_t num_heads, int64_t group_size,
                                   int64_t count, int64_t keep, GroupSelection reduce, int32_t* out);

}  // namespace tidal::cpu
