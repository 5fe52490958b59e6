// KV-cache compaction ("context shift", as llama.cpp calls it): positions of the bf16 cache
// move down to new positions, one chunk of destinations at a time, through a scratch buffer.
//
// Math. RoPE rotates each pair (x_i, x_{i+d/2}) of a key by the angle p * f_i at position p
// (rotate-half pairs, as kernels/rope.cu). Rotations of a pair compose by adding angles, so
// the key cached for position `old` becomes the key for position `new` by one more rotation
// by t_i = (new - old) * f_i:
//   k'_i       = k_i cos t_i - k_{i+d/2} sin t_i
//   k'_{i+d/2} = k_{i+d/2} cos t_i + k_i sin t_i
// cos t_i and sin t_i come from a table the host fills in double (one table per moved range,
// as every position of a range moves by the same amount); the products are fp32 and the
// result is rounded once to bf16, so the error is bf16 rounding. Values carry no position and
// move unchanged.
//
// Layout. The cache is rows (layer, kv_head) of [capacity][head_dim] bf16, row_stride
// elements apart (keys and values alike). Chunk entry c (destination first + c, a host-side
// detail) reads its source position moves[c][0] with rotation table moves[c][1] and is written
// to scratch [row][c][head_dim], keys and values each; the host copies the scratch back to
// the destinations of every row afterwards. Reading all of a chunk's sources before writing
// any destination makes the in-place move safe: positions only move down and chunks go in
// ascending order, so a chunk's destinations lie below every later chunk's sources.
//
// Threads: x = pair i (head_dim / 2 of them), y = chunk entries; grid (entry blocks, rows).
#include "kv_shift.h"

#include "common.cuh"
#include "kv_fp8.cuh"

namespace tidal::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void kv_shift_gather_kernel(const KvShiftLaunch p) {
  const int half = p.head_dim / 2;
  const int i = threadIdx.x;
  const int entry = blockIdx.x * blockDim.y + threadIdx.y;
  if (entry >= p.count) return;
  const int64_t row = blockIdx.y;
  const int64_t source = p.moves[2 * entry];
  const int table = p.moves[2 * entry + 1];
  const float c = p.rotations[(int64_t(table) * half + i) * 2];
  const float s = p.rotations[(int64_t(table) * half + i) * 2 + 1];

  const auto* keys = reinterpret_cast<const __nv_bfloat16*>(p.keys) + row * p.row_stride + source * p.head_dim;
  const auto* values = reinterpret_cast<const __nv_bfloat16*>(p.values) + row * p.row_stride + source * p.head_dim;
  const int64_t out = (row * p.count + entry) * p.head_dim;
  auto* key_out = reinterpret_cast<__nv_bfloat16*>(p.key_scratch) + out;
  auto* value_out = reinterpret_cast<__nv_bfloat16*>(p.value_scratch) + out;

  const float x1 = __bfloat162float(keys[i]), x2 = __bfloat162float(keys[i + half]);
  key_out[i] = __float2bfloat16_rn(x1 * c - x2 * s);
  key_out[i + half] = __float2bfloat16_rn(x2 * c + x1 * s);
  value_out[i] = values[i];
  value_out[i + half] = values[i + half];
}

// FP8: a warp per entry (lane j holds pairs j, j + 32, ...), block (32, kFp8Entries).
constexpr int kFp8Entries = 8;
constexpr int kFp8PairsPerLane = 4;

__global__ void kv_shift_gather_fp8_kernel(const KvShiftLaunch p) {
  const int half = p.head_dim / 2;
  const int lane = threadIdx.x;
  const int entry = blockIdx.x * kFp8Entries + threadIdx.y;
  if (entry >= p.count) return;
  const int64_t row = blockIdx.y;
  const int64_t source = p.moves[2 * entry];
  const int table = p.moves[2 * entry + 1];
  const uint8_t* keys = static_cast<const uint8_t*>(p.keys) + row * p.row_stride + source * p.head_dim;
  const uint8_t* values = static_cast<const uint8_t*>(p.values) + row * p.row_stride + source * p.head_dim;
  const uint32_t pair = p.scales[row * p.scale_row_stride + source];
  const float key_scale = key_scale_of(pair);
  float y1[kFp8PairsPerLane], y2[kFp8PairsPerLane];
  float max_abs = 0.0f;
#pragma unroll
  for (int j = 0; j < kFp8PairsPerLane; ++j) {
    const int i = lane + j * kWarpSize;
    y1[j] = y2[j] = 0.0f;
    if (i >= half) continue;
    const float2 x = fp8x2_to_float2(uint16_t(keys[i]) | uint16_t(keys[i + half] << 8));
    const float x1 = x.x * key_scale, x2 = x.y * key_scale;
    const float c = p.rotations[(int64_t(table) * half + i) * 2];
    const float s = p.rotations[(int64_t(table) * half + i) * 2 + 1];
    y1[j] = x1 * c - x2 * s;
    y2[j] = x2 * c + x1 * s;
    max_abs = fmaxf(max_abs, fmaxf(fabsf(y1[j]), fabsf(y2[j])));
  }
  const uint16_t bits = fp8_row_scale(warp_max(max_abs));
  const float scale = fp8_scale_value(bits);
  const int64_t out = (row * p.count + entry) * p.head_dim;
  uint8_t* key_out = static_cast<uint8_t*>(p.key_scratch) + out;
  uint8_t* value_out = static_cast<uint8_t*>(p.value_scratch) + out;
#pragma unroll
  for (int j = 0; j < kFp8PairsPerLane; ++j) {
    const int i = lane + j * kWarpSize;
    if (i >= half) continue;
    key_out[i] = fp8_encode(y1[j], scale);
    key_out[i + half] = fp8_encode(y2[j], scale);
    value_out[i] = values[i];
    value_out[i + half] = values[i + half];
  }
  if (lane == 0) p.scale_scratch[row * p.count + entry] = uint32_t(bits) | (pair & 0xffff0000u);
}

}  // namespace

cudaError_t launch_kv_shift_gather(const KvShiftLaunch& launch, cudaStream_t stream) {
  if (launch.count <= 0 || launch.rows <= 0) return cudaSuccess;
  const int half = launch.head_dim / 2;
  if (launch.scales) {
    if (launch.head_dim % 2 != 0 || half > kWarpSize * kFp8PairsPerLane) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(ceil_div(launch.count, kFp8Entries)), static_cast<unsigned>(launch.rows));
    kv_shift_gather_fp8_kernel<<<grid, dim3(kWarpSize, kFp8Entries), 0, stream>>>(launch);
    return cudaGetLastError();
  }
  if (launch.head_dim % 2 != 0 || half > kThreads) return cudaErrorInvalidValue;
  const dim3 block(half, kThreads / half);
  const dim3 grid(static_cast<unsigned>(ceil_div(launch.count, block.y)), static_cast<unsigned>(launch.rows));
  kv_shift_gather_kernel<<<grid, block, 0, stream>>>(launch);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
