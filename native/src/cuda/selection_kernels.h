// Top-k token selection on the GPU: for every row of a score matrix, the k positions with
// the largest scores, written in ascending position order.
//
// Ranking is exactly that of a stable CPU sort by (-score, position): higher score first,
// equal scores lower position first, -0 equal to +0, NaN last. So the output equals a
// brute-force CPU selection on the same scores, bit for bit.
//
// TidalDecode's selection layer ranks the raw scores that dense attention wrote (one row per
// query head, the current position excluded: candidates = seq_len - 1) and keeps k - 1
// positions, then appends the current position so that sparse attention always attends it.
// For the per-KV-head policies, row r combines score rows r * group .. r * group + group - 1
// by max or sum before ranking (one shared list per KV head).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

enum class ScoreReduce : uint8_t {
  None,  // every score row is ranked on its own (group must be 1)
  Max,   // element-wise max over the group's rows (heads in index order)
  Sum,   // element-wise fp32 sum over the group's rows, heads in index order
};

struct TopKArgs {
  const float* scores = nullptr;  // device, [rows * group][score_stride]
  int64_t score_stride = 0;
  int rows = 0;  // output rows
  int group = 1;
  ScoreReduce reduce = ScoreReduce::None;
  int64_t candidates = 0;  // positions [0, candidates) of every row compete (at most 2^24)
  int64_t k = 0;           // min(k, candidates) positions are kept per row
  int32_t* out = nullptr;  // device, [rows][out_stride]
  int64_t out_stride = 0;
  // When >= 0: written after the kept positions of every row (out[min(k, candidates)]). It
  // must be >= candidates so that the row stays ascending: the current token.
  int64_t append_position = -1;
  // Optional (replayed decode graphs): the kernel reads the candidate count from here; then
  // `candidates` above is an upper bound the launch is sized for, k must stay below the
  // count read, and an appended position is written as that count (the current token).
  const int64_t* candidates_device = nullptr;
};

// Positions written per row: min(k, candidates), plus one with append_position.
int64_t top_k_output_count(const TopKArgs& args);

void select_top_k(const TopKArgs& args, cudaStream_t stream);

}  // namespace tidal::cuda
