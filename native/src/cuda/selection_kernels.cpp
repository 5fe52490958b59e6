// Argument checks and launch planning of top-k selection; the kernels are in
// kernels/topk_select.cu.
#include "cuda/selection_kernels.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda/cuda_error.h"
#include "kernels/device_info.h"
#include "kernels/topk_select.h"

namespace tidal::cuda {

namespace {

// Static shared memory of the selection kernel, kept out of the dynamic key cache.
constexpr size_t kStaticSharedReserve = 4096;

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument("select_top_k: " + message);
}

// Lets the kernel take as much dynamic shared memory as the device allows, once per device.
size_t key_cache_limit() {
  const DeviceInfo& device = current_device_info();
  static std::once_flag once[64];
  const size_t limit =
      device.shared_per_block_optin > kStaticSharedReserve ? device.shared_per_block_optin - kStaticSharedReserve : 0;
  std::call_once(once[device.device % 64], [limit] {
    throw_if_failed(detail::prepare_select_top_k(static_cast<int>(limit)), "configuring top-k shared memory");
  });
  return limit;
}

}  // namespace

int64_t top_k_output_count(const TopKArgs& args) {
  return std::min(args.k, args.candidates) + (args.append_position >= 0 ? 1 : 0);
}

void select_top_k(const TopKArgs& args, cudaStream_t stream) {
  require(args.rows >= 0 && args.rows <= 65535 && args.group >= 1, "rows must be in [0, 65535] and group >= 1");
  require(args.group == 1 || args.reduce != ScoreReduce::None, "a group of rows needs a Max or Sum reduction");
  require(args.candidates >= 0 && args.candidates <= detail::kTopKMaxCandidates,
          "candidates must be in [0, 2^24], got " + std::to_string(args.candidates));
  require(args.k >= 0, "k must be >= 0");
  require(args.append_position < 0 || args.append_position >= args.candidates,
          "append_position must come after every candidate");
  require(args.append_position <= INT32_MAX, "append_position must fit int32");
  require(args.out_stride >= top_k_output_count(args), "out_stride smaller than the positions written per row");
  if (args.rows == 0) return;
  require(args.out != nullptr, "out must be set");

  detail::TopKLaunch launch;
  launch.scores = args.scores;
  launch.score_stride = args.score_stride;
  launch.rows = args.rows;
  launch.group = args.group;
  launch.reduce = args.reduce == ScoreReduce::Sum   ? detail::GroupReduce::Sum
                  : args.reduce == ScoreReduce::Max ? detail::GroupReduce::Max
                                                    : detail::GroupReduce::None;
  launch.candidates = args.candidates;
  launch.k = args.k;
  launch.out = args.out;
  launch.out_stride = args.out_stride;
  launch.append_position = args.append_position;
  launch.candidates_device = args.candidates_device;

  require(args.candidates_device == nullptr || (args.k > 0 && args.k < args.candidates),
          "a device candidate count needs 0 < k < candidates");
  if (args.k >= args.candidates || args.k == 0) {
    // Everything (or nothing) is kept: no ranking needed.
    if (args.k == 0) launch.candidates = 0;
    throw_if_failed(detail::launch_select_all(launch, stream), "launching top-k (keep all)");
    return;
  }
  require(args.scores != nullptr && args.score_stride >= args.candidates, "scores must be set, stride >= candidates");
  launch.slice = (args.candidates + detail::kTopKClusterSize - 1) / detail::kTopKClusterSize;
  launch.keys_in_shared = size_t(launch.slice) * sizeof(uint32_t) <= key_cache_limit();
  throw_if_failed(detail::launch_select_top_k(launch, stream), "launching top-k selection");
}

}  // namespace tidal::cuda
