// Device helpers shared by the attention-family kernels: bf16 unpacking, 16-byte loads,
// warp reductions and the order-preserving float -> uint32 key of the top-k selection.
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

// Read-only 16-byte load through the non-coherent path (the KV cache does not change while a
// kernel reads it).
__device__ __forceinline__ uint4 load_vector(const void* address) {
  return __ldg(reinterpret_cast<const uint4*>(address));
}

// 8 consecutive values of a float or bf16 array, widened to float.
__device__ __forceinline__ void load_floats8(const float* source, float (&out)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(source));
  const float4 b = __ldg(reinterpret_cast<const float4*>(source) + 1);
  out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
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
__device__ __forceinline__ void store_value(__nv_bfloat16* target, float value) { *target = __float2bfloat16_rn(value); }

// Sum over aligned groups of `Width` lanes (a power of two <= 32). XOR butterflies add the
// same two operands on both partners at every step, so every lane of a group ends with the
// bitwise-identical sum.
template <int Width>
__device__ __forceinline__ float group_sum(float value) {
#pragma unroll
  for (int offset = Width / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
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

}  // namespace tidal::cuda
