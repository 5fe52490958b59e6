// KV-cache compaction on the CUDA backend: the math of kernels/kv_shift.cu, done in place on
// the cache's own buffers (a second cache would double the memory of a 100K-token context)
// through a scratch buffer of at most kCompactionScratchBytes.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda/cuda_kv_cache.h"
#include "engine/backend.h"

namespace tidal::cuda {

constexpr size_t kCompactionScratchBytes = size_t(256) << 20;

// `ranges` are validated by the engine. `chunk_positions` > 0 caps the positions moved per
// chunk (tests use a small one so that chunks overlap their sources); 0 = as many as the
// scratch bound allows (fewer when the device cannot spare that). Ranges that stay in place
// cost nothing. Throws OutOfMemoryError before changing anything when the scratch cannot be
// had; a CudaError after that leaves the cache part-way.
void compact_kv_cache(CudaKvCache& cache, const KvRanges& ranges, const std::vector<float>& inverse_frequencies,
                      int64_t chunk_positions);

}  // namespace tidal::cuda
