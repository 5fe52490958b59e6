// The CUDA backend: the forward pass of llama / mistral / qwen2 / qwen3 models on one GPU.
// Weights are bf16 on the device (f32/f16 models are converted once on upload; q|k|v and
// gate|up are stored as one matrix each so a layer does 4 matrix products), activations
// fp32 with bf16 copies at the inputs of the matrix products (cuBLAS, fp32 accumulation),
// KV cache bf16 (or FP8 with row scales) [layer][kv_head][capacity][head_dim], Quest page
// min/max beside it once a Quest step asks for them.
// Prefill runs the tensor-core flash kernel (kernels/prefill_attention.cu), a decode step
// the split-K kernels (kernels/decode_attention.cu, topk_select.cu, quest_pages.cu), and
// full and tidal decode steps are replayed from one captured CUDA graph per length bucket.
//
// The CPU backend is the reference; GPU tests compare the two (native/gpu_tests).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/model_weights.h"
#include "model/model_config.h"

namespace tidal {

struct CudaBackendOptions {
  int device = 0;
  size_t max_kv_bytes = 0;  // 0 = no cap (the device memory is the limit)
  // Replay decode steps as CUDA graphs: full and tidal steps read their position from device
  // memory, so one captured graph serves every step of a 1024-position length bucket
  // ($TIDAL_CUDA_GRAPHS=0 turns this off). Faster per token than plain launches: the
  // figures are in bench/NOTES.md ("Figures moved out of code comments").
  bool graphs = true;
  // GGUF matrices in Q8_0 / Q4_K / Q6_K, the embedding included, stay in their blocks on the
  // device (a quarter to a half of bf16's memory and reads per token); off, every matrix is
  // converted to bf16.
  // $TIDAL_CUDA_QUANTIZED=0 / 1 overrides (0: the bf16 conversion, for comparisons). On since the
  // op harness and the GPU suite passed with it on an H100 (bench/NOTES.md, Version 15).
  bool quantized_weights = true;
  // KV cache of FP8 E4M3 codes with an f16 scale per row (kernels/kv_fp8.cuh): half of bf16's
  // memory and reads. Its accuracy was measured with the CPU backend's simulation of exactly
  // this rounding (bench/eval/fp8_kv.md). Prefill attention widens the cached rows to bf16.
  bool kv_fp8 = false;
  // An untied embedding table stays in host memory: a pass gathers its tokens' rows on the host
  // and uploads them with the token ids (a row is 2-8 KB), so the device holds none of the
  // table (llama.cpp keeps token_embd on the CPU for the same reason). $TIDAL_CUDA_EMBEDDING_ON_HOST=0
  // keeps it on the device.
  bool embedding_on_host = true;
};

// Why the CUDA backend cannot run here (no device, unsupported GPU, no cuBLAS), or empty.
std::string cuda_backend_unavailable_reason(int device = 0);

// `weights` must outlive the call only (they are copied to the device). Throws RequestError
// for an unsupported model shape or GPU, OutOfMemoryError when the weights do not fit.
std::unique_ptr<Backend> create_cuda_backend(const ModelConfig& config, const ModelWeights& weights,
                                             const CudaBackendOptions& options);

// A model of `config`'s shape with random weights (benchmarks of 7-8B shapes without a
// checkpoint): variance ~1/fan_in, norms near 1, as synthetic_model.h. `weights`: "bf16"
// (generated on the device), or quantised layer and output matrices "q8_0" / "q4_k_m" (see
// DeviceWeights::randomize_quantized).
std::unique_ptr<Backend> create_random_cuda_backend(const ModelConfig& config, uint64_t seed,
                                                    const CudaBackendOptions& options,
                                                    const std::string& weights = "bf16");

// The CUDA backend's switches and counters beyond Backend, for `tidal bench` and the GPU
// tests (dynamic_cast a Backend created above). Measurements built on the ops themselves
// (a cache of random K/V, one layer's attention) are in native/bench.
class CudaBackendTools {
 public:
  virtual ~CudaBackendTools() = default;
  // Bytes of the matrices one decode step reads (every layer's weights and the output head).
  virtual size_t decode_weight_bytes() const = 0;
  // Bytes of every weight on the device (the embedding included unless on the host; not the
  // prefill scratch).
  virtual size_t weight_bytes() const = 0;
  // Bytes of weights kept in host memory (an untied embedding: CudaBackendOptions::embedding_on_host).
  virtual size_t host_weight_bytes() const = 0;
  // Whether a one-token gate|up product ends in SwiGLU itself (on by default): one launch fewer
  // a layer, the same bits as the separate kernel.
  virtual void set_fused_swiglu(bool enabled) = 0;
  virtual bool fused_swiglu() const = 0;
  // Quantised parts over every matrix (each one launch of a one-token product).
  virtual size_t quantized_parts() const = 0;
  virtual void set_graphs(bool enabled) = 0;
  virtual int64_t graph_replays() const = 0;
  // Executable graphs built (a step whose graph could not be updated in place builds one).
  virtual int64_t graph_instantiations() const = 0;
  // GPU time (ms) of the last replayed decode graph alone (its launch to its end), 0 if none.
  virtual double last_graph_gpu_ms() = 0;
  // One-token linear layers through the GEMV kernel, cuBLAS, or (Auto, the default) whichever
  // was measured faster for the matrix's row length ($TIDAL_CUDA_GEMV=1 / 0 force one).
  enum class GemvUse { Auto, Always, Never };
  virtual void set_gemv(GemvUse use) = 0;
  // Whether one-token products over the weights launch early, their first weight loads
  // overlapping the end of the kernel before them (kernels/common.cuh; off by default until
  // measured, $TIDAL_CUDA_EARLY_LAUNCH=1 turns it on where the device has compute capability 9.0).
  virtual void set_early_launch(bool enabled) = 0;
  virtual bool early_launch() const = 0;
  // Warps per prefill attention block (16 query rows each): 4 (default) or 8.
  virtual void set_prefill_warps(int warps) = 0;
  // Positions moved per chunk by Backend::compact (tests: a small chunk makes chunks overlap
  // the sources of later ones); 0 (default) = as many as a 256 MiB scratch buffer holds.
  virtual void set_compact_chunk(int64_t positions) = 0;
  // Bytes of bf16 K/V that prefill over an FP8 cache widens at once (KV heads are attended a
  // few at a time to stay under it, one at least); 0 = the default, 128 MiB.
  virtual void set_fp8_prefill_scratch(size_t bytes) = 0;
  // Bytes at most of the scratch into which products of more than one token dequantise
  // quantised matrices, a slice of rows at a time (default 64 MiB, or the largest matrix when
  // smaller); tests lower it so that products run in many slices. 0 restores the default.
  virtual void set_dequantized_limit(size_t bytes) = 0;
  virtual size_t dequantized_bytes() const = 0;
  // Device bytes of the scratch for the tokens in flight (activations, logits, selection lists,
  // prefill attention partials, the FP8 widening scratch) as it stands: it grows to the largest
  // pass seen and is kept.
  virtual size_t workspace_bytes() const = 0;
};

}  // namespace tidal
