#include "cuda/kv_transfer.h"

#include <algorithm>
#include <vector>

#include "cuda/cuda_error.h"
#include "cuda/device_buffer.h"
#include "tidal/error.h"

namespace tidal::cuda {

namespace {

// Pinned host memory and the event that says when the device is done with it.
class PinnedChunk {
 public:
  explicit PinnedChunk(size_t bytes) {
    if (cudaMallocHost(&data_, bytes) != cudaSuccess) {
      cudaGetLastError();
      data_ = nullptr;
      throw OutOfMemoryError("could not allocate " + gib(bytes) + " of pinned host memory to move the KV cache");
    }
    throw_if_failed(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "creating an event");
  }
  ~PinnedChunk() {
    if (done_) cudaEventDestroy(done_);
    if (data_) cudaFreeHost(data_);
  }
  PinnedChunk(const PinnedChunk&) = delete;
  PinnedChunk& operator=(const PinnedChunk&) = delete;
  char* data() const { return static_cast<char*>(data_); }
  cudaEvent_t done() const { return done_; }

 private:
  void* data_ = nullptr;
  cudaEvent_t done_ = nullptr;
};

// The cache's valid rows as device byte ranges, in file order.
struct Segment {
  char* device;
  size_t bytes;
};

std::vector<Segment> segments_of(const CudaKvCache& cache, int64_t length) {
  const KvShape& shape = cache.shape();
  const size_t element = shape.element_bytes();
  const size_t bytes = static_cast<size_t>(length * shape.head_dim) * element;
  const size_t head_bytes = static_cast<size_t>(cache.capacity() * shape.head_dim) * element;
  std::vector<Segment> out;
  for (int64_t layer = 0; layer < shape.layers; ++layer) {
    for (void* base : {cache.keys(layer), cache.values(layer)})
      for (int64_t head = 0; head < shape.kv_heads; ++head)
        out.push_back({static_cast<char*>(base) + head * head_bytes, bytes});
    if (shape.fp8)
      for (int64_t head = 0; head < shape.kv_heads; ++head)
        out.push_back(
            {reinterpret_cast<char*>(cache.scales(layer) + head * cache.capacity()), static_cast<size_t>(length) * 4});
  }
  return out;
}

// Walks the segments chunk by chunk, issuing one copy per piece of a segment in the chunk.
class SegmentCursor {
 public:
  explicit SegmentCursor(std::vector<Segment> segments) : segments_(std::move(segments)) {
    for (const Segment& s : segments_) total_ += s.bytes;
  }
  size_t total() const { return total_; }
  // Copies the next `bytes` of the stream between `host` and the device.
  void copy(char* host, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    while (bytes > 0) {
      const Segment& s = segments_[index_];
      const size_t n = std::min(bytes, s.bytes - offset_);
      char* device = s.device + offset_;
      const bool to_device = kind == cudaMemcpyHostToDevice;
      throw_if_failed(cudaMemcpyAsync(to_device ? device : host, to_device ? host : device, n, kind, stream),
                      to_device ? "copying the KV cache to the device" : "copying the KV cache from the device");
      host += n;
      bytes -= n;
      offset_ += n;
      if (offset_ == s.bytes) {
        ++index_;
        offset_ = 0;
      }
    }
  }

 private:
  std::vector<Segment> segments_;
  size_t total_ = 0, index_ = 0, offset_ = 0;
};

}  // namespace

void save_kv_cache(const CudaKvCache& cache, KvByteSink& sink) {
  SegmentCursor cursor(segments_of(cache, cache.length()));
  const size_t total = cursor.total();
  if (total == 0) return;
  const size_t chunk = std::min(kTransferChunkBytes, total);
  const cudaStream_t stream = cache.stream();
  PinnedChunk buffers[2] = {PinnedChunk(chunk), PinnedChunk(chunk)};
  const size_t chunks = (total + chunk - 1) / chunk;
  auto size_of = [&](size_t i) { return std::min(chunk, total - i * chunk); };
  auto issue = [&](size_t i) {
    cursor.copy(buffers[i % 2].data(), size_of(i), cudaMemcpyDeviceToHost, stream);
    throw_if_failed(cudaEventRecord(buffers[i % 2].done(), stream), "recording an event");
  };
  try {
    issue(0);
    for (size_t i = 0; i < chunks; ++i) {
      // The other buffer was written out by the previous iteration: refill it meanwhile.
      if (i + 1 < chunks) issue(i + 1);
      throw_if_failed(cudaEventSynchronize(buffers[i % 2].done()), "copying the KV cache from the device");
      sink.write(buffers[i % 2].data(), size_of(i));
    }
  } catch (...) {
    cudaStreamSynchronize(stream);  // no copy may still target the buffers freed on the way out
    throw;
  }
}

void load_kv_cache(CudaKvCache& cache, int64_t length, KvByteSource& source) {
  if (cache.length() != 0) throw RequestError("KV cache load into a cache that is not empty");
  cache.prepare_for(length);  // with room to decode after the loaded positions
  SegmentCursor cursor(segments_of(cache, length));
  const size_t total = cursor.total();
  const cudaStream_t stream = cache.stream();
  if (total > 0) {
    const size_t chunk = std::min(kTransferChunkBytes, total);
    PinnedChunk buffers[2] = {PinnedChunk(chunk), PinnedChunk(chunk)};
    try {
      for (size_t i = 0, offset = 0; offset < total; ++i, offset += chunk) {
        const PinnedChunk& buffer = buffers[i % 2];
        // The copy issued from this buffer two chunks ago must be done before it is refilled;
        // the other buffer's copy runs while the file is read.
        if (i >= 2) throw_if_failed(cudaEventSynchronize(buffer.done()), "copying the KV cache to the device");
        const size_t n = std::min(chunk, total - offset);
        source.read(buffer.data(), n);
        cursor.copy(buffer.data(), n, cudaMemcpyHostToDevice, stream);
        throw_if_failed(cudaEventRecord(buffer.done(), stream), "recording an event");
      }
    } catch (...) {
      cudaStreamSynchronize(stream);
      throw;
    }
  }
  cache.commit(length);
  cache.update_pages(0, length);
  throw_if_failed(cudaStreamSynchronize(stream), "loading the KV cache");
}

}  // namespace tidal::cuda
