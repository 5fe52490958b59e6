// The Hopper prefill attention (kernels/prefill_attention_hopper.cu): the same computation as
// kernels/prefill_attention.cu's, on wgmma with TMA loads and warp specialisation. Internal to
// the kernels; callers go through launch_prefill_attention (kernels/prefill_attention.h).
#pragma once
#include <cuda_runtime_api.h>

#include "prefill_attention.h"

namespace tidal::cuda {

// A block takes this many consecutive queries of one head (two consumer warpgroups of 64
// rows), and keys stream through shared memory in tiles of this many positions.
constexpr int kHopperQueryRows = 128;
constexpr int kHopperKeyRows = 128;

// True when this build carries the sm_90a kernel, the current device runs it (compute
// capability 9.0) and the driver provides the tensor-map encoder.
bool hopper_prefill_available();

// One launch: grid (query tiles, heads, splits). splits == 1 writes bf16 to launch.out; splits
// > 1 writes each part's unnormalised output and (m, l) into partial_out / partial_stats in
// the split format of kernels/prefill_attention.cu (the combine kernel there merges them).
// Fails with cudaErrorNotSupported when !hopper_prefill_available() and with
// cudaErrorInvalidValue for shapes or pointers the tensor copies cannot take.
cudaError_t launch_prefill_attention_hopper(const PrefillAttentionLaunch& launch, int splits, float* partial_out,
                                            float2* partial_stats, cudaStream_t stream);

}  // namespace tidal::cuda
