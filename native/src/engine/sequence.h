// One sequence of the engine: its token history and the KV cache of the tokens processed so
// far. tokens[cache->length(), tokens.size()) are pending (typically the last sampled
// token), and are run by the next call that needs logits.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "engine/backend.h"

namespace tidal {

struct Sequence {
  static constexpr int64_t kNoSparsePosition = std::numeric_limits<int64_t>::max();

  std::vector<int32_t> tokens;
  std::unique_ptr<KvCache> cache;
  // Logits after tokens[cache->length() - 1], when `logits_valid`.
  std::vector<float> logits;
  bool logits_valid = false;
  // First cache position whose K/V came from a sparse-attention decode step and has not
  // been recomputed by a KV-cache correction; kNoSparsePosition when there is none.
  int64_t first_sparse_position = kNoSparsePosition;

  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - cache->length(); }
};

}  // namespace tidal
