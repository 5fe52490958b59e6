// Launch parameters and launcher of kernels/kv_shift.cu. Asynchronous on `stream`; returns the
// launch's error code.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace tidal::cuda {

// One chunk of a KV-cache compaction: for every cache row (layer, kv_head) r < rows and
// entry c < count, with (source, table) = moves[c]:
//   key_scratch[r][c]   = bf16(rotate(keys[r][source], rotations[table]))
//   value_scratch[r][c] = values[r][source]
// rotate: rotate-half pairs (i, i + head_dim/2) by the angle whose (cos, sin) are
// rotations[table][i] (fp32 pairs). Cache rows are row_stride elements apart; scratch rows
// count * head_dim. head_dim even and <= 512.
struct KvShiftLaunch {
  const void* keys = nullptr;
  const void* values = nullptr;
  int64_t row_stride = 0;
  int rows = 0, head_dim = 0;
  const int32_t* moves = nullptr;    // [count][2]: source position, rotation table
  const float* rotations = nullptr;  // [tables][head_dim / 2][2]: cos, sin
  int count = 0;
  void* key_scratch = nullptr;  // [rows][count][head_dim]
  void* value_scratch = nullptr;
  // FP8 cache (kernels/kv_fp8.cuh) when set: keys, values and scratch hold codes, scales [rows]
  // [scale_row_stride] the rows' scale pairs, scale_scratch [rows][count] those of the moved rows;
  // a rotated key is rounded again with a scale of its own (head_dim <= 256).
  const uint32_t* scales = nullptr;
  int64_t scale_row_stride = 0;
  uint32_t* scale_scratch = nullptr;
};
cudaError_t launch_kv_shift_gather(const KvShiftLaunch& launch, cudaStream_t stream);

}  // namespace tidal::cuda
