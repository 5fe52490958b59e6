#include "cuda/step_graph.h"

#include <utility>

#include "cuda/cuda_error.h"

namespace tidal::cuda {

StepGraph::~StepGraph() {
  if (exec_) cudaGraphExecDestroy(exec_);
  for (cudaEvent_t e : events_)
    if (e) cudaEventDestroy(e);
}

bool StepGraph::can_reuse(const std::vector<int64_t>& plan, const std::vector<const void*>& bindings) const {
  return exec_ && !plan_.empty() && plan == plan_ && bindings == bindings_;
}

void StepGraph::capture_and_launch(cudaStream_t stream, const std::function<void()>& enqueue, std::vector<int64_t> plan,
                                   std::vector<const void*> bindings) {
  plan_.clear();  // a capture that fails leaves no executable graph claimed valid
  throw_if_failed(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "beginning graph capture");
  cudaGraph_t graph = nullptr;
  try {
    enqueue();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  throw_if_failed(cudaStreamEndCapture(stream, &graph), "ending graph capture");
  try {
    install(graph);
  } catch (...) {
    cudaGraphDestroy(graph);
    throw;
  }
  cudaGraphDestroy(graph);
  launch(stream);
  plan_ = std::move(plan);
  bindings_ = std::move(bindings);
}

void StepGraph::install(cudaGraph_t graph) {
  if (exec_) {
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(exec_, graph, &info) != cudaSuccess) {
      cudaGetLastError();
      cudaGraphExecDestroy(exec_);
      exec_ = nullptr;
    }
  }
  if (!exec_) {
    throw_if_failed(cudaGraphInstantiate(&exec_, graph, 0), "instantiating the decode graph");
    ++instantiations_;
  }
}

void StepGraph::launch(cudaStream_t stream) {
  if (!events_[0]) {
    throw_if_failed(cudaEventCreate(&events_[0]), "creating an event");
    throw_if_failed(cudaEventCreate(&events_[1]), "creating an event");
  }
  throw_if_failed(cudaEventRecord(events_[0], stream), "recording an event");
  throw_if_failed(cudaGraphLaunch(exec_, stream), "launching the decode graph");
  throw_if_failed(cudaEventRecord(events_[1], stream), "recording an event");
  timed_ = true;
  ++replays_;
}

double StepGraph::last_gpu_ms() {
  if (!timed_) return 0.0;
  float ms = 0;
  throw_if_failed(cudaEventElapsedTime(&ms, events_[0], events_[1]), "timing the decode graph");
  return ms;
}

}  // namespace tidal::cuda
