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
  const size_t element = shape.element_bytes();
  const size_t position_bytes = static_cast<size_t>(rows * shape.head_dim) * element;  // one of keys / values
  // Per position: keys and values, and with FP8 the scale pairs after both.
  const size_t scratch_per_position = 2 * position_bytes + (shape.fp8 ? static_cast<size_t>(rows) * 4 : 0);
  int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(kCompactionScratchBytes / scratch_per_position));
  if (chunk_positions > 0) chunk = std::min(chunk, chunk_positions);
  chunk = std::min(chunk, moved);

  // Every allocation before the first write: running out of memory leaves the cache as it was.
  DeviceBuffer scratch;
  for (;;) {
    try {
      scratch = DeviceBuffer(scratch_per_position * static_cast<size_t>(chunk), "the KV compaction scratch");
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

  char* keys = static_cast<char*>(cache.keys(0));
  char* values = static_cast<char*>(cache.values(0));
  uint32_t* scales = cache.scales(0);
  const int64_t row_stride = cache.capacity() * shape.head_dim;
  char* key_scratch = scratch.get<char>();
  char* value_scratch = key_scratch + position_bytes * static_cast<size_t>(chunk);
  uint32_t* scale_scratch = reinterpret_cast<uint32_t*>(value_scratch + position_bytes * static_cast<size_t>(chunk));
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
    if (scales) {
      launch.scales = scales;
      launch.scale_row_stride = cache.capacity();
      launch.scale_scratch = scale_scratch;
    }
    throw_if_failed(launch_kv_shift_gather(launch, stream), "launching the KV compaction");
    const size_t width = static_cast<size_t>(count * shape.head_dim) * element;
    const size_t destination = static_cast<size_t>((first_moved + done) * shape.head_dim) * element;
    for (auto [target, source] : {std::pair{keys, key_scratch}, std::pair{values, value_scratch}})
      throw_if_failed(cudaMemcpy2DAsync(target + destination, static_cast<size_t>(row_stride) * element, source, width,
                                        width, static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream),
                      "moving KV cache rows");
    if (scales)
      throw_if_failed(cudaMemcpy2DAsync(scales + first_moved + done, static_cast<size_t>(cache.capacity()) * 4,
                                        scale_scratch, static_cast<size_t>(count) * 4, static_cast<size_t>(count) * 4,
                                        static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream),
                      "moving KV cache scales");
  }
  cache.commit(new_length);
  cache.update_pages(first_moved, new_length);
  throw_if_failed(cudaStreamSynchronize(stream), "compacting the KV cache");
}

}  // namespace tidal::cuda
