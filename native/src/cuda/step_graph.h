// A decode step replayed as one CUDA graph. What the graph was captured for is its step plan
// (attention mode, budget, selection policy, layer roles, product choice, length bucket, cache
// capacity, logits wanted) and the device addresses it bakes in (the cache, the workspace).
// can_reuse() is the declared reuse check: a step whose plan and addresses both match replays
// the graph; any other is captured again, updating the executable graph in place when its
// topology allows (else instantiating a new one). What changes per step (position, length,
// selection candidates) is read by the kernels from device memory, not baked in.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace tidal::cuda {

class StepGraph {
 public:
  StepGraph() = default;
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;
  ~StepGraph();

  bool can_reuse(const std::vector<int64_t>& plan, const std::vector<const void*>& bindings) const;
  // Captures what `enqueue` issues on `stream`, installs it for `plan` and `bindings`, and
  // launches it. If anything throws, no graph is claimed valid.
  void capture_and_launch(cudaStream_t stream, const std::function<void()>& enqueue, std::vector<int64_t> plan,
                          std::vector<const void*> bindings);
  void launch(cudaStream_t stream);

  int64_t replays() const { return replays_; }
  int64_t instantiations() const { return instantiations_; }
  // GPU time (ms) of the last launch alone, 0 if none.
  double last_gpu_ms();

 private:
  void install(cudaGraph_t graph);

  cudaGraphExec_t exec_ = nullptr;
  std::vector<int64_t> plan_;  // empty: no valid graph
  std::vector<const void*> bindings_;
  cudaEvent_t events_[2] = {nullptr, nullptr};
  bool timed_ = false;
  int64_t replays_ = 0, instantiations_ = 0;
};

}  // namespace tidal::cuda
