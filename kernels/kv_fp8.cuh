// The FP8 KV cache's row format, shared by the kernels that write or read it.
//
// A row (one position of one KV head, head_dim values) is stored as head_dim E4M3 codes
// (native/src/cpu/fp8_e4m3.h: round to nearest even, saturating at 448) and one f16 scale:
//   scale = max|x| / 448, rounded up to an f16 (so x / scale never passes 448 by more than the
//           float division's rounding),   code_i = e4m3(x_i / scale),   x_i ~ float(code_i) * scale.
// A row of zeros has scale 0 and zero codes. The key's and the value's scale of a row sit in
// one 32-bit word (key: low half, value: high half), so one 4-byte load fetches both. The CPU
// backend's FP8 simulation (fp8_e4m3_row_scale, round_row_fp8_e4m3) does the same arithmetic,
// so both round a row to the same codes.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tidal::cuda {

constexpr float kFp8Max = 448.0f;

// The f16 scale (bits) of a row whose largest magnitude is `max_abs` (>= 0).
__device__ __forceinline__ uint16_t fp8_row_scale(float max_abs) {
  const __half scale = __float2half_ru(fminf(max_abs / kFp8Max, 65504.0f));
  return __half_as_ushort(scale);
}
__device__ __forceinline__ float fp8_scale_value(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// One value's code at a row scale (value 0 for a zero scale).
__device__ __forceinline__ uint8_t fp8_encode(float x, float scale) {
  if (scale == 0.0f) return 0;
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(x / scale, __NV_SATFINITE, __NV_E4M3));
}

// Two codes (low byte first) as floats, exactly.
__device__ __forceinline__ float2 fp8x2_to_float2(uint16_t pair) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), __NV_E4M3);
  return __half22float2(*reinterpret_cast<const __half2*>(&h));
}

// The 8 codes of an 8-byte vector as floats, in memory order (unscaled).
__device__ __forceinline__ void unpack_fp8x8(const uint2& raw, float (&out)[8]) {
  const float2 a = fp8x2_to_float2(static_cast<uint16_t>(raw.x));
  const float2 b = fp8x2_to_float2(static_cast<uint16_t>(raw.x >> 16));
  const float2 c = fp8x2_to_float2(static_cast<uint16_t>(raw.y));
  const float2 d = fp8x2_to_float2(static_cast<uint16_t>(raw.y >> 16));
  out[0] = a.x, out[1] = a.y, out[2] = b.x, out[3] = b.y;
  out[4] = c.x, out[5] = c.y, out[6] = d.x, out[7] = d.y;
}

// The 8 codes of an 8-byte vector as 4 f16 pairs (exact; one conversion per pair), and an f16
// of such a pair as a float.
__device__ __forceinline__ void fp8x8_to_half8(const uint2& raw, uint32_t (&out)[4]) {
  const uint16_t pieces[4] = {uint16_t(raw.x), uint16_t(raw.x >> 16), uint16_t(raw.y), uint16_t(raw.y >> 16)};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pieces[j]), __NV_E4M3);
    out[j] = uint32_t(h.x) | (uint32_t(h.y) << 16);
  }
}
__device__ __forceinline__ float half_low(uint32_t pair) { return __half2float(__ushort_as_half(uint16_t(pair))); }
__device__ __forceinline__ float half_high(uint32_t pair) {
  return __half2float(__ushort_as_half(uint16_t(pair >> 16)));
}

__device__ __forceinline__ float key_scale_of(uint32_t pair) { return fp8_scale_value(uint16_t(pair & 0xffffu)); }
__device__ __forceinline__ float value_scale_of(uint32_t pair) { return fp8_scale_value(uint16_t(pair >> 16)); }

// Asynchronous 4-byte copy global -> shared (cp.async.ca; zero-filled when !valid).
__device__ __forceinline__ void copy_async_4(void* shared, const void* global, bool valid) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  const int source_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(address), "l"(global), "r"(source_bytes)
               : "memory");
}

}  // namespace tidal::cuda
