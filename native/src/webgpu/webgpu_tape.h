// The WebGPU backend's command tape: the decoder ops of a forward, recorded as kernel
// launches on device buffers instead of being run. The engine keeps the one forward
// (engine/decoder.h); the tape is run by a WebGpuExecutor that the host supplies (the Node
// addon hands it to JavaScript, which encodes each command as a WGSL compute pass through
// Dawn and reads back only what the engine asked for).
//
// Layout: a flat array of 32-bit words, one command after another:
//   [op][n][arg 0] ... [arg n-1]
// Buffer ids are nonzero (0 = none). Floats travel as their bit patterns; 64-bit byte
// counts and offsets as (low word, high word). Element offsets and strides count values
// (4-byte floats for activations). The kernels' math is stated in src/webgpu/kernels/.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tidal {

enum class TapeOp : uint32_t {
  CreateBuffer = 1,  // id, bytes lo, bytes hi
  FreeBuffer,        // id
  Upload,            // id, offset lo, offset hi, upload index
  Copy,              // src, src offset lo, hi, dst, dst offset lo, hi, bytes lo, hi
  Read,              // id, offset lo, offset hi, bytes lo, bytes hi -> the next result
  RmsNorm,           // in, in offset, in stride, out, out offset, out stride, weight, rows, width, eps
  Linear,            // weight, dtype, rows, cols, in, in offset, in stride, out, out offset, out stride, tokens,
                     // bias, accumulate, bias offset (rows into the bias: the band's first row)
  QkvRope,           // qkv, tokens, heads, kv heads, head dim, rope, extras (q|k|v bias, q|k norm), extras flags
                     // (1 bias, 2 norm), eps, k cache, v cache, start
  PageBounds,        // k cache, key min, key max, kv heads, head dim, first page, end page, positions
  Attend,            // qkv, tokens, heads, kv heads, head dim, start, k cache, v cache, out, scale, scores,
                     // positions, lists, list stride, list count
  SelectTopK,        // scores, heads, group, positions, candidates, keep, policy, lists, stride
  QuestPages,        // qkv, heads, kv heads, head dim, key min, key max, pages, page budget, positions, lists,
                     // stride, bounds scratch
  Swiglu,            // gate|up, tokens, inner, gated
  RotateKeys,        // k cache, kv heads, head dim, first position, count, table (cos half | sin half)
};

// How a weight matrix is stored on the device (Linear's dtype word).
// Block-quantised types keep their GGUF blocks (rows of whole blocks, 4-byte aligned).
enum class TapeWeightType : uint32_t { F32 = 0, F16 = 1, BF16 = 2, Q8_0 = 3, Q4_K = 4, Q6_K = 5 };

// Data the tape carries to the device (weights, token embeddings, RoPE angles).
struct TapeUpload {
  const uint8_t* data = nullptr;  // `owned` or caller memory that outlives the run
  size_t bytes = 0;
  std::vector<uint8_t> owned;
};

// Where a Read's bytes go once the tape has run.
struct TapeRead {
  void* destination = nullptr;
  size_t bytes = 0;
};

struct Tape {
  std::vector<uint32_t> words;
  std::vector<TapeUpload> uploads;
  std::vector<TapeRead> reads;
  bool empty() const { return words.empty(); }
  void clear() {
    words.clear();
    uploads.clear();
    reads.clear();
  }
};

// Runs a tape on a device: every command in order, then the reads copied to their
// destinations. Blocks the calling (engine) thread until done; never called on the thread that
// must service it (the addon's executor posts to the JS thread and waits). Throws
// tidal::Error with the device's message on failure.
class WebGpuExecutor {
 public:
  virtual ~WebGpuExecutor() = default;
  virtual void run(Tape& tape) = 0;
  // Hands over a tape of FreeBuffer commands and returns at once (destructors, which may run on
  // the thread that services the device, use it). Never throws.
  virtual void run_detached(Tape tape) = 0;
  // Bytes the largest buffer binding may have on this device (weights are split to fit).
  virtual uint64_t max_binding_bytes() const = 0;
};

}  // namespace tidal
