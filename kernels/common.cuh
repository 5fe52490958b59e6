// Device helpers shared by the kernels: bf16 unpacking and packing, 16-byte loads, warp,
// quad and block reductions, the online softmax's weights and merge, the split-KV part rule of
// prefill attention, the order-preserving float -> uint32 key of the top-k selection, and early
// launch (a kernel scheduled before the previous one ends).
//
// bf16 is the top half of a float32, so widening is a shift: the low bf16 of a 32-bit word
// becomes `word << 16`, the high one `word & 0xffff0000`. A 16-byte vector holds 8 bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tidal::cuda {

constexpr int kWarpSize = 32;

// log2(e): the kernels keep softmax exponents in base 2 (exp2 is one hardware instruction).
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float bf16_low(uint32_t word) { return __uint_as_float(word << 16); }
__device__ __forceinline__ float bf16_high(uint32_t word) { return __uint_as_float(word & 0xffff0000u); }

// The 8 floats of a 16-byte vector of bf16, in memory order.
__device__ __forceinline__ void unpack_bf16x8(const uint4& raw, float (&out)[8]) {
  out[0] = bf16_low(raw.x);
  out[1] = bf16_high(raw.x);
  out[2] = bf16_low(raw.y);
  out[3] = bf16_high(raw.y);
  out[4] = bf16_low(raw.z);
  out[5] = bf16_high(raw.z);
  out[6] = bf16_low(raw.w);
  out[7] = bf16_high(raw.w);
}

// Two floats rounded to bf16 (to nearest even) in one 32-bit word, `low` first in memory.
__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// SwiGLU's product silu(g) * u, in fp32: kernels/swiglu.cu and the products that end in it
// (gemv.cu, gemv_quant.cu with a gate|up matrix) compute it alike, so they agree bit for bit.
__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// Read-only 16-byte load through the non-coherent path (the KV cache does not change while a
// kernel reads it).
__device__ __forceinline__ uint4 load_vector(const void* address) {
  return __ldg(reinterpret_cast<const uint4*>(address));
}

// 8 consecutive values of a float or bf16 array, widened to float.
__device__ __forceinline__ void load_floats8(const float* source, float (&out)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(source));
  const float4 b = __ldg(reinterpret_cast<const float4*>(source) + 1);
  out[0] = a.x;
  out[1] = a.y;
  out[2] = a.z;
  out[3] = a.w;
  out[4] = b.x;
  out[5] = b.y;
  out[6] = b.z;
  out[7] = b.w;
}
__device__ __forceinline__ void load_floats8(const __nv_bfloat16* source, float (&out)[8]) {
  unpack_bf16x8(load_vector(source), out);
}

// Asynchronous 16-byte copy global -> shared (cp.async, bypassing L1). With valid == false
// nothing is read and the 16 shared bytes are zero-filled.
__device__ __forceinline__ void copy_async_16(void* shared, const void* global, bool valid) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  const int source_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(source_bytes)
               : "memory");
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most `Pending` of this thread's committed copy groups are still in flight.
template <int Pending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

__device__ __forceinline__ void store_value(float* target, float value) { *target = value; }
__device__ __forceinline__ void store_value(__nv_bfloat16* target, float value) {
  *target = __float2bfloat16_rn(value);
}

// Sum over aligned groups of `Width` lanes (a power of two <= 32). XOR butterflies add the
// same two operands on both partners at every step, so every lane of a group ends with the
// bitwise-identical sum.
template <int Width, typename T>
__device__ __forceinline__ T group_sum(T value) {
#pragma unroll
  for (int offset = Width / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T value) {
  return group_sum<kWarpSize>(value);
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Max and sum over the 4 lanes of a quad (lanes 4g .. 4g + 3, which hold one row of an mma
// m16n8 accumulator fragment): XOR 1, then XOR 2, so that every lane of the quad ends with the
// same value.
__device__ __forceinline__ float quad_max(float value) {
  value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, 1));
  return fmaxf(value, __shfl_xor_sync(0xffffffffu, value, 2));
}
__device__ __forceinline__ float quad_sum(float value) {
  value += __shfl_xor_sync(0xffffffffu, value, 1);
  return value + __shfl_xor_sync(0xffffffffu, value, 2);
}

// Sum of every thread's value over the block, returned to every thread: warp sums, then the
// `warps` warp sums added in warp order. `partial` is shared memory for one float per warp.
// One __syncthreads: a second call on the same `partial` needs a barrier before it.
__device__ __forceinline__ float block_sum(float value, float* partial, int warps) {
  value = warp_sum(value);
  if (threadIdx.x % kWarpSize == 0) partial[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += partial[w];
  return total;
}
// The same over all blockDim.x threads.
__device__ __forceinline__ float block_sum(float value, float* partial) {
  return block_sum(value, partial, (blockDim.x + kWarpSize - 1) / kWarpSize);
}

// Maximum of every thread's value over the block (whole warps), returned to every thread; as
// block_sum, `partial` holds one float per warp and a second call on it needs a barrier first.
__device__ __forceinline__ float block_max(float value, float* partial) {
  value = warp_max(value);
  if (threadIdx.x % kWarpSize == 0) partial[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  const int warps = (blockDim.x + kWarpSize - 1) / kWarpSize;
  float result = partial[0];
  for (int w = 1; w < warps; ++w) result = fmaxf(result, partial[w]);
  return result;
}

// ---- online softmax, base 2 ----------------------------------------------------------------
// An attention row's state over the keys seen so far, with logits x = q.k * scale * log2(e):
//   m = max_k x_k,   l = sum_k 2^(x_k - m),   O = sum_k 2^(x_k - m) v_k
// (O: the caller's accumulators; out = O / l at the end). States of disjoint key sets merge:
// with M = max_s m_s, state s enters with weight w_s = 2^(m_s - M),
//   l = sum_s w_s l_s,   O = sum_s w_s O_s.
// A tile of keys is taken in that way (the running state's weight is the rescale factor
// alpha = 2^(m - M), each key's is 2^(x - M)), and so are split-KV parts and a block's row
// groups, M taken over all of them first.

// 2^(x - max): the weight of a logit x, or of a state whose max is x, against the max `max`.
__device__ __forceinline__ float softmax_weight(float x, float max) { return exp2f(x - max); }

// What a row's weights are taken against: its running max, or 0 while every logit seen is
// -inf (every key so far masked), so that the weights come out 0 rather than NaN.
__device__ __forceinline__ float softmax_base(float max) { return max == -INFINITY ? 0.0f : max; }

// total + weight * part, rounded once: a state's sum (or an element of its O) added to the
// merged one.
__device__ __forceinline__ float merge_add(float total, float part, float weight) { return fmaf(part, weight, total); }

// ---- split-KV parts of prefill attention ------------------------------------------------------
// The key tiles [begin, end) of part `split` of `splits` for a query tile whose keys span
// `tiles` tiles: consecutive parts of ceil(tiles / splits) tiles from key 0, so only the last
// non-empty part reaches the diagonal, and parts from ceil(tiles / per) on are empty (when
// tiles < splits * per). Both prefill kernels (mma.sync and Hopper) cut their keys so.
struct TileRange {
  int begin, end;
};
__host__ __device__ inline TileRange split_tiles(int tiles, int splits, int split) {
  const int per = (tiles + splits - 1) / splits;
  const int begin = split * per < tiles ? split * per : tiles;
  const int end = begin + per < tiles ? begin + per : tiles;
  return {begin, end};
}
// How many parts are non-empty.
__host__ __device__ inline int split_parts(int tiles, int splits) {
  const int per = (tiles + splits - 1) / splits;
  return (tiles + per - 1) / per;
}

// Maps a float to a uint32 whose unsigned order is the float order: flip every bit of a
// negative number, set the sign bit of a positive one. -0 is folded onto +0 so that the two
// tie (and fall back to the position order), and NaN maps to 0, below -inf: NaN ranks last.
__device__ __forceinline__ uint32_t ordered_key(float value) {
  if (value != value) return 0u;
  const uint32_t bits = value == 0.0f ? 0u : __float_as_uint(value);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- Early launch (programmatic dependent launch, sm_90) ----
//
// A kernel launched with `early` (launch_kernel below) may be scheduled while the kernel before
// it in the stream is still running, as soon as every block of that kernel has called
// let_next_kernel_start(). Until it calls wait_for_previous_kernels() it may touch only memory
// that no kernel still in flight writes (a model's weights); the wait returns once the previous
// kernel has ended and its writes are visible, and since that kernel waited for its own
// predecessor the same way (or was launched without `early`), every earlier kernel has ended too.
// So a kernel launched early must call the wait in every block before it reads or writes an
// activation, and before it ends. let_next_kernel_start() may be called anywhere: it only lets
// a dependent be scheduled, which then waits for this kernel's end before it reads its results.
__device__ __forceinline__ void let_next_kernel_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_previous_kernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Launches `kernel` on `stream`; with `early`, with programmatic stream serialization (the
// kernel must then follow the rule above). Returns the launch's error code.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                          bool early, Args... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = early ? &attribute : nullptr;
  config.numAttrs = early ? 1 : 0;
  const cudaError_t launched = cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
  return launched != cudaSuccess ? launched : cudaGetLastError();
}

}  // namespace tidal::cuda
