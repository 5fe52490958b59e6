// Quest page metadata and page scores.
//
// The cache is cut into pages of kQuestPageTokens positions. For every page and KV head we
// keep the element-wise min and max of the page's keys (bf16, exact: they are key values; of
// an FP8 cache's keys, rounded outwards so they still bound them).
// Any key k of the page satisfies min_i <= k_i <= max_i, and q_i k_i is linear in k_i, so
//   q . k <= sum_i max(q_i * min_i, q_i * max_i)      (the page's upper bound)
// Decoding ranks pages by that bound per query head (select_top_k), expands the chosen pages
// to positions and runs sparse attention over them.
//
// update_pages_kernel recomputes whole pages from the keys: after appending positions
// [first, end) only pages first / 16 .. (end - 1) / 16 are touched.
// page_scores_kernel reads each page's min/max rows once for all query heads of a KV head
// (row groups of head_dim / 8 lanes, one 16-byte piece each, as in decode attention).
#include "quest_pages.h"

#include <cuda_bf16.h>

#include <type_traits>

#include "common.cuh"
#include "kv_fp8.cuh"

namespace tidal::cuda::detail {

namespace {

constexpr int kThreads = 128;

// Packs 8 floats that are bf16 values into a 16-byte vector (exact: only the top halves).
__device__ __forceinline__ uint4 pack_bf16x8(const float (&x)[8]) {
  auto pair = [](float low, float high) {
    return (__float_as_uint(low) >> 16) | (__float_as_uint(high) & 0xffff0000u);
  };
  return make_uint4(pair(x[0], x[1]), pair(x[2], x[3]), pair(x[4], x[5]), pair(x[6], x[7]));
}

// Rounds 8 floats down (lower bounds) or up (upper bounds) to bf16 and packs them.
template <bool kUp>
__device__ __forceinline__ uint4 pack_bf16x8_outwards(const float (&x)[8]) {
  auto pair = [](float low, float high) {
    const __nv_bfloat16 a = kUp ? __float2bfloat16_ru(low) : __float2bfloat16_rd(low);
    const __nv_bfloat16 b = kUp ? __float2bfloat16_ru(high) : __float2bfloat16_rd(high);
    return uint32_t(__bfloat16_as_ushort(a)) | (uint32_t(__bfloat16_as_ushort(b)) << 16);
  };
  return make_uint4(pair(x[0], x[1]), pair(x[2], x[3]), pair(x[4], x[5]), pair(x[6], x[7]));
}

template <int kHeadDim, bool kFp8>
__global__ void __launch_bounds__(kThreads) update_pages_kernel(const QuestUpdateLaunch p) {
  let_next_kernel_start();
  constexpr int kLanes = kHeadDim / 8;
  constexpr int kPagesPerBlock = kThreads / kLanes;
  const int lane = threadIdx.x % kLanes;
  const int64_t page = p.first_page + int64_t(blockIdx.x) * kPagesPerBlock + threadIdx.x / kLanes;
  const int kv_head = blockIdx.y;
  if (page >= p.first_page + p.page_count) return;
  const int64_t start = page * kQuestPageTokens;
  const int64_t stop = min(start + kQuestPageTokens, p.end_position);
  // This lane's 8 values of the key at `position`, as stored.
  auto load = [&](int64_t position, float(&k)[8]) {
    if constexpr (kFp8) {
      const uint8_t* keys = static_cast<const uint8_t*>(p.keys) + int64_t(kv_head) * p.key_head_stride + lane * 8;
      unpack_fp8x8(__ldg(reinterpret_cast<const uint2*>(keys + position * p.key_row_stride)), k);
      const float scale = key_scale_of(__ldg(p.scales + int64_t(kv_head) * p.scale_head_stride + position));
#pragma unroll
      for (int e = 0; e < 8; ++e) k[e] *= scale;
    } else {
      const uint16_t* keys = static_cast<const uint16_t*>(p.keys) + int64_t(kv_head) * p.key_head_stride + lane * 8;
      unpack_bf16x8(load_vector(keys + position * p.key_row_stride), k);
    }
  };
  float lo[8], hi[8];
  load(start, lo);
#pragma unroll
  for (int e = 0; e < 8; ++e) hi[e] = lo[e];
  for (int64_t position = start + 1; position < stop; ++position) {
    float k[8];
    load(position, k);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      lo[e] = fminf(lo[e], k[e]);
      hi[e] = fmaxf(hi[e], k[e]);
    }
  }
  const int64_t offset = int64_t(kv_head) * p.page_head_stride + page * kHeadDim + lane * 8;
  if constexpr (kFp8) {
    *reinterpret_cast<uint4*>(p.key_min + offset) = pack_bf16x8_outwards<false>(lo);
    *reinterpret_cast<uint4*>(p.key_max + offset) = pack_bf16x8_outwards<true>(hi);
  } else {
    *reinterpret_cast<uint4*>(p.key_min + offset) = pack_bf16x8(lo);
    *reinterpret_cast<uint4*>(p.key_max + offset) = pack_bf16x8(hi);
  }
}

template <int kHeadDim, int kGroup, typename QueryT>
__global__ void __launch_bounds__(kThreads) page_scores_kernel(const QuestScoreLaunch p) {
  let_next_kernel_start();
  constexpr int kLanes = kHeadDim / 8;
  constexpr int kRowGroups = kThreads / kLanes;
  const int lane = threadIdx.x % kLanes;
  const int row_group = threadIdx.x / kLanes;
  const int kv_head = blockIdx.y;
  const int first_head = kv_head * p.group;

  float q[kGroup][8];
  const QueryT* query = static_cast<const QueryT*>(p.query);
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < p.group) {
      load_floats8(query + int64_t(first_head + g) * kHeadDim + lane * 8, q[g]);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) q[g][e] = 0.0f;
    }
  }
  const uint16_t* key_min = p.key_min + int64_t(kv_head) * p.page_head_stride + lane * 8;
  const uint16_t* key_max = p.key_max + int64_t(kv_head) * p.page_head_stride + lane * 8;
  const int64_t first_page = int64_t(blockIdx.x) * p.pages_per_block;
  const int64_t end_page = min(p.num_pages, first_page + p.pages_per_block);
  // Same trip count for every thread (the sums shuffle inside row groups).
  for (int64_t base = first_page; base < end_page; base += kRowGroups) {
    const int64_t page = base + row_group;
    const bool valid = page < end_page;
    float lo[8], hi[8];
    if (valid) {
      unpack_bf16x8(load_vector(key_min + page * kHeadDim), lo);
      unpack_bf16x8(load_vector(key_max + page * kHeadDim), hi);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) lo[e] = hi[e] = 0.0f;
    }
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      float bound = 0.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) bound += fmaxf(q[g][e] * lo[e], q[g][e] * hi[e]);
      bound = group_sum<kLanes>(bound);
      if (valid && g < p.group && lane == g % kLanes)
        p.bounds[int64_t(first_head + g) * p.bounds_stride + page] = bound * p.scale;
    }
  }
}

__global__ void expand_pages_kernel(const PageExpandLaunch p) {
  let_next_kernel_start();
  const int row = blockIdx.y;
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= p.pages_per_row * kQuestPageTokens) return;
  const int64_t page = p.pages[int64_t(row) * p.page_stride + j / kQuestPageTokens];
  const int64_t position = page * kQuestPageTokens + j % kQuestPageTokens;
  if (position < p.seq_len) p.positions[int64_t(row) * p.position_stride + j] = static_cast<int32_t>(position);
}

template <int kHeadDim, typename QueryT>
cudaError_t launch_scores(const QuestScoreLaunch& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(ceil_div(p.num_pages, p.pages_per_block)), p.num_kv_heads);
  if (p.group <= 1) {
    page_scores_kernel<kHeadDim, 1, QueryT><<<grid, kThreads, 0, stream>>>(p);
  } else if (p.group <= 2) {
    page_scores_kernel<kHeadDim, 2, QueryT><<<grid, kThreads, 0, stream>>>(p);
  } else if (p.group <= 4) {
    page_scores_kernel<kHeadDim, 4, QueryT><<<grid, kThreads, 0, stream>>>(p);
  } else {
    page_scores_kernel<kHeadDim, 8, QueryT><<<grid, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_update_quest_pages(const QuestUpdateLaunch& p, cudaStream_t stream) {
  const int pages_per_block = kThreads / (p.head_dim / 8);
  const dim3 grid(static_cast<unsigned>(ceil_div(p.page_count, pages_per_block)), p.num_kv_heads);
  const bool fp8 = p.scales != nullptr;
  if (p.head_dim == 64) {
    if (fp8) {
      update_pages_kernel<64, true><<<grid, kThreads, 0, stream>>>(p);
    } else {
      update_pages_kernel<64, false><<<grid, kThreads, 0, stream>>>(p);
    }
  } else if (fp8) {
    update_pages_kernel<128, true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    update_pages_kernel<128, false><<<grid, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

cudaError_t launch_quest_page_scores(const QuestScoreLaunch& p, cudaStream_t stream) {
  if (p.head_dim == 64)
    return p.query_bf16 ? launch_scores<64, __nv_bfloat16>(p, stream) : launch_scores<64, float>(p, stream);
  return p.query_bf16 ? launch_scores<128, __nv_bfloat16>(p, stream) : launch_scores<128, float>(p, stream);
}

cudaError_t launch_expand_pages(const PageExpandLaunch& p, cudaStream_t stream) {
  constexpr int kExpandThreads = 256;
  const dim3 grid(static_cast<unsigned>(ceil_div(p.pages_per_row * kQuestPageTokens, kExpandThreads)), p.rows);
  expand_pages_kernel<<<grid, kExpandThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace tidal::cuda::detail
