// A small persistent pool of worker threads for the CPU backend. parallel_for splits an
// index range into chunks that the workers and the calling thread claim one by one. Workers
// spin briefly before sleeping, because a decode step runs a few hundred short parallel
// regions and waking a sleeping thread costs more than most of them.
//
// Each index is processed by exactly one thread, so results never depend on how the range
// was split. One parallel_for at a time per pool; a call made from inside a body runs
// inline on the calling thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tidal::cpu {

class ThreadPool {
 public:
  // body(begin, end, thread_index): thread_index < size() names the thread running the
  // chunk, for per-thread scratch buffers.
  using Body = std::function<void(int64_t begin, int64_t end, int thread_index)>;

  // `threads` counts the calling thread; 0 means every hardware thread.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs body over [0, count) in chunks of at least `grain` indices. Rethrows the first
  // exception a body threw, after every chunk has finished.
  void parallel_for(int64_t count, const Body& body, int64_t grain = 1);

 private:
  void worker_loop(int thread_index);
  void run_chunks(int thread_index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> in_parallel_{false};

  // The current job. Workers enter a job only while it is unfinished and count themselves
  // in `active_`, so the caller never waits for a worker that is still asleep: it runs the
  // chunks nobody claimed itself, then waits only for workers inside the job.
  const Body* body_ = nullptr;
  int64_t count_ = 0;
  int64_t chunk_ = 1;
  int64_t chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<int64_t> chunks_done_{0};
  std::atomic<bool> job_done_{true};
  std::atomic<int> active_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace tidal::cpu
