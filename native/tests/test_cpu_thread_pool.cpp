// The CPU thread pool: every index exactly once, exceptions carried to the caller, nested
// calls inline.
#include <atomic>
#include <stdexcept>
#include <vector>

#include "cpu/thread_pool.h"
#include "harness.h"

using namespace tidal;

TIDAL_TEST(cpu_thread_pool_visits_every_index_once) {
  cpu::ThreadPool pool(3);
  CHECK_EQ(pool.size(), 3);
  for (int64_t count : {1, 2, 7, 100, 1001}) {
    for (int64_t grain : {1, 4, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
      std::atomic<bool> bad_thread{false};
      pool.parallel_for(
          count,
          [&](int64_t begin, int64_t end, int thread) {
            if (thread < 0 || thread >= 3) bad_thread = true;
            for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
          },
          grain);
      for (auto& h : hits) CHECK_EQ(h.load(), 1);
      CHECK(!bad_thread.load());
    }
  }
}

TIDAL_TEST(cpu_thread_pool_rethrows_and_stays_usable) {
  cpu::ThreadPool pool(2);
  CHECK_THROWS_WITH(pool.parallel_for(50,
                                      [](int64_t begin, int64_t, int) {
                                        if (begin == 0) throw std::runtime_error("body failed");
                                      }),
                    "body failed");
  std::atomic<int64_t> total{0};
  pool.parallel_for(50, [&](int64_t begin, int64_t end, int) {
    // A nested call runs inline on this thread.
    pool.parallel_for(end - begin, [&](int64_t b, int64_t e, int) { total += e - b; });
  });
  CHECK_EQ(total.load(), 50);
}
