// Measurements built on a backend's decoder ops (engine/decoder.h) and nothing else: a cache
// of random K/V without running the model, and the time of one layer's attention in a given
// role. `tidal bench`, the op harness and the GPU tests use them; they work on any backend.
#pragma once
#include <cstdint>
#include <functional>

#include "engine/backend.h"
#include "engine/decoder.h"
#include "model/model_config.h"

namespace tidal::bench {

// Appends positions [cache.length(), length) to `cache`: random q|k|v rows (uniform in
// [-1, 1)) go through qkv_rope_append in every layer, in passes of up to `chunk` tokens, so the
// keys are rotated and the Quest page bounds kept as the model's own passes would. No other
// op runs. The same seed gives the same cache, whatever the chunk.
void fill_cache_random(const ModelConfig& config, Backend& backend, KvCache& cache, int64_t length, uint64_t seed,
                       int64_t chunk = 4096);

// Mean time (microseconds) of `op` over `repetitions` back-to-back calls after `warm_up` ones:
// one synchronisation before the clock starts and one before it stops.
double time_back_to_back(DecoderOps& ops, const std::function<void()>& op, int repetitions, int warm_up = 3);

// Mean time (microseconds) of one layer's attention for a one-token step after the cache's
// last position, in `role` (a tidal selection runs first so that Selected layers have lists),
// over `repetitions` back-to-back launches whose layer rotates so that the K/V read is not
// in the GPU's L2 cache; q is random. The cache keeps its length.
double time_layer_attention(const ModelConfig& config, Backend& backend, KvCache& cache, LayerAttention role,
                            const AttentionPlan& plan, int repetitions);

}  // namespace tidal::bench
