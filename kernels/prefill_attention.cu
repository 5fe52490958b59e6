// Prefill attention: causal, GQA, flash-style tiling on the tensor cores.
//
// A block of 4 (or 8) warps takes 64 (128) consecutive queries of one head; each warp holds
// 16 query rows. Keys and values stream through shared memory in tiles of 64 positions (cp.async,
// two stages: the next tile loads while this one is computed), up to the block's last
// query position, so memory is O(tile) whatever the prompt length and a chunk of a prompt
// attends the cache that earlier chunks filled (queries at start .. start + tokens - 1).
//
// Per tile: S = Q K^T with mma.m16n8k16 (bf16 operands, fp32 accumulators in registers),
// causal mask, online softmax in base 2 (running max and sum per row, fp32), P rounded to
// bf16 and reused straight from the accumulator registers as the A operand of O += P V
// (V fragments through ldmatrix.trans). The m16n8k16 fragment layout (lane = 4 * g + t):
//   A 16x16: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B 16x8:  b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C 16x8:  c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
#include "common.cuh"
#include "cuda/model_kernels.h"

namespace tidal::cuda {

namespace {

// A block has Warps warps (4 or 8) of 16 query rows each; they share every K/V tile.
constexpr int kKeyRows = 64;  // per tile

template <int D>
struct PrefillShape {
  static constexpr int kLd = D + 8;  // shared row stride in bf16 (16 bytes of padding: no bank conflicts)
  static constexpr int kTileElements = kKeyRows * kLd;
  static constexpr int kSharedBytes = 2 /*stages*/ * 2 /*K, V*/ * kTileElements * 2;
};

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* shared) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* shared) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

template <int D, int Threads>
__device__ __forceinline__ void load_tile(const PrefillAttentionLaunch& p, const uint16_t* keys,
                                          const uint16_t* values, int64_t first, int64_t end, uint16_t* ks,
                                          uint16_t* vs) {
  constexpr int kVectorsPerRow = D / 8;
  constexpr int kLd = PrefillShape<D>::kLd;
  for (int v = threadIdx.x; v < kKeyRows * kVectorsPerRow; v += Threads) {
    const int row = v / kVectorsPerRow, column = (v % kVectorsPerRow) * 8;
    const int64_t position = first + row;
    const bool valid = position < end;
    const int64_t offset = (valid ? position : 0) * D + column;
    copy_async_16(ks + row * kLd + column, keys + offset, valid);
    copy_async_16(vs + row * kLd + column, values + offset, valid);
  }
}

template <int D, int Warps, bool LdmatrixK>
__global__ void __launch_bounds__(Warps * 32) prefill_attention_kernel(PrefillAttentionLaunch p) {
  constexpr int kQueryRows = Warps * 16;
  constexpr int kThreads = Warps * 32;
  using Shape = PrefillShape<D>;
  constexpr int kLd = Shape::kLd;
  extern __shared__ __align__(16) uint16_t shared[];
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, t = lane % 4;
  const int query_block = gridDim.x - 1 - blockIdx.x;  // the longest blocks first
  const int head = blockIdx.y;
  const int kv_head = head / (p.heads / p.kv_heads);
  const int q_first = query_block * kQueryRows;  // token index within this chunk
  const int64_t total = p.start + p.tokens;
  const int64_t block_end = p.start + q_first + kQueryRows;
  const int64_t kv_end = total < block_end ? total : block_end;
  const uint16_t* keys = p.keys + int64_t(kv_head) * p.head_stride;
  const uint16_t* values = p.values + int64_t(kv_head) * p.head_stride;

  // Query fragments of this warp's 16 rows (rows past the chunk read as zero).
  const int row0 = q_first + warp * 16 + g, row1 = row0 + 8;
  uint32_t qa[D / 16][4];
  {
    const int64_t q_stride = int64_t(p.heads) * D;
    const uint16_t* q0 = p.q + int64_t(row0) * q_stride + int64_t(head) * D;
    const uint16_t* q1 = q0 + 8 * q_stride;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int c = kk * 16 + 2 * t;
      qa[kk][0] = row0 < p.tokens ? *reinterpret_cast<const uint32_t*>(q0 + c) : 0u;
      qa[kk][1] = row1 < p.tokens ? *reinterpret_cast<const uint32_t*>(q1 + c) : 0u;
      qa[kk][2] = row0 < p.tokens ? *reinterpret_cast<const uint32_t*>(q0 + c + 8) : 0u;
      qa[kk][3] = row1 < p.tokens ? *reinterpret_cast<const uint32_t*>(q1 + c + 8) : 0u;
    }
  }
  const int64_t pos0 = p.start + row0, pos1 = pos0 + 8;  // absolute positions of the two rows
  const float scale_log2 = p.scale * kLog2e;

  float o[D / 8][4];
#pragma unroll
  for (int d = 0; d < D / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  const int tiles = static_cast<int>(ceil_div(kv_end, kKeyRows));
  load_tile<D, kThreads>(p, keys, values, 0, kv_end, shared, shared + Shape::kTileElements);
  copy_async_commit();
  for (int tile = 0; tile < tiles; ++tile) {
    const int stage = tile & 1;
    if (tile + 1 < tiles) {
      uint16_t* next = shared + (stage ^ 1) * 2 * Shape::kTileElements;
      load_tile<D, kThreads>(p, keys, values, int64_t(tile + 1) * kKeyRows, kv_end, next, next + Shape::kTileElements);
    }
    copy_async_commit();
    copy_async_wait<1>();
    __syncthreads();
    const uint16_t* ks = shared + stage * 2 * Shape::kTileElements;
    const uint16_t* vs = ks + Shape::kTileElements;
    const int64_t first = int64_t(tile) * kKeyRows;

    float s[kKeyRows / 8][4];
    if constexpr (LdmatrixK) {
      // S = Q K^T: per 8 keys, two 16-dim steps per ldmatrix.x4 (lanes 8i..8i+7 address the
      // rows of matrix i: keys j*8 + (lane & 7), dims 16 kk + 8 (lane >> 3)).
      const uint16_t* kaddress = ks + (lane & 7) * kLd + (lane >> 3) * 8;
#pragma unroll
      for (int j = 0; j < kKeyRows / 8; ++j) {
        s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, kaddress + j * 8 * kLd + kk * 16);
          mma_bf16(s[j], qa[kk], b[0], b[1]);
          mma_bf16(s[j], qa[kk + 1], b[2], b[3]);
        }
      }
    } else {
      // S = Q K^T with 32-bit shared loads: b0 = K[g][2t..], b1 = K[g][2t+8..] (conflict-free
      // with the padded rows).
#pragma unroll
      for (int j = 0; j < kKeyRows / 8; ++j) {
        s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        const uint16_t* krow = ks + (j * 8 + g) * kLd + 2 * t;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + kk * 16);
          const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + kk * 16 + 8);
          mma_bf16(s[j], qa[kk], b0, b1);
        }
      }
    }
    // Scale into base 2, mask the future, new running maxima.
    float tile_max0 = -INFINITY, tile_max1 = -INFINITY;
    const bool needs_mask = first + kKeyRows - 1 > p.start + q_first + warp * 16;
#pragma unroll
    for (int j = 0; j < kKeyRows / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = first + j * 8 + 2 * t + (e & 1);
        float v = s[j][e] * scale_log2;
        if (needs_mask && key > (e < 2 ? pos0 : pos1)) v = -INFINITY;
        s[j][e] = v;
      }
      tile_max0 = fmaxf(tile_max0, fmaxf(s[j][0], s[j][1]));
      tile_max1 = fmaxf(tile_max1, fmaxf(s[j][2], s[j][3]));
    }
    tile_max0 = fmaxf(tile_max0, __shfl_xor_sync(0xffffffffu, tile_max0, 1));
    tile_max0 = fmaxf(tile_max0, __shfl_xor_sync(0xffffffffu, tile_max0, 2));
    tile_max1 = fmaxf(tile_max1, __shfl_xor_sync(0xffffffffu, tile_max1, 1));
    tile_max1 = fmaxf(tile_max1, __shfl_xor_sync(0xffffffffu, tile_max1, 2));
    const float new0 = fmaxf(m0, tile_max0), new1 = fmaxf(m1, tile_max1);
    const float base0 = new0 == -INFINITY ? 0.0f : new0, base1 = new1 == -INFINITY ? 0.0f : new1;
    const float alpha0 = exp2f(m0 - base0), alpha1 = exp2f(m1 - base1);
    m0 = new0;
    m1 = new1;
    float sum0 = 0.0f, sum1 = 0.0f;
    uint32_t pa[kKeyRows / 16][4];
#pragma unroll
    for (int j = 0; j < kKeyRows / 8; ++j) {
      const float p0 = exp2f(s[j][0] - base0), p1 = exp2f(s[j][1] - base0);
      const float p2 = exp2f(s[j][2] - base1), p3 = exp2f(s[j][3] - base1);
      sum0 += p0 + p1;
      sum1 += p2 + p3;
      pa[j / 2][(j & 1) * 2 + 0] = pack_bf16(p0, p1);
      pa[j / 2][(j & 1) * 2 + 1] = pack_bf16(p2, p3);
    }
    l0 = l0 * alpha0 + sum0;
    l1 = l1 * alpha1 + sum1;
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      o[d][0] *= alpha0;
      o[d][1] *= alpha0;
      o[d][2] *= alpha1;
      o[d][3] *= alpha1;
    }
    // O += P V: per 16 keys, two 8-wide dimension tiles per ldmatrix.x4.trans.
    const int vrow = (lane & 7) + ((lane >> 3) & 1) * 8, vcol = (lane >> 4) * 8;
#pragma unroll
    for (int i = 0; i < kKeyRows / 16; ++i) {
#pragma unroll
      for (int d = 0; d < D / 8; d += 2) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, vs + (i * 16 + vrow) * kLd + d * 8 + vcol);
        mma_bf16(o[d], pa[i], b[0], b[1]);
        mma_bf16(o[d + 1], pa[i], b[2], b[3]);
      }
    }
    __syncthreads();
  }
  copy_async_wait<0>();

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
  const int64_t out_stride = int64_t(p.heads) * D;
  __nv_bfloat16* out = reinterpret_cast<__nv_bfloat16*>(p.out) + int64_t(head) * D + 2 * t;
#pragma unroll
  for (int d = 0; d < D / 8; ++d) {
    if (row0 < p.tokens)
      *reinterpret_cast<__nv_bfloat162*>(out + int64_t(row0) * out_stride + d * 8) =
          __floats2bfloat162_rn(o[d][0] * inv0, o[d][1] * inv0);
    if (row1 < p.tokens)
      *reinterpret_cast<__nv_bfloat162*>(out + int64_t(row1) * out_stride + d * 8) =
          __floats2bfloat162_rn(o[d][2] * inv1, o[d][3] * inv1);
  }
}

template <int D, int Warps, bool LdmatrixK>
cudaError_t launch_for(const PrefillAttentionLaunch& p, cudaStream_t stream) {
  constexpr int kBytes = PrefillShape<D>::kSharedBytes;
  static const cudaError_t prepared =
      cudaFuncSetAttribute(prefill_attention_kernel<D, Warps, LdmatrixK>, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes);
  if (prepared != cudaSuccess) return prepared;
  const dim3 grid(static_cast<unsigned>(ceil_div(p.tokens, Warps * 16)), p.heads);
  prefill_attention_kernel<D, Warps, LdmatrixK><<<grid, Warps * 32, kBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_prefill_attention(const PrefillAttentionLaunch& launch, cudaStream_t stream) {
  if (launch.tokens <= 0) return cudaSuccess;
  if (launch.kv_heads <= 0 || launch.heads % launch.kv_heads != 0) return cudaErrorInvalidValue;
  // 4 warps with 32-bit K loads: the variant measured on the H200 (bench/NOTES.md); 8 warps
  // with ldmatrix K loads: the next candidate, built and tested, not yet measured.
  const bool wide = launch.warps == 8;
  if (launch.head_dim == 128)
    return wide ? launch_for<128, 8, true>(launch, stream) : launch_for<128, 4, false>(launch, stream);
  if (launch.head_dim == 64)
    return wide ? launch_for<64, 8, true>(launch, stream) : launch_for<64, 4, false>(launch, stream);
  return cudaErrorInvalidValue;
}

}  // namespace tidal::cuda
