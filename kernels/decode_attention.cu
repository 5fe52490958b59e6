// Decode attention, flash-decoding style: one query vector per head against one layer's KV
// cache, the positions split over blocks so that a long context fills every SM.
//
// Block (split, unit) attends the positions [split * split_rows, +split_rows) of its list
// (dense: the positions themselves). A unit is a KV head with its `group` query heads (dense
// and per-KV-head lists: each K/V row is read once for the whole group) or one query head
// (per-query-head lists: every head reads its own rows of its KV head).
//
// K/V rows stream through shared memory in tiles of kTileRows rows: cp.async copies (16
// bytes each, coalesced along the rows) keep kAttentionStages - 1 tiles in flight while the
// block computes on the oldest. Threads work in row groups of kLanesPerRow lanes; a row group
// owns one row of the tile at a time and each lane holds kVecs 16-byte pieces of it (8 bf16
// each), the matching slices of the group's query vectors, and the matching slice of the
// output accumulators. Per row:
//   s_g   = sum over lanes (q_g . k)          (XOR-butterfly inside the row group)
//   m'    = max(m, s), alpha = 2^(m - m'), p = 2^(s - m')
//   l     = l * alpha + p,   acc = acc * alpha + p * v
// with q prescaled by log2(e) / sqrt(head_dim), so s is in base-2 units (alpha is applied once
// per kRows rows). At the end the row groups of the block are merged through shared memory
// into one partial (max, sum, acc[head_dim]) per (query head, split), and the last block of
// a unit to finish (a counter per unit, bumped after a memory fence, reset by that block)
// merges the splits of the unit's heads:
//   out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s,   M = max_s m_s.
// (A separate combine kernel cost more, mostly its launch latency: bench/NOTES.md.)
//
// An FP8 cache (kFp8) has rows of head_dim one-byte codes and a scale pair per row
// (kernels/kv_fp8.cuh). Lanes keep the same 8 values per piece (8 bytes instead of 16), a tile
// stage carries the tile's scale pairs after its K and V rows (one 4-byte copy per row), the
// key scale multiplies the finished dot product and the value scale the row's softmax weight.
// Stages are half as large, so there are more of them in flight.
#include "decode_attention.h"

#include <cuda_bf16.h>

#include <type_traits>

#include "common.cuh"
#include "kv_fp8.cuh"

namespace tidal::cuda::detail {

namespace {

// Tiles in the shared-memory pipeline (kAttentionStages - 1 in flight while one is used).
constexpr int kAttentionStages = 4;

// A running max below any real score: keeps 2^(m - m') finite (0 or 1) before the first row.
constexpr float kEmptyMax = -1e30f;

template <int kHeadDim, int kGroup, int kVecs, int kRows, bool kFp8>
struct SplitLayout {
  static constexpr int kLanesPerRow = kHeadDim / (8 * kVecs);
  static constexpr int kRowGroups = kAttentionThreads / kLanesPerRow;
  static constexpr int kTileRows = kRowGroups * kRows;
  static constexpr int kStages = kFp8 ? 2 * kAttentionStages - 2 : kAttentionStages;
  static constexpr int kElementBytes = kFp8 ? 1 : 2;
  static constexpr int kRowBytes = kHeadDim * kElementBytes;
  static constexpr int kUnitsPerRow = kRowBytes / 16;  // 16-byte copies
  static constexpr int kTileBytes = kTileRows * kRowBytes;
  static constexpr int kStageBytes = 2 * kTileBytes + (kFp8 ? kTileRows * 4 : 0);  // K, V, scale pairs
  static constexpr int kCopiesPerThread = 2 * kTileRows * kUnitsPerRow / kAttentionThreads;
  // A lane reads pieces of 8 values (16 bytes of bf16, 8 of FP8). Lanes that share a
  // shared-memory phase (8 lanes of 16-byte loads, 16 lanes of 8-byte ones) must hit distinct
  // banks: the pieces of the rows they read are XOR-swizzled apart, by multiples of
  // kLanesPerRow (even for FP8, so that a 16-byte copy's two pieces stay side by side).
  static constexpr int kPieceBytes = 8 * kElementBytes;
  static constexpr int kPhaseLanes = kFp8 ? 16 : 8;
  static constexpr int kRowsPerLine = kRowBytes >= 128 ? 1 : 128 / kRowBytes;
  static constexpr int kSwizzleRows =
      kLanesPerRow * kRowsPerLine >= kPhaseLanes ? 1 : kPhaseLanes / (kLanesPerRow * kRowsPerLine);
  static constexpr size_t kStagesBytes = size_t(kStages) * kStageBytes;
  static constexpr size_t kMergeBytes = size_t(kRowGroups) * kGroup * kHeadDim * sizeof(float);
  static constexpr size_t kCombineBytes = size_t(kGroup) * (kMaxSplits + 1) * sizeof(float);
  static constexpr size_t kSharedBytes = kStagesBytes > kMergeBytes
                                             ? (kStagesBytes > kCombineBytes ? kStagesBytes : kCombineBytes)
                                             : (kMergeBytes > kCombineBytes ? kMergeBytes : kCombineBytes);
  static_assert(kLanesPerRow >= 1 && kLanesPerRow <= kWarpSize && kHeadDim % (8 * kVecs) == 0, "bad row split");
  static_assert((2 * kTileRows * kUnitsPerRow) % kAttentionThreads == 0, "tile copies must spread evenly");
  static_assert(!kFp8 || (kLanesPerRow % 2 == 0 && kSwizzleRows * kLanesPerRow <= kHeadDim / 8),
                "FP8 swizzle must keep copy pairs and stay inside the row");

  // Byte offset of piece `piece` (8 values) of tile row `row` in a stage's K (or V) tile.
  __device__ static __forceinline__ int offset(int row, int piece) {
    return row * kRowBytes + (piece ^ (((row / kRowsPerLine) % kSwizzleRows) * kLanesPerRow)) * kPieceBytes;
  }
  // Byte offset of 16-byte copy unit `unit` of tile row `row`.
  __device__ static __forceinline__ int copy_offset(int row, int unit) {
    return kFp8 ? offset(row, 2 * unit) : offset(row, unit);
  }
};

// Merges the num_splits partials of the unit's `heads` query heads (first_head onwards) into
// their outputs, all heads at once so that one round of loads serves them all: warp w weighs
// the splits of heads w, w + 4, ... (max, 2^(m_s - M), sum), then thread t owns dimension
// t % kHeadDim of heads t / kHeadDim, t / kHeadDim + kSlots, ..., with kBatch splits of each
// loaded per round (32 loads in flight per thread). The partials come from other blocks of
// this launch, so they are read through L2 (__ldcg), never a stale L1 line. `scratch` holds
// kGroup * (kMaxSplits + 1) floats.
template <int kHeadDim, int kGroup>
__device__ __forceinline__ void combine_unit(const AttentionLaunch& p, int first_head, int heads, float* scratch) {
  constexpr int kWarps = kAttentionThreads / kWarpSize;
  constexpr int kSlots = kAttentionThreads / kHeadDim;  // heads served side by side
  constexpr int kHeadsPerThread = (kGroup + kSlots - 1) / kSlots;
  constexpr int kBatch = 32 / kHeadsPerThread;
  float* weights = scratch;                       // [kGroup][kMaxSplits]
  float* totals = scratch + kGroup * kMaxSplits;  // [kGroup]
  const int t = threadIdx.x, warp = t / kWarpSize, lane = t % kWarpSize;
  const int splits = p.num_splits;

  for (int g = warp; g < heads; g += kWarps) {
    const float* stats = p.partial_stats + int64_t(first_head + g) * splits * 2;
    float local_max = kEmptyMax;
    for (int s = lane; s < splits; s += kWarpSize) local_max = fmaxf(local_max, __ldcg(stats + 2 * s));
    const float total_max = warp_max(local_max);
    float local_sum = 0.0f;
    for (int s = lane; s < splits; s += kWarpSize) {
      const float weight = softmax_weight(__ldcg(stats + 2 * s), total_max);
      weights[g * kMaxSplits + s] = weight;
      local_sum = merge_add(local_sum, __ldcg(stats + 2 * s + 1), weight);
    }
    const float total_sum = warp_sum(local_sum);
    if (lane == 0) totals[g] = total_sum;
  }
  __syncthreads();

  const int d = t % kHeadDim, slot = t / kHeadDim;
  float value[kHeadsPerThread];
  const float* acc[kHeadsPerThread];
#pragma unroll
  for (int h = 0; h < kHeadsPerThread; ++h) {
    value[h] = 0.0f;
    const int g = slot + h * kSlots;
    acc[h] = p.partial_acc + int64_t(first_head + (g < heads ? g : 0)) * splits * kHeadDim + d;
  }
  for (int s = 0; s < splits; s += kBatch) {
    float a[kHeadsPerThread][kBatch];
#pragma unroll
    for (int h = 0; h < kHeadsPerThread; ++h)
#pragma unroll
      for (int j = 0; j < kBatch; ++j) a[h][j] = s + j < splits ? __ldcg(acc[h] + int64_t(s + j) * kHeadDim) : 0.0f;
#pragma unroll
    for (int h = 0; h < kHeadsPerThread; ++h) {
      const float* w = weights + (slot + h * kSlots) * kMaxSplits;
#pragma unroll
      for (int j = 0; j < kBatch; ++j)
        if (s + j < splits) value[h] = merge_add(value[h], a[h][j], w[s + j]);
    }
  }
#pragma unroll
  for (int h = 0; h < kHeadsPerThread; ++h) {
    const int g = slot + h * kSlots;
    if (g >= heads) continue;
    const float out = value[h] / totals[g];
    const int64_t index = int64_t(first_head + g) * kHeadDim + d;
    if (p.out_bf16) {
      store_value(static_cast<__nv_bfloat16*>(p.out) + index, out);
    } else {
      store_value(static_cast<float*>(p.out) + index, out);
    }
  }
}

template <int kHeadDim, int kGroup, int kVecs, int kRows, PositionMode kMode, typename QueryT, bool kFp8>
__global__ void __launch_bounds__(kAttentionThreads) attention_split_kernel(const AttentionLaunch p) {
  let_next_kernel_start();
  using Layout = SplitLayout<kHeadDim, kGroup, kVecs, kRows, kFp8>;
  constexpr int kLanesPerRow = Layout::kLanesPerRow;
  constexpr int kRowGroups = Layout::kRowGroups;
  constexpr int kTileRows = Layout::kTileRows;
  constexpr int kStages = Layout::kStages;
  extern __shared__ __align__(16) uint16_t tiles[];
  char* const stages = reinterpret_cast<char*>(tiles);

  const int split = blockIdx.x;
  const int unit = blockIdx.y;
  const int lane = threadIdx.x % kLanesPerRow;
  const int row_group = threadIdx.x / kLanesPerRow;

  int kv_head, first_head, heads;
  if constexpr (kMode == PositionMode::PerQueryHead) {
    first_head = unit;
    kv_head = unit / p.group;
    heads = 1;
  } else {
    kv_head = unit;
    first_head = unit * p.group;
    heads = p.group;
  }

  const int32_t* list = nullptr;
  if constexpr (kMode != PositionMode::Dense)
    list = p.positions + int64_t(kMode == PositionMode::PerQueryHead ? first_head : kv_head) * p.position_stride;
  constexpr int kElementBytes = Layout::kElementBytes;
  const char* keys = static_cast<const char*>(p.keys) + int64_t(kv_head) * p.key_head_stride * kElementBytes;
  const char* values = static_cast<const char*>(p.values) + int64_t(kv_head) * p.value_head_stride * kElementBytes;
  const int64_t key_row_bytes = p.key_row_stride * kElementBytes, value_row_bytes = p.value_row_stride * kElementBytes;
  const uint32_t* scales = kFp8 ? p.scales + int64_t(kv_head) * p.scale_head_stride : nullptr;
  const int64_t count = p.count_device ? *p.count_device : p.count;
  const int64_t begin = int64_t(split) * p.split_rows;
  const int64_t end = min(count, begin + p.split_rows);  // <= begin: an empty split
  const int tile_count = static_cast<int>(ceil_div(max(end - begin, int64_t(0)), kTileRows));

  // Sparse lists: the positions of this thread's rows of a tile (its K and V copies share
  // rows, so half as many as copies), loaded one tile ahead of their copies. A list load
  // issued right before the copies that need its result would put one global-memory latency
  // on the critical path of every tile.
  constexpr int kHalf = kTileRows * Layout::kUnitsPerRow;  // copies of one tile's K (or V)
  constexpr int kListLoads = Layout::kCopiesPerThread / 2;
  static_assert(kHalf % kAttentionThreads == 0, "a thread's K and V copies must share rows");
  auto load_positions = [&](int tile, int32_t(&out)[kListLoads]) {
    if constexpr (kMode != PositionMode::Dense) {
      const int64_t tile_begin = begin + int64_t(tile) * kTileRows;
#pragma unroll
      for (int j = 0; j < kListLoads; ++j) {
        const int64_t i = tile_begin + ((threadIdx.x + j * kAttentionThreads) % kHalf) / Layout::kUnitsPerRow;
        out[j] = tile < tile_count && i < end ? __ldg(list + i) : 0;
      }
    }
  };

  // Queues the copies of tile `tile` (K and V rows, 16 bytes per copy) into its stage; rows
  // past the split are zero-filled. Always commits a group, so that group counts line up.
  auto issue = [&](int tile, const int32_t(&listed)[kListLoads]) {
    if (tile < tile_count) {
      char* stage = stages + (tile % kStages) * Layout::kStageBytes;
      const int64_t tile_begin = begin + int64_t(tile) * kTileRows;
#pragma unroll
      for (int j = 0; j < Layout::kCopiesPerThread; ++j) {
        const int copy = threadIdx.x + j * kAttentionThreads;
        const bool is_value = copy >= kHalf;
        const int row = (copy % kHalf) / Layout::kUnitsPerRow;
        const int piece = copy % Layout::kUnitsPerRow;
        const int64_t i = tile_begin + row;
        const bool valid = i < end;
        int64_t position = i;
        if constexpr (kMode != PositionMode::Dense) position = listed[j % kListLoads];
        const char* source = is_value ? values + position * value_row_bytes : keys + position * key_row_bytes;
        copy_async_16(stage + (is_value ? Layout::kTileBytes : 0) + Layout::copy_offset(row, piece),
                      valid ? source + piece * 16 : keys, valid);
        if constexpr (kFp8) {
          // The thread that copies a row's first key piece copies its scale pair too.
          if (!is_value && piece == 0)
            copy_async_4(stage + 2 * Layout::kTileBytes + row * 4, valid ? scales + position : scales, valid);
        }
      }
    }
    copy_async_commit();
  };
  // Start the first tiles before anything else, so that their latency overlaps the query load.
  int32_t listed[kListLoads] = {};
  {
    int32_t first[kStages - 1][kListLoads] = {};
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) load_positions(s, first[s]);
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) issue(s, first[s]);
  }
  load_positions(kStages - 1, listed);

  // This lane's slice of every query vector of the unit, in base-2 softmax units.
  float q[kGroup][kVecs][8];
  const QueryT* query = static_cast<const QueryT*>(p.query);
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
#pragma unroll
    for (int v = 0; v < kVecs; ++v) {
      if (g < heads) {
        load_floats8(query + int64_t(first_head + g) * kHeadDim + (lane + v * kLanesPerRow) * 8, q[g][v]);
#pragma unroll
        for (int e = 0; e < 8; ++e) q[g][v][e] *= p.scale_log2;
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) q[g][v][e] = 0.0f;
      }
    }
  }

  float m[kGroup], l[kGroup], acc[kGroup][kVecs][8];
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    m[g] = kEmptyMax;
    l[g] = 0.0f;
#pragma unroll
    for (int v = 0; v < kVecs; ++v)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][v][e] = 0.0f;
  }

  for (int tile = 0; tile < tile_count; ++tile) {
    copy_async_wait<kStages - 2>();  // this thread's copies of `tile` have landed
    __syncthreads();                 // everyone's have, and everyone is done with the stage refilled next
    issue(tile + kStages - 1, listed);
    load_positions(tile + kStages, listed);
    const char* key_tile = stages + (tile % kStages) * Layout::kStageBytes;
    const char* value_tile = key_tile + Layout::kTileBytes;
    const uint32_t* scale_tile = reinterpret_cast<const uint32_t*>(value_tile + Layout::kTileBytes);
    const int64_t tile_begin = begin + int64_t(tile) * kTileRows;

    float s[kRows][kGroup];
    bool valid[kRows];
    float value_scale[kRows];
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      const int row = u * kRowGroups + row_group;
      valid[u] = tile_begin + row < end;
      float k[kVecs][8];
      float key_scale = 1.0f;
      if constexpr (kFp8) {
        const uint32_t pair = scale_tile[row];
        key_scale = key_scale_of(pair);
        value_scale[u] = value_scale_of(pair);
#pragma unroll
        for (int v = 0; v < kVecs; ++v) {
          uint32_t h[4];
          fp8x8_to_half8(*reinterpret_cast<const uint2*>(key_tile + Layout::offset(row, lane + v * kLanesPerRow)), h);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            k[v][2 * e] = half_low(h[e]);
            k[v][2 * e + 1] = half_high(h[e]);
          }
        }
      } else {
        value_scale[u] = 1.0f;
#pragma unroll
        for (int v = 0; v < kVecs; ++v)
          unpack_bf16x8(*reinterpret_cast<const uint4*>(key_tile + Layout::offset(row, lane + v * kLanesPerRow)), k[v]);
      }
#pragma unroll
      for (int g = 0; g < kGroup; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int v = 0; v < kVecs; ++v)
#pragma unroll
          for (int e = 0; e < 8; ++e) dot = fmaf(q[g][v][e], k[v][e], dot);
        dot = group_sum<kLanesPerRow>(dot);
        if constexpr (kFp8) dot *= key_scale;
        s[u][g] = valid[u] ? dot : -INFINITY;
      }
    }

    if (p.scores != nullptr) {
      // Dense only: the position is the row's index. Lane g % kLanesPerRow writes head g.
#pragma unroll
      for (int u = 0; u < kRows; ++u)
#pragma unroll
        for (int g = 0; g < kGroup; ++g)
          if (valid[u] && g < heads && lane == g % kLanesPerRow)
            p.scores[int64_t(first_head + g) * p.score_stride + tile_begin + u * kRowGroups + row_group] =
                s[u][g] * kLn2;
    }

    // The row's 8 values of each piece as 4 32-bit words: bf16 pairs, or f16 pairs widened
    // from the FP8 codes (exact), so that the loop below unpacks one word per 2 values either way.
    uint4 value_raw[kRows][kVecs];
#pragma unroll
    for (int u = 0; u < kRows; ++u)
#pragma unroll
      for (int v = 0; v < kVecs; ++v) {
        const char* piece = value_tile + Layout::offset(u * kRowGroups + row_group, lane + v * kLanesPerRow);
        if constexpr (kFp8) {
          uint32_t h[4];
          fp8x8_to_half8(*reinterpret_cast<const uint2*>(piece), h);
          value_raw[u][v] = make_uint4(h[0], h[1], h[2], h[3]);
        } else {
          value_raw[u][v] = *reinterpret_cast<const uint4*>(piece);
        }
      }

#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      float new_max = m[g];
#pragma unroll
      for (int u = 0; u < kRows; ++u) new_max = fmaxf(new_max, s[u][g]);
      const float alpha = softmax_weight(m[g], new_max);
      float weight[kRows];
      float weight_sum = 0.0f;
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        weight[u] = softmax_weight(s[u][g], new_max);
        weight_sum += weight[u];
      }
      // Once the running max settles, most rows leave it unchanged (alpha exactly 1): with
      // a group of 4 or more heads the accumulators are rescaled only when some lane of the
      // warp saw it grow, a uniform branch that skips 8 * kVecs multiplies per head and kRows
      // rows, bitwise the same (faster with groups of 4+; for one head per KV head the vote
      // cost more than it saved: bench/NOTES.md).
      const bool rescale = kGroup < 4 || __any_sync(0xffffffffu, new_max != m[g]);
      m[g] = new_max;
      l[g] = merge_add(weight_sum, l[g], alpha);
      if (rescale) {
#pragma unroll
        for (int v = 0; v < kVecs; ++v)
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[g][v][e] *= alpha;
      }
      if constexpr (kFp8) {
#pragma unroll
        for (int u = 0; u < kRows; ++u) weight[u] *= value_scale[u];
      }
#pragma unroll
      for (int v = 0; v < kVecs; ++v) {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          float a = acc[g][v][e];
#pragma unroll
          for (int u = 0; u < kRows; ++u) {
            const uint32_t word = (&value_raw[u][v].x)[e / 2];
            float x;
            if constexpr (kFp8) {
              x = (e % 2 == 0) ? half_low(word) : half_high(word);
            } else {
              x = (e % 2 == 0) ? bf16_low(word) : bf16_high(word);
            }
            a = fmaf(weight[u], x, a);
          }
          acc[g][v][e] = a;
        }
      }
    }
  }
  copy_async_wait<0>();
  __syncthreads();  // the stages are reused as the merge buffer below

  // Merge the row groups of the block.
  __shared__ float merge_max[kRowGroups][kGroup];  // becomes the weight 2^(m - M) in place
  __shared__ float merge_sum[kRowGroups][kGroup];
  __shared__ float head_max[kGroup];
  auto merge_acc = reinterpret_cast<float(*)[kGroup][kHeadDim]>(tiles);
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      merge_max[row_group][g] = m[g];
      merge_sum[row_group][g] = l[g];
    }
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g)
#pragma unroll
    for (int v = 0; v < kVecs; ++v) {
      float4* target = reinterpret_cast<float4*>(&merge_acc[row_group][g][(lane + v * kLanesPerRow) * 8]);
      target[0] = make_float4(acc[g][v][0], acc[g][v][1], acc[g][v][2], acc[g][v][3]);
      target[1] = make_float4(acc[g][v][4], acc[g][v][5], acc[g][v][6], acc[g][v][7]);
    }
  __syncthreads();
  if (threadIdx.x < kGroup) {
    float block_max = kEmptyMax;
    for (int r = 0; r < kRowGroups; ++r) block_max = fmaxf(block_max, merge_max[r][threadIdx.x]);
    head_max[threadIdx.x] = block_max;
  }
  __syncthreads();
  for (int index = threadIdx.x; index < kRowGroups * kGroup; index += kAttentionThreads) {
    const int r = index / kGroup, g = index % kGroup;
    merge_max[r][g] = softmax_weight(merge_max[r][g], head_max[g]);
  }
  __syncthreads();

  if (threadIdx.x < heads) {
    const int g = threadIdx.x;
    float sum = 0.0f;
    for (int r = 0; r < kRowGroups; ++r) sum = merge_add(sum, merge_sum[r][g], merge_max[r][g]);
    float* stats = p.partial_stats + (int64_t(first_head + g) * p.num_splits + split) * 2;
    stats[0] = head_max[g];
    stats[1] = sum;
  }
  for (int index = threadIdx.x; index < heads * kHeadDim; index += kAttentionThreads) {
    const int g = index / kHeadDim, d = index % kHeadDim;
    float sum = 0.0f;
    for (int r = 0; r < kRowGroups; ++r) sum = merge_add(sum, merge_acc[r][g][d], merge_max[r][g]);
    p.partial_acc[(int64_t(first_head + g) * p.num_splits + split) * kHeadDim + d] = sum;
  }

  // The last block of the unit merges its splits.
  __shared__ bool last_block;
  __threadfence();  // this thread's partials are visible device-wide before the count says so
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(p.split_counters + unit, 1u) == unsigned(p.num_splits - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();  // and the other blocks' partials are visible to this one
  combine_unit<kHeadDim, kGroup>(p, first_head, heads, reinterpret_cast<float*>(tiles));
  if (threadIdx.x == 0) p.split_counters[unit] = 0;  // ready for the next launch
}

// Lanes per row and rows per tile by group size: q and acc slices cost 16 * group * vecs
// registers, kept at 64 to 128; a tile is 16 KB of K and V (32 rows of 128 or 64 of 64).
template <int kGroup>
struct SplitShape {
  static constexpr int kVecs = kGroup <= 2 ? 4 : (kGroup == 4 ? 2 : 1);
  static constexpr int kRows = 4 / kVecs;
};

template <typename Kernel>
struct SplitKernel {
  Kernel kernel;
  size_t shared_bytes;
  int blocks_per_sm;  // resident blocks per SM (occupancy), 1 if it could not be read
};

// The split kernel instance for a head size, group bucket, list mode and query type, with
// its shared-memory size (above the default 48 KB limit, raised once per instance) and its
// occupancy, read once (devices of one process are assumed alike).
template <int kHeadDim, int kGroup, PositionMode kMode, typename QueryT, bool kFp8>
auto split_kernel() {
  using Shape = SplitShape<kGroup>;
  constexpr auto kernel = attention_split_kernel<kHeadDim, kGroup, Shape::kVecs, Shape::kRows, kMode, QueryT, kFp8>;
  constexpr size_t shared = SplitLayout<kHeadDim, kGroup, Shape::kVecs, Shape::kRows, kFp8>::kSharedBytes;
  static const int blocks_per_sm = [] {
    int blocks = 0;
    // A failure here shows again, with its message, when the kernel is launched.
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)) !=
            cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kAttentionThreads, shared) != cudaSuccess)
      return 1;
    return blocks > 0 ? blocks : 1;
  }();
  return SplitKernel<decltype(kernel)>{kernel, shared, blocks_per_sm};
}

int group_bucket(const AttentionLaunch& launch) {
  if (launch.mode == PositionMode::PerQueryHead) return 1;
  const int g = launch.group;
  return g <= 1 ? 1 : g <= 2 ? 2 : g <= 4 ? 4 : 8;
}

// Calls fn(kernel) with the split kernel instance for this launch (`mode` overrides the
// launch's own, for the occupancy query). An FP8 cache takes an fp32 query (the backend's).
template <typename Fn>
cudaError_t with_split_kernel(const AttentionLaunch& launch, PositionMode mode, Fn&& fn) {
  auto by_group = [&](auto head_dim_tag, auto query_tag, auto fp8_tag) -> cudaError_t {
    constexpr int kHeadDim = decltype(head_dim_tag)::value;
    using QueryT = typename decltype(query_tag)::type;
    constexpr bool kFp8 = decltype(fp8_tag)::value;
    if (mode == PositionMode::PerQueryHead)
      return fn(split_kernel<kHeadDim, 1, PositionMode::PerQueryHead, QueryT, kFp8>());
    const bool dense = mode == PositionMode::Dense;
    switch (group_bucket(launch)) {
      case 1:
        return dense ? fn(split_kernel<kHeadDim, 1, PositionMode::Dense, QueryT, kFp8>())
                     : fn(split_kernel<kHeadDim, 1, PositionMode::PerKvHead, QueryT, kFp8>());
      case 2:
        return dense ? fn(split_kernel<kHeadDim, 2, PositionMode::Dense, QueryT, kFp8>())
                     : fn(split_kernel<kHeadDim, 2, PositionMode::PerKvHead, QueryT, kFp8>());
      case 4:
        return dense ? fn(split_kernel<kHeadDim, 4, PositionMode::Dense, QueryT, kFp8>())
                     : fn(split_kernel<kHeadDim, 4, PositionMode::PerKvHead, QueryT, kFp8>());
      default:
        return dense ? fn(split_kernel<kHeadDim, 8, PositionMode::Dense, QueryT, kFp8>())
                     : fn(split_kernel<kHeadDim, 8, PositionMode::PerKvHead, QueryT, kFp8>());
    }
  };
  struct Bf16 {
    using type = __nv_bfloat16;
  };
  struct F32 {
    using type = float;
  };
  using Fp8 = std::true_type;
  using NotFp8 = std::false_type;
  const bool fp8 = launch.scales != nullptr;
  if (launch.head_dim == 64) {
    using D = std::integral_constant<int, 64>;
    if (fp8) return by_group(D{}, F32{}, Fp8{});
    return launch.query_bf16 ? by_group(D{}, Bf16{}, NotFp8{}) : by_group(D{}, F32{}, NotFp8{});
  }
  using D = std::integral_constant<int, 128>;
  if (fp8) return by_group(D{}, F32{}, Fp8{});
  return launch.query_bf16 ? by_group(D{}, Bf16{}, NotFp8{}) : by_group(D{}, F32{}, NotFp8{});
}

}  // namespace

int attention_blocks_per_sm(const AttentionLaunch& launch) {
  const PositionMode mode =
      launch.mode == PositionMode::PerQueryHead ? PositionMode::PerQueryHead : PositionMode::Dense;
  int blocks = 1;
  with_split_kernel(launch, mode, [&](auto kernel) {
    blocks = kernel.blocks_per_sm;
    return cudaSuccess;
  });
  return blocks;
}

int attention_rows_per_step(const AttentionLaunch& launch) {
  // kRowGroups * kRows = kAttentionThreads * 8 * kVecs / head_dim * 4 / kVecs.
  return kAttentionThreads * 32 / launch.head_dim;
}

cudaError_t launch_decode_attention(const AttentionLaunch& launch, cudaStream_t stream) {
  const dim3 grid(launch.num_splits,
                  launch.mode == PositionMode::PerQueryHead ? launch.num_heads : launch.num_kv_heads);
  return with_split_kernel(launch, launch.mode, [&](auto kernel) {
    kernel.kernel<<<grid, kAttentionThreads, kernel.shared_bytes, stream>>>(launch);
    return cudaGetLastError();
  });
}

}  // namespace tidal::cuda::detail
