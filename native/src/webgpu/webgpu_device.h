// The recording side of a WebGPU device: buffer ids, the tape of commands not yet run, and
// the memory the KV caches hold. Shared by the backend and its caches (a cache freed after
// the backend still records its FreeBuffer on a live object).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>

#include "webgpu/webgpu_tape.h"

namespace tidal {

class WebGpuDevice {
 public:
  explicit WebGpuDevice(std::shared_ptr<WebGpuExecutor> executor, size_t max_kv_bytes);
  // Frees on the device what was freed here and not yet run (the buffers of the last caches).
  ~WebGpuDevice();

  uint32_t create_buffer(uint64_t bytes);
  void free_buffer(uint32_t id);
  // `data` is copied unless `keep_pointer` (memory that outlives the next flush: mapped weights).
  void upload(uint32_t id, uint64_t offset, const void* data, size_t bytes, bool keep_pointer = false);
  void copy(uint32_t src, uint64_t src_offset, uint32_t dst, uint64_t dst_offset, uint64_t bytes);
  // The bytes land in `destination` when the tape is next flushed.
  void read(uint32_t id, uint64_t offset, size_t bytes, void* destination);
  void op(TapeOp op, std::initializer_list<uint32_t> args);
  // Runs everything recorded so far and waits for it.
  void flush();

  uint64_t max_binding_bytes() const { return max_binding_bytes_; }

  // KV memory accounting (bytes of every cache's buffers). reserve_kv throws OutOfMemoryError
  // past max_kv_bytes.
  void reserve_kv(size_t bytes);
  void release_kv(size_t bytes);
  size_t kv_bytes_in_use() const { return kv_in_use_; }
  size_t kv_bytes_peak() const { return kv_peak_; }

 private:
  static void push64(std::vector<uint32_t>& words, uint64_t value);
  std::shared_ptr<WebGpuExecutor> executor_;
  std::recursive_mutex mutex_;
  Tape tape_;
  uint32_t next_id_ = 1;
  uint64_t max_binding_bytes_ = 0;
  size_t max_kv_bytes_ = 0, kv_in_use_ = 0, kv_peak_ = 0;
};

inline uint32_t float_word(float value) {
  uint32_t word;
  static_assert(sizeof(word) == sizeof(value), "32-bit floats");
  __builtin_memcpy(&word, &value, sizeof(word));
  return word;
}

}  // namespace tidal
