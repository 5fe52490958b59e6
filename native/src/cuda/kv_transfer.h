// Saving and loading the CUDA backend's KV cache: the bf16 rows of positions [0, length)
// stream between the device and a KvByteSink / KvByteSource in file order ([layer][keys,
// values][kv_head][position][head_dim]) through two pinned host buffers of kTransferChunkBytes,
// so that the file side of one chunk overlaps the device copy of the next (loading a
// 100K-token cache of an 8B model moves 13 GB).
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda/cuda_kv_cache.h"
#include "engine/backend.h"

namespace tidal::cuda {

constexpr size_t kTransferChunkBytes = size_t(64) << 20;

void save_kv_cache(const CudaKvCache& cache, KvByteSink& sink);

// Fills an empty cache with `length` positions and rebuilds their Quest page bounds. Throws
// OutOfMemoryError (the cache's cap or the device) before reading anything.
void load_kv_cache(CudaKvCache& cache, int64_t length, KvByteSource& source);

}  // namespace tidal::cuda
