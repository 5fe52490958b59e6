// The prefill attention kernels the GPU tests run each case on: the mma.sync kernel with 8- and
// 4-warp blocks, and the Hopper kernel (wgmma, TMA) where the device runs it.
#pragma once
#include <vector>

#include "kernels/prefill_attention.h"
#include "kernels/prefill_attention_hopper.h"

namespace tidal::gpu_test {

struct PrefillVariant {
  cuda::PrefillKernel kernel;
  int warps;
  const char* name;
  int key_tile;  // keys per tile: split parts are whole tiles
};

inline std::vector<PrefillVariant> prefill_variants() {
  std::vector<PrefillVariant> variants = {{cuda::PrefillKernel::MmaSync, 8, "mma warps=8", 64},
                                          {cuda::PrefillKernel::MmaSync, 4, "mma warps=4", 64}};
  if (cuda::hopper_prefill_available())
    variants.push_back({cuda::PrefillKernel::Wgmma, 4, "wgmma", cuda::kHopperKeyRows});
  return variants;
}

}  // namespace tidal::gpu_test
