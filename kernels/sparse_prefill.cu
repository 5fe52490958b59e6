// The kernels of a sparse prefill pass (see sparse_prefill.h).
//
// Pass scores: a block takes 128 positions of one KV head (4 warps of 32, two m16 tiles each)
// and, for each query head of the group in turn, streams the pass's queries through shared
// memory in tiles of 64. A warp keeps its keys' fragments in registers for the whole block
// (the A operand, keys as rows) and takes each tile's queries as the B operand in n8 columns:
// C[key][query] = k . q on mma.m16n8k16 (bf16, fp32 sums). Each key's running maximum of
// scale * C - lse[query] lives in the lanes that hold its row; the quad of lanes sharing a row
// merges them at the end. No causal mask: every position before the pass precedes every token
// of it. The work is the selection layer's Q K^T once more, on the tensor cores (~0.2 TFLOP
// for 256 tokens of 32 heads at 99K positions), and the keys are read once per KV head.
//
// Gather: one thread copies 16 bytes of a K row and of a V row.
#include "sparse_prefill.h"

#include "common.cuh"
#include "mma.cuh"

namespace tidal::cuda {

namespace {

constexpr int kScoreWarps = 4;
constexpr int kKeysPerWarp = 32;  // two m16 tiles
constexpr int kKeysPerBlock = kScoreWarps * kKeysPerWarp;
constexpr int kQueryTile = 64;

template <int D>
__global__ void __launch_bounds__(kScoreWarps * 32) pass_scores_kernel(PassScoresLaunch p) {
  constexpr int kSteps = D / 16;  // k-steps of 16 dimensions
  constexpr int kLd = D + 8;      // shared row stride in bf16: rows 4 banks apart, no conflicts
  __shared__ __align__(16) uint16_t queries[kQueryTile * kLd];
  __shared__ float lse_tile[kQueryTile];

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, t = lane % 4;
  const int kv_head = blockIdx.y;
  const int group = p.heads / p.kv_heads;
  const int64_t q_row = int64_t(p.q_row_heads ? p.q_row_heads : p.heads) * D;
  const int64_t first_key = int64_t(blockIdx.x) * kKeysPerBlock + warp * kKeysPerWarp;

  // This warp's keys as A fragments: a0 = K[g][2t..], a1 = K[g + 8][2t..], a2 = K[g][2t + 8..],
  // a3 = K[g + 8][2t + 8..] of each k-step; rows past the candidates read as zeros (unused).
  uint32_t a[2][kSteps][4];
  const uint16_t* keys = p.keys + int64_t(kv_head) * p.head_stride;
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    const int64_t row0 = first_key + m * 16 + g, row1 = row0 + 8;
    const uint32_t* k0 = reinterpret_cast<const uint32_t*>(keys + row0 * D);
    const uint32_t* k1 = reinterpret_cast<const uint32_t*>(keys + row1 * D);
    const bool in0 = row0 < p.candidates, in1 = row1 < p.candidates;
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int word = s * 8 + t;  // (s * 16 + 2t) / 2
      a[m][s][0] = in0 ? __ldg(k0 + word) : 0u;
      a[m][s][1] = in1 ? __ldg(k1 + word) : 0u;
      a[m][s][2] = in0 ? __ldg(k0 + word + 4) : 0u;
      a[m][s][3] = in1 ? __ldg(k1 + word + 4) : 0u;
    }
  }

  for (int member = 0; member < group; ++member) {
    const int head = kv_head * group + member;
    // best[m][0]: key row g of tile m, best[m][1]: row g + 8.
    float best[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}};
    for (int first_query = 0; first_query < p.tokens; first_query += kQueryTile) {
      __syncthreads();                // the previous tile is no longer read
      constexpr int kChunks = D / 8;  // 16-byte pieces of a query row
      for (int i = threadIdx.x; i < kQueryTile * kChunks; i += kScoreWarps * 32) {
        const int row = i / kChunks, chunk = i % kChunks;
        const int token = first_query + row;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (token < p.tokens) v = load_vector(p.q + token * q_row + int64_t(head) * D + chunk * 8);
        *reinterpret_cast<uint4*>(&queries[row * kLd + chunk * 8]) = v;
      }
      for (int row = threadIdx.x; row < kQueryTile; row += kScoreWarps * 32) {
        const int token = first_query + row;
        // A padding row's weight is -inf: it never wins a maximum.
        lse_tile[row] = token < p.tokens ? p.lse[int64_t(token) * p.heads + head] : INFINITY;
      }
      __syncthreads();
#pragma unroll 2
      for (int n = 0; n < kQueryTile / 8; ++n) {
        float c[2][4] = {};
        const uint16_t* column = &queries[(n * 8 + g) * kLd];
#pragma unroll
        for (int s = 0; s < kSteps; ++s) {
          const uint32_t b0 = *reinterpret_cast<const uint32_t*>(column + s * 16 + 2 * t);
          const uint32_t b1 = *reinterpret_cast<const uint32_t*>(column + s * 16 + 2 * t + 8);
          mma_bf16(c[0], a[0][s], b0, b1);
          mma_bf16(c[1], a[1][s], b0, b1);
        }
        const float l0 = lse_tile[n * 8 + 2 * t], l1 = lse_tile[n * 8 + 2 * t + 1];
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          best[m][0] = fmaxf(best[m][0], fmaxf(c[m][0] * p.scale - l0, c[m][1] * p.scale - l1));
          best[m][1] = fmaxf(best[m][1], fmaxf(c[m][2] * p.scale - l0, c[m][3] * p.scale - l1));
        }
      }
    }
    // The four lanes of a quad hold the same key rows over different queries.
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float v = best[m][r];
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
        const int64_t key = first_key + m * 16 + g + r * 8;
        if (t == 0 && key < p.candidates) p.out[int64_t(head) * p.out_stride + key] = v;
      }
  }
}

__global__ void gather_lists_kernel(GatherListsLaunch p, int64_t rows, int chunks) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * chunks) return;
  const int64_t row = i / chunks;
  const int chunk = static_cast<int>(i % chunks);
  const int64_t entries = p.keep + p.pass_tokens;
  const int64_t list = row / entries, entry = row % entries;
  const int64_t position =
      entry < p.keep ? int64_t(p.positions[list * p.list_stride + entry]) : p.pass_start + (entry - p.keep);
  const int64_t kv_head = list / p.lists_per_kv_head;
  const int64_t source = kv_head * p.head_stride + position * p.head_dim + chunk * 8;
  const int64_t target = row * p.head_dim + chunk * 8;
  *reinterpret_cast<uint4*>(p.out_keys + target) = load_vector(p.keys + source);
  *reinterpret_cast<uint4*>(p.out_values + target) = load_vector(p.values + source);
}

}  // namespace

cudaError_t launch_pass_scores(const PassScoresLaunch& p, cudaStream_t stream) {
  if (p.candidates <= 0 || p.heads <= 0) return cudaSuccess;
  if (p.tokens <= 0 || p.kv_heads <= 0 || p.heads % p.kv_heads != 0) return cudaErrorInvalidValue;
  if (p.q_row_heads != 0 && p.q_row_heads < p.heads) return cudaErrorInvalidValue;
  if (!p.q || !p.keys || !p.lse || !p.out || p.out_stride < p.candidates) return cudaErrorInvalidValue;
  const int64_t tiles = ceil_div(p.candidates, int64_t(kKeysPerBlock));
  if (tiles > 0x7fffffff || p.kv_heads > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(p.kv_heads));
  if (p.head_dim == 128) {
    pass_scores_kernel<128><<<grid, kScoreWarps * 32, 0, stream>>>(p);
  } else if (p.head_dim == 64) {
    pass_scores_kernel<64><<<grid, kScoreWarps * 32, 0, stream>>>(p);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_gather_lists(const GatherListsLaunch& p, cudaStream_t stream) {
  const int64_t rows = int64_t(p.lists) * (p.keep + p.pass_tokens);
  if (rows <= 0) return cudaSuccess;
  if (p.head_dim % 8 != 0 || p.lists_per_kv_head < 1 || p.keep < 0 || p.pass_tokens < 0) return cudaErrorInvalidValue;
  if (!p.keys || !p.values || !p.out_keys || !p.out_values || (p.keep > 0 && !p.positions))
    return cudaErrorInvalidValue;
  const int chunks = p.head_dim / 8;
  constexpr int kThreads = 256;
  const int64_t blocks = ceil_div(rows * chunks, int64_t(kThreads));
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  gather_lists_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, rows, chunks);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
