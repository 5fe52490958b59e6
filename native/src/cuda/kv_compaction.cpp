#include "cuda/kv_compaction.h"

#include <algorithm>
#include <cmath>

#include "cuda/cuda_error.h"
#include "cuda/device_buffer.h"
#include "kernels/kv_shift.h"

namespace tidal::cuda {

void compact_kv_cache(CudaKvCache& cache, const KvRanges& ranges, const std::vector<float>& inverse_frequencies,
                      int64_t chunk_positions) {
  const KvShape& shape = cache.shape();
  const int64_t half = shape.head_dim / 2;
  // Per destination position from the first one that moves: its source and rotation table
  // (one table per moving range: every position of a range moves by the same delta).
  std::vector<int32_t> moves;
  std::vector<float> rotations;
  int64_t new_length = 0, first_moved = -1;
  for (const auto& [start, count] : ranges) {
    if (start != new_length) {
      if (first_moved < 0) first_moved = new_length;
      const int32_t table = static_cast<int32_t>(rotations.size() / static_cast<size_t>(2 * half));
      const double delta = static_cast<double>(new_length - start);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = delta * static_cast<double>(inverse_frequencies[static_cast<size_t>(i)]);
        rotations.push_back(static_cast<float>(std::cos(angle)));
        rotations.push_back(static_cast<float>(std::sin(angle)));
      }
      for (int64_t p = 0; p < count; ++p) {
        moves.push_back(static_cast<int32_t>(start + p));
        moves.push_back(table);
      }
    }
    new_length += count;
  }
  if (first_moved < 0) {  // the ranges are a prefix [0, new_length)
    cache.trim(new_length);
    return;
  }
  const int64_t moved = new_length - first_moved;
  const int64_t rows = shape.layers * shape.kv_heads;
  const size_t position_bytes = static_cast<size_t>(rows * shape.head_dim) * 2;  // one of keys / values
  int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(kCompactionScratchBytes / (2 * position_bytes)));
  if (chunk_positions > 0) chunk = std::min(chunk, chunk_positions);
  chunk = std::min(chunk, moved);

  // Every allocation before the first write: running out of memory leaves the cache as it was.
  DeviceBuffer scratch;
  for (;;) {
    try {
      scratch = DeviceBuffer(2 * position_bytes * static_cast<size_t>(chunk), "the KV compaction scratch");
      break;
    } catch (const OutOfMemoryError&) {
      if (chunk == 1) throw;
      chunk = (chunk + 1) / 2;
    }
  }
  DeviceBuffer device_moves(moves.size() * sizeof(int32_t), "the KV compaction moves");
  DeviceBuffer device_rotations(rotations.size() * sizeof(float), "the KV compaction rotations");
  const cudaStream_t stream = cache.stream();
  throw_if_failed(
      cudaMemcpyAsync(device_moves.get(), moves.data(), moves.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream),
      "uploading the KV compaction moves");
  throw_if_failed(cudaMemcpyAsync(device_rotations.get(), rotations.data(), rotations.size() * sizeof(float),
                                  cudaMemcpyHostToDevice, stream),
                  "uploading the KV compaction rotations");

  uint16_t* keys = cache.keys(0);
  uint16_t* values = cache.values(0);
  const int64_t row_stride = cache.capacity() * shape.head_dim;
  uint16_t* key_scratch = scratch.get<uint16_t>();
  uint16_t* value_scratch = key_scratch + static_cast<size_t>(rows * chunk * shape.head_dim);
  for (int64_t done = 0; done < moved; done += chunk) {
    const int64_t count = std::min(chunk, moved - done);
    KvShiftLaunch launch;
    launch.keys = keys;
    launch.values = values;
    launch.row_stride = row_stride;
    launch.rows = static_cast<int>(rows);
    launch.head_dim = static_cast<int>(shape.head_dim);
    launch.moves = device_moves.get<int32_t>() + 2 * done;
    launch.rotations = device_rotations.get<float>();
    launch.count = static_cast<int>(count);
    launch.key_scratch = key_scratch;
    launch.value_scratch = value_scratch;
    throw_if_failed(launch_kv_shift_gather(launch, stream), "launching the KV compaction");
    const size_t width = static_cast<size_t>(count * shape.head_dim) * 2;
    const int64_t destination = (first_moved + done) * shape.head_dim;
    for (auto [target, source] : {std::pair{keys, key_scratch}, std::pair{values, value_scratch}})
      throw_if_failed(cudaMemcpy2DAsync(target + destination, static_cast<size_t>(row_stride) * 2, source, width, width,
                                        static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream),
                      "moving KV cache rows");
  }
  cache.commit(new_length);
  cache.update_pages(first_moved, new_length);
  throw_if_failed(cudaStreamSynchronize(stream), "compacting the KV cache");
}

}  // namespace tidal::cuda
