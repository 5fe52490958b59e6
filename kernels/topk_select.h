// Launch parameters, plan queries and launchers of kernels/topk_select.cu. The host-side
// wrappers (native/src/cuda/selection_kernels.cpp) check the arguments and plan the launch;
// the launchers only launch, returning the launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::cuda::detail {

enum class GroupReduce : uint8_t { None, Max, Sum };

// Blocks per row: one thread-block cluster.
constexpr int kTopKClusterSize = 8;
constexpr int kTopKThreads = 512;
// Candidate positions must fit the 24 low bits of the 56-bit (key, position) sort value.
constexpr int64_t kTopKMaxCandidates = int64_t(1) << 24;

struct TopKLaunch {
  const float* scores = nullptr;
  int64_t score_stride = 0;
  int rows = 0;
  int group = 1;
  GroupReduce reduce = GroupReduce::None;
  int64_t candidates = 0;
  int64_t k = 0;  // < candidates (the caller handles k >= candidates)
  int32_t* out = nullptr;
  int64_t out_stride = 0;
  int64_t append_position = -1;
  // Keys of a block's slice are cached in dynamic shared memory when they fit.
  int64_t slice = 0;  // candidates per block
  bool keys_in_shared = false;
  // When set (replayed decode graphs): the candidate count, read by the kernel; candidates and
  // slice above are then upper bounds, and the appended position is the candidate count.
  const int64_t* candidates_device = nullptr;
};

cudaError_t launch_select_top_k(const TopKLaunch& launch, cudaStream_t stream);
// Writes 0..candidates-1 (and the appended position) to every row: k >= candidates.
cudaError_t launch_select_all(const TopKLaunch& launch, cudaStream_t stream);
// Largest dynamic shared memory select_top_k may be given (set once per device).
cudaError_t prepare_select_top_k(int max_shared_bytes);
// Clusters of the selection kernel that fit on the GPU at once (rows beyond wait), -1 if unknown.
int top_k_max_active_clusters(bool keys_in_shared, size_t shared_bytes);

}  // namespace tidal::cuda::detail
