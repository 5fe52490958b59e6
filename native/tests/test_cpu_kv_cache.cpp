// The paged KV cache: page sharing on fork, copy on write, trim, memory accounting and the
// memory cap.
#include <cstring>
#include <vector>

#include "cpu/paged_kv_cache.h"
#include "harness.h"
#include "kv_cache_fixture.h"
#include "tidal/error.h"

using namespace tidal;
using namespace tidal_test;

TIDAL_TEST(cpu_kv_cache_fork_shares_full_pages_and_copies_on_write) {
  FilledKvCache f = make_filled_kv_cache(1, 1, 4, 40, 3);  // pages: 16 + 16 + 8
  const size_t page = f.layout.page_bytes();
  CHECK_EQ(f.pool->bytes_in_use(), 3 * page);
  auto fork = f.cache->fork(32);  // two full pages, shared
  CHECK_EQ(f.pool->bytes_in_use(), 3 * page);
  auto& forked = static_cast<cpu::PagedKvCache&>(*fork);
  CHECK_EQ(forked.length(), 32);
  CHECK(forked.page_table()[0] == f.cache->page_table()[0]);

  auto partial = f.cache->fork(20);  // the partial second page is copied
  CHECK_EQ(f.pool->bytes_in_use(), 4 * page);

  // Writing position 32 into the fork allocates a fresh page; the source's page 2 is untouched.
  const float key[4] = {9, 9, 9, 9}, value[4] = {8, 8, 8, 8};
  forked.reserve(33);
  forked.write(0, 0, 32, key, value);
  forked.commit(33);
  CHECK_EQ(f.pool->bytes_in_use(), 5 * page);
  CHECK(std::memcmp(f.cache->head_view(0, 0).key(32), f.key(0, 0, 32), 16) == 0);
  CHECK(std::memcmp(forked.head_view(0, 0).key(32), key, 16) == 0);

  // Appending into a shared partial page copies it first.
  auto whole = f.cache->fork(40);
  auto& same = static_cast<cpu::PagedKvCache&>(*whole);
  same.reserve(41);
  same.write(0, 0, 40, key, value);
  same.commit(41);
  CHECK(same.page_table()[2] != f.cache->page_table()[2]);
  CHECK(std::memcmp(same.head_view(0, 0).key(39), f.key(0, 0, 39), 16) == 0);

  fork.reset();
  partial.reset();
  whole.reset();
  CHECK_EQ(f.pool->bytes_in_use(), 3 * page);
  f.cache.reset();
  CHECK_EQ(f.pool->bytes_in_use(), size_t(0));
  CHECK(f.pool->bytes_peak() >= 6 * page);
}

TIDAL_TEST(cpu_kv_cache_trim_releases_pages_and_rejects_growth) {
  FilledKvCache f = make_filled_kv_cache(2, 2, 4, 50, 4);
  const size_t page = f.layout.page_bytes();
  f.cache->trim(17);
  CHECK_EQ(f.cache->length(), 17);
  CHECK_EQ(f.pool->bytes_in_use(), 2 * page);
  CHECK_EQ(f.cache->bytes_referenced(), 2 * page);
  CHECK_THROWS_WITH(f.cache->trim(18), "cannot trim");
  f.cache->trim(0);
  CHECK_EQ(f.pool->bytes_in_use(), size_t(0));
}

TIDAL_TEST(cpu_kv_cache_cap_throws_out_of_memory_with_the_size_asked) {
  const cpu::KvPageLayout layout{2, 2, 8};
  auto pool = std::make_shared<cpu::KvPagePool>(layout, 2 * layout.page_bytes());
  cpu::PagedKvCache cache(pool);
  cache.reserve(32);
  cache.commit(32);
  bool threw = false;
  try {
    cache.reserve(33);
  } catch (const OutOfMemoryError& e) {
    threw = true;
    CHECK(std::string(e.what()).find(std::to_string(layout.page_bytes()) + " bytes") != std::string::npos);
  }
  CHECK(threw);
  CHECK_EQ(cache.length(), 32);
  CHECK_EQ(pool->bytes_in_use(), 2 * layout.page_bytes());
}
