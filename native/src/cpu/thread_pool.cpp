#include "cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TIDAL_CPU_RELAX() _mm_pause()
#else
#define TIDAL_CPU_RELAX() std::this_thread::yield()
#endif

namespace tidal::cpu {

namespace {
// How long an idle worker polls for the next job before it sleeps.
constexpr auto kSpinTime = std::chrono::microseconds(200);

// A busy wait that pauses the core for the first polls, then yields it, so that waiting
// threads do not starve the ones they wait for when the machine has more runnable threads
// than cores.
inline void relax(unsigned spin) {
  if (spin < 512)
    TIDAL_CPU_RELAX();
  else
    std::this_thread::yield();
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_chunks(int thread_index) {
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= chunks_) break;
    const int64_t begin = c * chunk_;
    const int64_t end = std::min(count_, begin + chunk_);
    try {
      (*body_)(begin, end, thread_index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    chunks_done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_loop(int thread_index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t now = generation_.load(std::memory_order_acquire);
    const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
    for (unsigned spin = 1; now == seen; ++spin) {
      relax(spin);
      now = generation_.load(std::memory_order_acquire);
      if ((spin & 63u) == 0 && std::chrono::steady_clock::now() > deadline) break;
    }
    if (now == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      now = generation_.load(std::memory_order_acquire);
    }
    seen = now;
    if (stopping_.load()) return;
    // Enter the job only if it is still the current one and unfinished (sequentially
    // consistent with the caller's job_done_ store followed by its active_ check).
    active_.fetch_add(1);
    if (generation_.load() == now && !job_done_.load()) run_chunks(thread_index);
    active_.fetch_sub(1);
  }
}

void ThreadPool::parallel_for(int64_t count, const Body& body, int64_t grain) {
  if (count <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  // Small ranges, single-threaded pools and nested calls run inline.
  if (workers_.empty() || count <= grain || in_parallel_.exchange(true)) {
    body(0, count, 0);
    return;
  }
  // About four chunks per thread balance uneven rows without much claiming traffic.
  const int64_t target_chunks = static_cast<int64_t>(size()) * 4;
  body_ = &body;
  count_ = count;
  chunk_ = std::max(grain, (count + target_chunks - 1) / target_chunks);
  chunks_ = (count + chunk_ - 1) / chunk_;
  next_chunk_.store(0, std::memory_order_relaxed);
  chunks_done_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  job_done_.store(false);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  run_chunks(0);
  for (unsigned spin = 1; chunks_done_.load(std::memory_order_acquire) != chunks_; ++spin) relax(spin);
  job_done_.store(true);
  for (unsigned spin = 1; active_.load() != 0; ++spin) relax(spin);
  body_ = nullptr;
  in_parallel_.store(false);
  if (error_) {
    std::exception_ptr error = error_;
    error_ = nullptr;
    std::rethrow_exception(error);
  }
}

}  // namespace tidal::cpu
