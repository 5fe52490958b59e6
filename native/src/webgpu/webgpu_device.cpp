#include "webgpu/webgpu_device.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "tidal/error.h"

namespace tidal {

WebGpuDevice::WebGpuDevice(std::shared_ptr<WebGpuExecutor> executor, size_t max_kv_bytes)
    : executor_(std::move(executor)), max_kv_bytes_(max_kv_bytes) {
  max_binding_bytes_ = executor_->max_binding_bytes();
}

WebGpuDevice::~WebGpuDevice() {
  Tape frees;
  for (size_t at = 0; at + 1 < tape_.words.size(); at += 2 + tape_.words[at + 1])
    if (tape_.words[at] == static_cast<uint32_t>(TapeOp::FreeBuffer))
      frees.words.insert(frees.words.end(), tape_.words.begin() + static_cast<std::ptrdiff_t>(at),
                         tape_.words.begin() + static_cast<std::ptrdiff_t>(at + 3));
  if (!frees.empty()) executor_->run_detached(std::move(frees));
}

void WebGpuDevice::push64(std::vector<uint32_t>& words, uint64_t value) {
  words.push_back(static_cast<uint32_t>(value));
  words.push_back(static_cast<uint32_t>(value >> 32));
}

uint32_t WebGpuDevice::create_buffer(uint64_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  const uint32_t id = next_id_++;
  tape_.words.insert(tape_.words.end(), {static_cast<uint32_t>(TapeOp::CreateBuffer), 3, id});
  push64(tape_.words, bytes);
  return id;
}

void WebGpuDevice::free_buffer(uint32_t id) {
  if (id == 0) return;
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  tape_.words.insert(tape_.words.end(), {static_cast<uint32_t>(TapeOp::FreeBuffer), 1, id});
}

void WebGpuDevice::upload(uint32_t id, uint64_t offset, const void* data, size_t bytes, bool keep_pointer) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  TapeUpload upload;
  upload.bytes = bytes;
  if (keep_pointer) {
    upload.data = static_cast<const uint8_t*>(data);
  } else {
    upload.owned.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
    upload.data = upload.owned.data();
  }
  tape_.uploads.push_back(std::move(upload));
  tape_.words.insert(tape_.words.end(), {static_cast<uint32_t>(TapeOp::Upload), 4, id});
  push64(tape_.words, offset);
  tape_.words.push_back(static_cast<uint32_t>(tape_.uploads.size() - 1));
}

void WebGpuDevice::copy(uint32_t src, uint64_t src_offset, uint32_t dst, uint64_t dst_offset, uint64_t bytes) {
  if (bytes == 0) return;
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  tape_.words.insert(tape_.words.end(), {static_cast<uint32_t>(TapeOp::Copy), 8, src});
  push64(tape_.words, src_offset);
  tape_.words.push_back(dst);
  push64(tape_.words, dst_offset);
  push64(tape_.words, bytes);
}

void WebGpuDevice::read(uint32_t id, uint64_t offset, size_t bytes, void* destination) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  tape_.words.insert(tape_.words.end(), {static_cast<uint32_t>(TapeOp::Read), 5, id});
  push64(tape_.words, offset);
  push64(tape_.words, bytes);
  tape_.reads.push_back({destination, bytes});
}

void WebGpuDevice::op(TapeOp op, std::initializer_list<uint32_t> args) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  tape_.words.push_back(static_cast<uint32_t>(op));
  tape_.words.push_back(static_cast<uint32_t>(args.size()));
  tape_.words.insert(tape_.words.end(), args);
}

void WebGpuDevice::flush() {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  if (tape_.empty()) return;
  Tape tape = std::move(tape_);
  tape_.clear();
  executor_->run(tape);
}

void WebGpuDevice::reserve_kv(size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  if (max_kv_bytes_ > 0 && kv_in_use_ + bytes > max_kv_bytes_)
    throw OutOfMemoryError("the KV cache needs " + std::to_string(kv_in_use_ + bytes) +
                           " bytes on the WebGPU device, over the cap of " + std::to_string(max_kv_bytes_) +
                           " bytes (maxKvBytes)");
  kv_in_use_ += bytes;
  kv_peak_ = std::max(kv_peak_, kv_in_use_);
}

void WebGpuDevice::release_kv(size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  kv_in_use_ -= std::min(bytes, kv_in_use_);
}

}  // namespace tidal
