// A paged CPU KV cache filled with random keys and values, for the attention kernel tests.
#pragma once
#include <memory>
#include <vector>

#include "cpu/paged_kv_cache.h"
#include "engine_test_models.h"

namespace tidal_test {

struct FilledKvCache {
  std::shared_ptr<tidal::cpu::KvPagePool> pool;
  std::unique_ptr<tidal::cpu::PagedKvCache> cache;
  tidal::cpu::KvPageLayout layout;
  // keys[layer][head][position][dim] and values likewise, as written.
  std::vector<float> keys, values;

  const float* key(int64_t layer, int64_t head, int64_t position) const {
    return keys.data() + ((layer * layout.kv_heads + head) * positions + position) * layout.head_dim;
  }
  const float* value(int64_t layer, int64_t head, int64_t position) const {
    return values.data() + ((layer * layout.kv_heads + head) * positions + position) * layout.head_dim;
  }
  int64_t positions = 0;
};

inline FilledKvCache make_filled_kv_cache(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t positions,
                                          uint64_t seed) {
  FilledKvCache f;
  f.layout = tidal::cpu::KvPageLayout{layers, kv_heads, head_dim};
  f.pool = std::make_shared<tidal::cpu::KvPagePool>(f.layout, 0);
  f.cache = std::make_unique<tidal::cpu::PagedKvCache>(f.pool);
  f.positions = positions;
  const size_t count = static_cast<size_t>(layers * kv_heads * positions * head_dim);
  f.keys = random_floats(count, seed, -1.5f, 1.5f);
  f.values = random_floats(count, seed + 1, -1.0f, 1.0f);
  f.cache->reserve(positions);
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t h = 0; h < kv_heads; ++h)
      for (int64_t p = 0; p < positions; ++p) f.cache->write(l, h, p, f.key(l, h, p), f.value(l, h, p));
  f.cache->commit(positions);
  return f;
}

}  // namespace tidal_test
