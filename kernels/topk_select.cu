// Top-k selection over rows of scores: the k best positions of each row, ascending.
//
// Ranking: higher score first, equal scores lower position first, NaN last (what a stable
// CPU sort by (-score, position) gives). Every candidate i gets a unique 56-bit value
//   v = ordered_key(score) << 24 | (2^24 - 1 - i)
// whose unsigned order is that ranking, so the k best are the k largest v, and there is one
// exact threshold between them and the rest.
//
// Radix select, 8 bits per pass from the top: each pass histograms the next byte of the v
// that still match the prefix fixed so far, finds the bin holding the k-th largest, appends
// it to the prefix, and stops as soon as that bin holds exactly the number still wanted
// (typically after 4 passes: the score bits; ties cost up to 3 more). The selected
// positions are then those with (v >> shift) >= prefix.
//
// One row is served by a cluster of kTopKClusterSize blocks, each owning a contiguous slice
// of the row. Blocks histogram their slice in shared memory (warp-aggregated atomics: the
// first passes put most values in a few bins), then every block sums the cluster's
// histograms through distributed shared memory and makes the same choice. Keys are computed
// once (with the per-KV-head max or sum over the group's score rows) and cached in shared
// memory when the slice fits. Output: each block counts its selected positions from its own
// histograms, learns the counts of the blocks before it, and writes its positions in order.
#include "topk_select.h"

#include <cooperative_groups.h>

#include "common.cuh"

namespace tidal::cuda::detail {

namespace {

namespace cg = cooperative_groups;

constexpr int kBins = 256;
constexpr int kWarps = kTopKThreads / kWarpSize;
constexpr int kUnroll = 8;
constexpr uint32_t kPositionBits = 24;
constexpr uint64_t kPositionMask = (uint64_t(1) << kPositionBits) - 1;

__device__ __forceinline__ uint32_t candidate_key(const TopKLaunch& p, int row, int64_t i) {
  const float* scores = p.scores + int64_t(row) * p.group * p.score_stride + i;
  float x = __ldg(scores);
  for (int g = 1; g < p.group; ++g) {
    const float y = __ldg(scores + int64_t(g) * p.score_stride);
    // Max as std::max(x, y) computes it, so that NaN handling matches the CPU reference.
    x = p.reduce == GroupReduce::Sum ? x + y : (x < y ? y : x);
  }
  return ordered_key(x);
}

__device__ __forceinline__ uint64_t sort_value(uint32_t key, int64_t i) {
  return (uint64_t(key) << kPositionBits) | (kPositionMask - uint64_t(i));
}

template <bool kKeysInShared>
__global__ void __cluster_dims__(kTopKClusterSize, 1, 1) __launch_bounds__(kTopKThreads)
    select_top_k_kernel(const TopKLaunch p) {
  let_next_kernel_start();
  extern __shared__ uint32_t cached_keys[];
  __shared__ uint32_t histogram[2][kBins];  // two, so a pass never clears one another block still reads
  __shared__ uint32_t merged[kBins];
  __shared__ uint32_t warp_counts[kWarps];
  __shared__ uint32_t chosen_digit;      // this pass's byte of the threshold
  __shared__ uint32_t chosen_remaining;  // how many of that bin are still wanted
  __shared__ uint32_t chosen_count;      // how many the cluster has in that bin
  __shared__ uint32_t block_above;       // this block's elements above the prefix so far
  __shared__ uint32_t block_selected;    // this block's selected elements (read by higher ranks)

  const cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int row = blockIdx.y;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  // A replayed decode graph reads the step's candidate count from the device (p.candidates
  // and p.slice are then upper bounds that size the launch).
  const int64_t candidates = p.candidates_device ? *p.candidates_device : p.candidates;
  const int64_t slice = p.candidates_device ? ceil_div(candidates, kTopKClusterSize) : p.slice;
  const int64_t slice_begin = int64_t(rank) * slice;
  const int64_t slice_end = min(candidates, slice_begin + slice);

  if (tid == 0) block_above = 0;

  uint64_t prefix = 0;  // the bytes of the threshold fixed so far
  uint32_t remaining = static_cast<uint32_t>(p.k);
  int shift = 48;  // bit position of the byte this pass histograms
  int buffer = 0;
  for (bool first_pass = true;; first_pass = false) {
    uint32_t* local = histogram[buffer];
    for (int b = tid; b < kBins; b += kTopKThreads) {
      local[b] = 0;
      merged[b] = 0;
    }
    __syncthreads();
    for (int64_t base = slice_begin; base < slice_end; base += int64_t(kTopKThreads) * kUnroll) {
      uint64_t value[kUnroll];
      bool match[kUnroll];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const int64_t i = base + j * kTopKThreads + tid;
        const bool inside = i < slice_end;
        uint32_t key = 0;
        if (inside) {
          if (kKeysInShared && !first_pass) {
            key = cached_keys[i - slice_begin];
          } else {
            key = candidate_key(p, row, i);
            if (kKeysInShared) cached_keys[i - slice_begin] = key;
          }
        }
        value[j] = sort_value(key, i);
        match[j] = inside && (value[j] >> (shift + 8)) == prefix;
      }
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        const unsigned matching = __ballot_sync(0xffffffffu, match[j]);
        if (match[j]) {
          const uint32_t digit = static_cast<uint32_t>(value[j] >> shift) & (kBins - 1);
          const unsigned peers = __match_any_sync(matching, digit);
          if (lane == __ffs(peers) - 1) atomicAdd(&local[digit], __popc(peers));
        }
      }
    }
    cluster.sync();  // every block's histogram of this pass is complete

    {
      // Thread t adds bin t % 256 of a group of ranks; the remote loads are independent.
      constexpr int kGroups = kTopKThreads / kBins;
      constexpr int kRanksPerGroup = kTopKClusterSize / kGroups;
      static_assert(kTopKThreads % kBins == 0 && kTopKClusterSize % kGroups == 0, "merge layout");
      const int b = tid % kBins, first_rank = (tid / kBins) * kRanksPerGroup;
      uint32_t part[kRanksPerGroup];
#pragma unroll
      for (int r = 0; r < kRanksPerGroup; ++r) part[r] = cluster.map_shared_rank(local, first_rank + r)[b];
      uint32_t sum = 0;
#pragma unroll
      for (int r = 0; r < kRanksPerGroup; ++r) sum += part[r];
      atomicAdd(&merged[b], sum);
    }
    __syncthreads();
    if (warp == 0) {
      // Lane L owns bins 8L .. 8L+7; count[] of the bins above a lane's come from a suffix scan.
      uint32_t count[8], lane_total = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        count[j] = merged[lane * 8 + j];
        lane_total += count[j];
      }
      uint32_t suffix = lane_total;
#pragma unroll
      for (int offset = 1; offset < kWarpSize; offset *= 2) {
        const uint32_t other = __shfl_down_sync(0xffffffffu, suffix, offset);
        if (lane + offset < kWarpSize) suffix += other;
      }
      uint32_t above = suffix - lane_total;
#pragma unroll
      for (int j = 7; j >= 0; --j) {
        if (above < remaining && remaining <= above + count[j]) {
          chosen_digit = lane * 8 + j;
          chosen_remaining = remaining - above;
          chosen_count = count[j];
        }
        above += count[j];
      }
      __syncwarp();
      // This block's elements in bins above the chosen one are selected for good.
      const uint32_t digit = chosen_digit;
      uint32_t mine = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        if (uint32_t(lane * 8 + j) > digit) mine += local[lane * 8 + j];
      mine = warp_sum(mine);
      if (lane == 0) {
        block_above += mine;
        block_selected = block_above + local[digit];
      }
    }
    __syncthreads();
    const uint32_t digit = chosen_digit;
    remaining = chosen_remaining;
    prefix = (prefix << 8) | digit;
    // Values are unique, so by the last byte the bin holds exactly one: the loop always ends.
    // (merged is cleared by the next pass: read the copy warp 0 kept.)
    if (chosen_count == remaining || shift == 0) break;
    shift -= 8;
    buffer ^= 1;
  }

  // Positions before this block's slice that are selected: the counts of the lower ranks.
  cluster.sync();
  uint32_t offset = 0;
  for (int r = 0; r < rank; ++r) offset += *cluster.map_shared_rank(&block_selected, r);
  // No block may leave while another still reads its shared memory: arrive now, wait at exit.
  auto arrival = cluster.barrier_arrive();

  // Each thread owns a contiguous run of the slice: it counts its selected positions, one
  // block-wide exclusive scan of the counts gives where its run goes, and it writes them in
  // order.
  int32_t* out = p.out + int64_t(row) * p.out_stride;
  const int64_t run = ceil_div(max(slice_end - slice_begin, int64_t(0)), kTopKThreads);
  const int64_t run_begin = slice_begin + tid * run;
  const int64_t run_end = min(slice_end, run_begin + run);
  auto is_selected = [&](int64_t i) {
    const uint32_t key = kKeysInShared ? cached_keys[i - slice_begin] : candidate_key(p, row, i);
    return (sort_value(key, i) >> shift) >= prefix;
  };
  uint32_t mine = 0;
  for (int64_t i = run_begin; i < run_end; ++i) mine += is_selected(i) ? 1u : 0u;
  uint32_t inclusive = mine;
#pragma unroll
  for (int delta = 1; delta < kWarpSize; delta *= 2) {
    const uint32_t other = __shfl_up_sync(0xffffffffu, inclusive, delta);
    if (lane >= delta) inclusive += other;
  }
  if (lane == kWarpSize - 1) warp_counts[warp] = inclusive;
  __syncthreads();
  uint32_t before = inclusive - mine;
  for (int w = 0; w < warp; ++w) before += warp_counts[w];
  if (mine > 0) {
    uint32_t slot = offset + before;
    for (int64_t i = run_begin; i < run_end; ++i)
      if (is_selected(i)) out[slot++] = static_cast<int32_t>(i);
  }
  if (p.append_position >= 0 && rank == 0 && tid == 0)
    out[p.k] = static_cast<int32_t>(p.candidates_device ? candidates : p.append_position);
  cluster.barrier_wait(std::move(arrival));
}

__global__ void select_all_kernel(const TopKLaunch p) {
  let_next_kernel_start();
  const int row = blockIdx.y;
  int32_t* out = p.out + int64_t(row) * p.out_stride;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.candidates;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = static_cast<int32_t>(i);
  if (p.append_position >= 0 && blockIdx.x == 0 && threadIdx.x == 0)
    out[p.candidates] = static_cast<int32_t>(p.append_position);
}

}  // namespace

cudaError_t prepare_select_top_k(int max_shared_bytes) {
  return cudaFuncSetAttribute(select_top_k_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared_bytes);
}

int top_k_max_active_clusters(bool keys_in_shared, size_t shared_bytes) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(kTopKClusterSize, 1024);
  config.blockDim = dim3(kTopKThreads);
  config.dynamicSmemBytes = keys_in_shared ? shared_bytes : 0;
  int clusters = 0;
  const cudaError_t error = keys_in_shared
                                ? cudaOccupancyMaxActiveClusters(&clusters, select_top_k_kernel<true>, &config)
                                : cudaOccupancyMaxActiveClusters(&clusters, select_top_k_kernel<false>, &config);
  return error == cudaSuccess ? clusters : -1;
}

cudaError_t launch_select_top_k(const TopKLaunch& launch, cudaStream_t stream) {
  const dim3 grid(kTopKClusterSize, launch.rows);
  if (launch.keys_in_shared) {
    const size_t shared = size_t(launch.slice) * sizeof(uint32_t);
    select_top_k_kernel<true><<<grid, kTopKThreads, shared, stream>>>(launch);
  } else {
    select_top_k_kernel<false><<<grid, kTopKThreads, 0, stream>>>(launch);
  }
  return cudaGetLastError();
}

cudaError_t launch_select_all(const TopKLaunch& launch, cudaStream_t stream) {
  const int blocks =
      static_cast<int>(ceil_div(launch.candidates + 1, 256) < 64 ? ceil_div(launch.candidates + 1, 256) : 64);
  select_all_kernel<<<dim3(blocks, launch.rows), 256, 0, stream>>>(launch);
  return cudaGetLastError();
}

}  // namespace tidal::cuda::detail
