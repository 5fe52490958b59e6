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
//
// attention_mma_kernel below runs the same plan for bf16 caches with 2-8 query heads per KV head
// (dense, or per-KV-head lists) with the group's heads as the rows of tensor-core products. It
// is opt-in ($TIDAL_CUDA_DECODE_MMA=1): on an H100 it was slower than this kernel (bench/NOTES.md,
// Version 32).
#include "decode_attention.h"

#include <cuda_bf16.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "kv_fp8.cuh"
#include "mma.cuh"

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

// The K/V tile pipeline of the split kernels: tile `tile` of a block's rows goes into stage
// tile % kStages of shared memory by 16-byte cp.async copies, coalesced along the rows, rows
// past the split zero-filled; kStages - 1 tiles are in flight while the block computes on the
// oldest. Sparse lists: the positions of a thread's rows of a tile (its K and V copies share
// rows, so half as many as copies) are loaded one tile ahead of their copies; a list load
// issued right before the copies that need its result would put one global-memory latency on
// the critical path of every tile. `Layout` gives the tile shape and the (swizzled) place of
// each 16-byte copy.
template <typename Layout, PositionMode kMode, bool kFp8>
struct TileCopies {
  static constexpr int kHalf = Layout::kTileRows * Layout::kUnitsPerRow;  // copies of one tile's K (or V)
  static constexpr int kListLoads = Layout::kCopiesPerThread / 2;
  static_assert(kHalf % kAttentionThreads == 0, "a thread's K and V copies must share rows");

  const char* keys;
  const char* values;
  int64_t key_row_bytes, value_row_bytes;
  const uint32_t* scales;  // FP8 only
  const int32_t* list;     // sparse only
  int64_t begin, end;
  int tile_count;
  char* stages;

  __device__ __forceinline__ void load_positions(int tile, int32_t (&out)[kListLoads]) const {
    if constexpr (kMode != PositionMode::Dense) {
      const int64_t tile_begin = begin + int64_t(tile) * Layout::kTileRows;
#pragma unroll
      for (int j = 0; j < kListLoads; ++j) {
        const int64_t i = tile_begin + ((threadIdx.x + j * kAttentionThreads) % kHalf) / Layout::kUnitsPerRow;
        out[j] = tile < tile_count && i < end ? __ldg(list + i) : 0;
      }
    }
  }

  // Queues the copies of tile `tile` into its stage. Always commits a group, so that group
  // counts line up.
  __device__ __forceinline__ void issue(int tile, const int32_t (&listed)[kListLoads]) const {
    if (tile < tile_count) {
      char* stage = stages + (tile % Layout::kStages) * Layout::kStageBytes;
      const int64_t tile_begin = begin + int64_t(tile) * Layout::kTileRows;
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
  }

  // The first kStages - 1 tiles; `listed` gets the positions of the next one.
  __device__ __forceinline__ void start(int32_t (&listed)[kListLoads]) const {
    int32_t first[Layout::kStages - 1][kListLoads] = {};
#pragma unroll
    for (int s = 0; s < Layout::kStages - 1; ++s) load_positions(s, first[s]);
#pragma unroll
    for (int s = 0; s < Layout::kStages - 1; ++s) issue(s, first[s]);
    load_positions(Layout::kStages - 1, listed);
  }

  // Waits until every thread's copies of tile `tile` have landed and the whole block is done
  // with the stage refilled next; then queues tile + kStages - 1, whose positions `listed`
  // holds, loads those of the tile after it, and returns tile `tile`'s stage (K, then V).
  __device__ __forceinline__ const char* arrive(int tile, int32_t (&listed)[kListLoads]) const {
    copy_async_wait<Layout::kStages - 2>();
    __syncthreads();
    issue(tile + Layout::kStages - 1, listed);
    load_positions(tile + Layout::kStages, listed);
    return stages + (tile % Layout::kStages) * Layout::kStageBytes;
  }
};

// Ends a block of the split kernels: merges the block's kParts partial results of each head
// (running max and sum in part_max / part_sum [kParts][kGroup], accumulators in part_acc
// [kParts][kGroup][kHeadDim], all in shared memory and written before the call) into the
// split's partial (max, sum, acc) per head, and lets the last block of the unit to finish merge
// the unit's splits (combine_unit; `scratch` is shared memory the parts no longer need, at
// least kGroup * (kMaxSplits + 1) floats, and may be part_acc itself). Every thread calls it.
template <int kHeadDim, int kGroup, int kParts>
__device__ __forceinline__ void finish_split(const AttentionLaunch& p, int split, int unit, int first_head, int heads,
                                             float (*part_max)[kGroup], float (*part_sum)[kGroup],
                                             float (*part_acc)[kGroup][kHeadDim], float* scratch) {
  __shared__ float head_max[kGroup];
  __syncthreads();
  if (threadIdx.x < kGroup) {
    float block_max = kEmptyMax;
    for (int r = 0; r < kParts; ++r) block_max = fmaxf(block_max, part_max[r][threadIdx.x]);
    head_max[threadIdx.x] = block_max;
  }
  __syncthreads();
  for (int index = threadIdx.x; index < kParts * kGroup; index += kAttentionThreads) {
    const int r = index / kGroup, g = index % kGroup;
    part_max[r][g] = softmax_weight(part_max[r][g], head_max[g]);  // the part's weight 2^(m - M), in place
  }
  __syncthreads();

  if (threadIdx.x < heads) {
    const int g = threadIdx.x;
    float sum = 0.0f;
    for (int r = 0; r < kParts; ++r) sum = merge_add(sum, part_sum[r][g], part_max[r][g]);
    float* stats = p.partial_stats + (int64_t(first_head + g) * p.num_splits + split) * 2;
    stats[0] = head_max[g];
    stats[1] = sum;
  }
  for (int index = threadIdx.x; index < heads * kHeadDim; index += kAttentionThreads) {
    const int g = index / kHeadDim, d = index % kHeadDim;
    float sum = 0.0f;
    for (int r = 0; r < kParts; ++r) sum = merge_add(sum, part_acc[r][g][d], part_max[r][g]);
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
  combine_unit<kHeadDim, kGroup>(p, first_head, heads, scratch);
  if (threadIdx.x == 0) p.split_counters[unit] = 0;  // ready for the next launch
}

template <int kHeadDim, int kGroup, int kVecs, int kRows, PositionMode kMode, typename QueryT, bool kFp8>
__global__ void __launch_bounds__(kAttentionThreads) attention_split_kernel(const AttentionLaunch p) {
  let_next_kernel_start();
  using Layout = SplitLayout<kHeadDim, kGroup, kVecs, kRows, kFp8>;
  constexpr int kLanesPerRow = Layout::kLanesPerRow;
  constexpr int kRowGroups = Layout::kRowGroups;
  constexpr int kTileRows = Layout::kTileRows;
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

  const TileCopies<Layout, kMode, kFp8> copies{keys, values, key_row_bytes, value_row_bytes, scales,
                                               list, begin,  end,           tile_count,      stages};
  // Start the first tiles before anything else, so that their latency overlaps the query load.
  int32_t listed[TileCopies<Layout, kMode, kFp8>::kListLoads] = {};
  copies.start(listed);

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
    const char* key_tile = copies.arrive(tile, listed);
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
  __shared__ float merge_max[kRowGroups][kGroup];
  __shared__ float merge_sum[kRowGroups][kGroup];
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
  finish_split<kHeadDim, kGroup, kRowGroups>(p, split, unit, first_head, heads, merge_max, merge_sum, merge_acc,
                                             reinterpret_cast<float*>(tiles));
}

// The tensor-core split kernel: bf16 caches, 2-8 query heads per KV head, dense or per-KV-head
// lists. Same plan, partials and last-block combine as attention_split_kernel, but the group's
// query heads are the rows of m16n8k16 products (rows past the group are zero), so a K/V row
// costs a few tensor-core instructions for all the heads instead of a dot product per head on
// the CUDA cores. Per tile of kMmaTileRows rows, warp w takes rows [16 w, 16 w + 16):
//   S = Q K^T      two 8-row n-blocks, head_dim / 16 k-steps, K fragments by ldmatrix;
//   online softmax per head in base 2 (a head's 16 scores sit in the 4 lanes of a quad);
//   O += P V       P from S's accumulators as the A operand, V fragments by ldmatrix.trans.
// fp32 accuracy from bf16 operands: an fp32 query is split q = q_hi + q_lo (two bf16 with 16
// bits of mantissa together), and so is P always (P in one bf16 part missed the fp32 output
// tolerance, 1.3-5e-4 against 1e-4, on the GPU); each product runs once per part. The warps'
// (max, sum, acc) are merged as the row groups of the other kernel are (finish_split). Shared
// rows are XOR-swizzled by row % 8 in 16-byte pieces, so that the 8 rows of one ldmatrix matrix
// (8 rows, one piece) fall in distinct banks.
constexpr int kMmaTileRows = 64;
constexpr int kMmaGroup = 8;  // A's rows that may hold query heads (m16n8k16's rows g, not g + 8)
constexpr int kMmaWarps = kAttentionThreads / kWarpSize;
static_assert(kMmaWarps * 16 == kMmaTileRows, "a warp takes 16 rows of a tile");

template <int kHeadDim>
struct MmaLayout {
  static constexpr int kTileRows = kMmaTileRows;
  static constexpr int kStages = kHeadDim == 128 ? 3 : 4;  // 32 KB or 16 KB a stage
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kUnitsPerRow = kRowBytes / 16;
  static constexpr int kTileBytes = kTileRows * kRowBytes;
  static constexpr int kStageBytes = 2 * kTileBytes;
  static constexpr int kCopiesPerThread = 2 * kTileRows * kUnitsPerRow / kAttentionThreads;
  static constexpr size_t kStagesBytes = size_t(kStages) * kStageBytes;
  static constexpr size_t kMergeBytes = size_t(kMmaWarps) * kMmaGroup * kHeadDim * sizeof(float);
  static constexpr size_t kCombineBytes = size_t(kMmaGroup) * (kMaxSplits + 1) * sizeof(float);
  static_assert(kStagesBytes >= kMergeBytes && kStagesBytes >= kCombineBytes, "the stages hold the merge");
  static constexpr size_t kSharedBytes = kStagesBytes;
  __device__ static __forceinline__ int copy_offset(int row, int piece) {
    return row * kRowBytes + (piece ^ (row & 7)) * 16;
  }
};

template <typename QueryT>
__device__ __forceinline__ float query_value(const QueryT* query, int i) {
  if constexpr (std::is_same_v<QueryT, __nv_bfloat16>) {
    return __bfloat162float(query[i]);
  } else {
    return query[i];
  }
}

template <int kHeadDim, PositionMode kMode, typename QueryT>
__global__ void __launch_bounds__(kAttentionThreads) attention_mma_kernel(const AttentionLaunch p) {
  let_next_kernel_start();
  constexpr int kGroup = kMmaGroup;
  constexpr int kSteps = kHeadDim / 16;  // k-steps of S = Q K^T
  constexpr int kQueryParts = std::is_same_v<QueryT, __nv_bfloat16> ? 1 : 2;
  using Layout = MmaLayout<kHeadDim>;
  extern __shared__ __align__(16) uint16_t tiles[];
  char* const stages = reinterpret_cast<char*>(tiles);

  const int split = blockIdx.x;
  const int kv_head = blockIdx.y;
  const int first_head = kv_head * p.group, heads = p.group;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, t = lane % 4;  // fragment row (query head) and column pair

  const int32_t* list = kMode == PositionMode::Dense ? nullptr : p.positions + int64_t(kv_head) * p.position_stride;
  const char* keys = static_cast<const char*>(p.keys) + int64_t(kv_head) * p.key_head_stride * 2;
  const char* values = static_cast<const char*>(p.values) + int64_t(kv_head) * p.value_head_stride * 2;
  const int64_t count = p.count_device ? *p.count_device : p.count;
  const int64_t begin = int64_t(split) * p.split_rows;
  const int64_t end = min(count, begin + p.split_rows);  // <= begin: an empty split
  const int tile_count = static_cast<int>(ceil_div(max(end - begin, int64_t(0)), kMmaTileRows));

  using Copies = TileCopies<Layout, kMode, false>;
  const Copies copies{keys,       values, p.key_row_stride * 2, p.value_row_stride * 2, nullptr, list, begin, end,
                      tile_count, stages};
  int32_t listed[Copies::kListLoads] = {};
  copies.start(listed);

  // Q as the A operand: a0 = Q[head g][16 kk + 2t ..], a2 = Q[head g][16 kk + 8 + 2t ..] (a1 and
  // a3, rows g + 8, are zero), in kQueryParts bf16 parts.
  uint32_t qa[kQueryParts][kSteps][2];
  {
    const QueryT* query = static_cast<const QueryT*>(p.query) + int64_t(first_head + g) * kHeadDim;
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int d = 16 * kk + 8 * h + 2 * t;
        const float x0 = g < heads ? query_value(query, d) : 0.0f;
        const float x1 = g < heads ? query_value(query, d + 1) : 0.0f;
        qa[0][kk][h] = pack_bf16(x0, x1);
        if constexpr (kQueryParts == 2)
          qa[1][kk][h] = pack_bf16(x0 - bf16_low(qa[0][kk][h]), x1 - bf16_high(qa[0][kk][h]));
      }
  }

  float o[kHeadDim / 8][4];
#pragma unroll
  for (int d = 0; d < kHeadDim / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m = kEmptyMax, l = 0.0f;         // head g's running max; l: this lane's share of its sum
  const int row0 = warp * 16;            // the warp's first row of a tile
  const int j = lane / 8, i = lane % 8;  // ldmatrix: the matrix and the row this lane addresses

  for (int tile = 0; tile < tile_count; ++tile) {
    const char* key_tile = copies.arrive(tile, listed);
    const char* value_tile = key_tile + Layout::kTileBytes;
    const int64_t first = begin + int64_t(tile) * kMmaTileRows + row0;  // the warp's first row
    if (first >= end) continue;                                         // warp-uniform: all 16 rows past the split

    // S = Q K^T. Matrix j of the x4 load: rows row0 + 8 (j / 2) + i, piece 2 kk + j % 2, so
    // registers (0, 1) are b0, b1 of n-block 0 and (2, 3) those of n-block 1.
    float s[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) {
      uint32_t b[4];
      ldmatrix_x4(b, key_tile + Layout::copy_offset(row0 + 8 * (j / 2) + i, 2 * kk + j % 2));
#pragma unroll
      for (int part = 0; part < kQueryParts; ++part) {
        const uint32_t a[4] = {qa[part][kk][0], 0u, qa[part][kk][1], 0u};
        mma_bf16(s[0], a, b[0], b[1]);
        mma_bf16(s[1], a, b[2], b[3]);
      }
    }
    // Base-2 scores of head g for rows first + 8 nb + 2t + e; rows past the split masked. The
    // scores (dense only: the position is the row's index) are written in natural-log units.
    float tile_max = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < 2; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t row = first + 8 * nb + 2 * t + e;
        const float x = s[nb][e] * p.scale_log2;
        if (p.scores != nullptr && g < heads && row < end)
          p.scores[int64_t(first_head + g) * p.score_stride + row] = x * kLn2;
        s[nb][e] = row < end ? x : -INFINITY;
        tile_max = fmaxf(tile_max, s[nb][e]);
      }
    const float new_max = fmaxf(m, quad_max(tile_max));
    const float alpha = softmax_weight(m, new_max);
    m = new_max;
    float w[2][2], sum = 0.0f;
#pragma unroll
    for (int nb = 0; nb < 2; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        w[nb][e] = softmax_weight(s[nb][e], new_max);
        sum += w[nb][e];
      }
    l = merge_add(sum, l, alpha);
#pragma unroll
    for (int d = 0; d < kHeadDim / 8; ++d) {
      o[d][0] *= alpha;
      o[d][1] *= alpha;
    }
    // P as the A operand (16 heads x 16 rows): a0 = n-block 0's pair, a2 = n-block 1's.
    uint32_t pa[2][4];
    pa[0][0] = pack_bf16(w[0][0], w[0][1]);
    pa[0][2] = pack_bf16(w[1][0], w[1][1]);
    pa[0][1] = pa[0][3] = 0u;
    pa[1][0] = pack_bf16(w[0][0] - bf16_low(pa[0][0]), w[0][1] - bf16_high(pa[0][0]));
    pa[1][2] = pack_bf16(w[1][0] - bf16_low(pa[0][2]), w[1][1] - bf16_high(pa[0][2]));
    pa[1][1] = pa[1][3] = 0u;
    // O += P V. Matrix j of the transposed x4 load: rows row0 + 8 (j % 2) + i, piece db + j / 2,
    // so registers (0, 1) are b0, b1 of dimension block db and (2, 3) those of db + 1.
#pragma unroll
    for (int db = 0; db < kHeadDim / 8; db += 2) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, value_tile + Layout::copy_offset(row0 + 8 * (j % 2) + i, db + j / 2));
#pragma unroll
      for (int part = 0; part < 2; ++part) {
        mma_bf16(o[db], pa[part], b[0], b[1]);
        mma_bf16(o[db + 1], pa[part], b[2], b[3]);
      }
    }
  }
  copy_async_wait<0>();
  __syncthreads();  // the stages are reused as the merge buffer below

  l = quad_sum(l);
  __shared__ float part_max[kMmaWarps][kGroup];
  __shared__ float part_sum[kMmaWarps][kGroup];
  auto part_acc = reinterpret_cast<float(*)[kGroup][kHeadDim]>(tiles);
  if (t == 0) {
    part_max[warp][g] = m;
    part_sum[warp][g] = l;
  }
#pragma unroll
  for (int d = 0; d < kHeadDim / 8; ++d)
    *reinterpret_cast<float2*>(&part_acc[warp][g][8 * d + 2 * t]) = make_float2(o[d][0], o[d][1]);
  finish_split<kHeadDim, kGroup, kMmaWarps>(p, split, kv_head, first_head, heads, part_max, part_sum, part_acc,
                                            reinterpret_cast<float*>(tiles));
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

// A kernel instance with its shared-memory size (above the default 48 KB limit, raised once per
// instance) and its occupancy, read once (devices of one process are assumed alike).
template <auto kKernel, size_t kShared>
SplitKernel<decltype(kKernel)> with_occupancy() {
  static const int blocks_per_sm = [] {
    int blocks = 0;
    // A failure here shows again, with its message, when the kernel is launched.
    if (cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kShared)) !=
            cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kKernel, kAttentionThreads, kShared) != cudaSuccess)
      return 1;
    return blocks > 0 ? blocks : 1;
  }();
  return SplitKernel<decltype(kKernel)>{kKernel, kShared, blocks_per_sm};
}

// The CUDA-core split kernel for a head size, group bucket, list mode and query type.
template <int kHeadDim, int kGroup, PositionMode kMode, typename QueryT, bool kFp8>
auto split_kernel() {
  using Shape = SplitShape<kGroup>;
  return with_occupancy<attention_split_kernel<kHeadDim, kGroup, Shape::kVecs, Shape::kRows, kMode, QueryT, kFp8>,
                        SplitLayout<kHeadDim, kGroup, Shape::kVecs, Shape::kRows, kFp8>::kSharedBytes>();
}

// The tensor-core kernel for a head size, list mode and query type.
template <int kHeadDim, PositionMode kMode, typename QueryT>
auto mma_kernel() {
  return with_occupancy<attention_mma_kernel<kHeadDim, kMode, QueryT>, MmaLayout<kHeadDim>::kSharedBytes>();
}

// The tensor-core kernel serves bf16 caches with 2+ query heads per KV head, dense or with
// per-KV-head lists, when $TIDAL_CUDA_DECODE_MMA=1 (opt-in: slower than the CUDA-core kernel on
// an H100, bench/NOTES.md, Version 32).
bool uses_mma(const AttentionLaunch& launch, PositionMode mode) {
  static const bool enabled = [] {
    const char* value = std::getenv("TIDAL_CUDA_DECODE_MMA");
    return value != nullptr && std::strcmp(value, "1") == 0;
  }();
  return enabled && mode != PositionMode::PerQueryHead && launch.group >= 2 && launch.scales == nullptr;
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
  if (uses_mma(launch, mode)) {
    auto by_mode = [&](auto head_dim_tag, auto query_tag) -> cudaError_t {
      constexpr int kHeadDim = decltype(head_dim_tag)::value;
      using QueryT = typename decltype(query_tag)::type;
      return mode == PositionMode::Dense ? fn(mma_kernel<kHeadDim, PositionMode::Dense, QueryT>())
                                         : fn(mma_kernel<kHeadDim, PositionMode::PerKvHead, QueryT>());
    };
    if (launch.head_dim == 64)
      return launch.query_bf16 ? by_mode(std::integral_constant<int, 64>{}, Bf16{})
                               : by_mode(std::integral_constant<int, 64>{}, F32{});
    return launch.query_bf16 ? by_mode(std::integral_constant<int, 128>{}, Bf16{})
                             : by_mode(std::integral_constant<int, 128>{}, F32{});
  }
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

// The mode a launch's split plan is made for: per-KV-head lists plan as dense attention does, so
// that a list of every position splits exactly as dense attention and gives bitwise its result.
PositionMode planning_mode(const AttentionLaunch& launch) {
  return launch.mode == PositionMode::PerQueryHead ? PositionMode::PerQueryHead : PositionMode::Dense;
}

}  // namespace

int attention_blocks_per_sm(const AttentionLaunch& launch) {
  const PositionMode mode = planning_mode(launch);
  int blocks = 1;
  with_split_kernel(launch, mode, [&](auto kernel) {
    blocks = kernel.blocks_per_sm;
    return cudaSuccess;
  });
  return blocks;
}

int attention_rows_per_step(const AttentionLaunch& launch) {
  if (uses_mma(launch, planning_mode(launch))) return kMmaTileRows;
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
