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
//
// Split-KV (short chunks against long caches): (query tiles x heads) blocks are too few to
// fill the GPU, and each would stream the whole cache alone. The key tiles of every query
// tile are then cut into S parts (split_tiles, common.cuh) and block (query tile, head, part) computes,
// over its part only, the unnormalised partial output and its row statistics in base 2:
//   m_s = max_k x_k,  l_s = sum_k 2^(x_k - m_s),  O_s = sum_k 2^(x_k - m_s) V_k
// (x_k = q.k_k * scale * log2(e), masked keys excluded; a row whose keys in the part are all
// in its future has m_s = -inf, l_s = 0, O_s = 0). The combine kernel merges the parts:
//   m = max_s m_s,  w_s = 2^(m_s - m),  out = sum_s w_s O_s / sum_s w_s l_s.
// The inner loop is the same for both; only the key range and the epilogue differ.
//
// On Hopper, launch_prefill_attention runs kernels/prefill_attention_hopper.cu instead (128
// queries and 128 keys a tile, the same partial format); the split rule and the combine kernel
// here serve both, with each kernel's tile sizes.
#include "prefill_attention.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common.cuh"
#include "device_info.h"
#include "mma.cuh"
#include "prefill_attention_hopper.h"

namespace tidal::cuda {

namespace {

// A block has Warps warps (4 or 8) of 16 query rows each; they share every K/V tile.
constexpr int kKeyRows = 64;  // per tile

// The split rule's constants (see prefill_attention_splits).
constexpr int kMaxSplits = 64;
constexpr int kSplitMaxTokens = 1024;   // chunks this long fill the GPU unsplit
constexpr int kMinKeysPerSplit = 1024;  // the combine's reads stay small against a part's work
constexpr int kCombineWarps = 8;        // rows (token, head) per combine block, one per warp

template <int D>
struct PrefillShape {
  static constexpr int kLd = D + 8;  // shared row stride in bf16 (16 bytes of padding: no bank conflicts)
  static constexpr int kTileElements = kKeyRows * kLd;
  static constexpr int kSharedBytes = 2 /*stages*/ * 2 /*K, V*/ * kTileElements * 2;
};

// Where the partial results of a split launch go (unused when splits == 1).
//   out   [splits][tokens][heads][D]: O_s of each row (fp32, unnormalised)
//   stats [splits][tokens][heads]: (m_s, l_s)
// Only the parts that are not empty for a row's query tile are written (and read).
struct SplitPartials {
  float* out = nullptr;
  float2* stats = nullptr;
  int splits = 1;
};

// End (exclusive) of the keys the query tile starting at chunk token q_first attends: its last
// query's position + 1, or the chunk's end.
__host__ __device__ inline int64_t query_tile_key_end(const PrefillAttentionLaunch& p, int q_first, int rows) {
  const int64_t total = p.start + p.tokens;
  const int64_t block_end = p.start + q_first + rows;
  return total < block_end ? total : block_end;
}

template <int D, int Threads>
__device__ __forceinline__ void load_tile(const PrefillAttentionLaunch& p, const uint16_t* keys, const uint16_t* values,
                                          int64_t first, int64_t end, uint16_t* ks, uint16_t* vs) {
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

// Partial == false: grid (query tiles, heads), every block over all its keys, bf16 output.
// Partial == true: grid (query tiles, heads, splits), block z over part z of its key tiles,
// O_s / (m_s, l_s) into `partials`.
template <int D, int Warps, bool LdmatrixK, bool Partial>
__global__ void __launch_bounds__(Warps * 32)
    prefill_attention_kernel(PrefillAttentionLaunch p, SplitPartials partials) {
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
  const int64_t kv_end = query_tile_key_end(p, q_first, kQueryRows);
  const int key_tiles = static_cast<int>(ceil_div(kv_end, kKeyRows));
  int tile_begin = 0, tile_end = key_tiles;
  if constexpr (Partial) {
    const TileRange range = split_tiles(key_tiles, partials.splits, blockIdx.z);
    if (range.begin >= range.end) return;  // an empty part: the combine does not read it
    tile_begin = range.begin;
    tile_end = range.end;
  }
  const uint16_t* keys = p.keys + int64_t(kv_head) * p.head_stride;
  const uint16_t* values = p.values + int64_t(kv_head) * p.head_stride;

  // Query fragments of this warp's 16 rows (rows past the chunk read as zero).
  const int row0 = q_first + warp * 16 + g, row1 = row0 + 8;
  uint32_t qa[D / 16][4];
  {
    const int64_t q_stride = int64_t(p.row_heads ? p.row_heads : p.heads) * D;
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

  load_tile<D, kThreads>(p, keys, values, int64_t(tile_begin) * kKeyRows, kv_end, shared,
                         shared + Shape::kTileElements);
  copy_async_commit();
  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int stage = (tile - tile_begin) & 1;
    if (tile + 1 < tile_end) {
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
    // Scale into base 2, mask the future (only tiles that reach this warp's diagonal), new
    // running maxima.
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
    tile_max0 = quad_max(tile_max0);
    tile_max1 = quad_max(tile_max1);
    const float new0 = fmaxf(m0, tile_max0), new1 = fmaxf(m1, tile_max1);
    const float base0 = softmax_base(new0), base1 = softmax_base(new1);
    const float alpha0 = softmax_weight(m0, base0), alpha1 = softmax_weight(m1, base1);
    m0 = new0;
    m1 = new1;
    float sum0 = 0.0f, sum1 = 0.0f;
    uint32_t pa[kKeyRows / 16][4];
#pragma unroll
    for (int j = 0; j < kKeyRows / 8; ++j) {
      const float p0 = softmax_weight(s[j][0], base0), p1 = softmax_weight(s[j][1], base0);
      const float p2 = softmax_weight(s[j][2], base1), p3 = softmax_weight(s[j][3], base1);
      sum0 += p0 + p1;
      sum1 += p2 + p3;
      pa[j / 2][(j & 1) * 2 + 0] = pack_bf16(p0, p1);
      pa[j / 2][(j & 1) * 2 + 1] = pack_bf16(p2, p3);
    }
    l0 = merge_add(sum0, l0, alpha0);
    l1 = merge_add(sum1, l1, alpha1);
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

  l0 = quad_sum(l0);
  l1 = quad_sum(l1);
  if constexpr (Partial) {
    // O_s as fp32 pairs (each row's 8 columns of a dimension tile are one 32-byte sector);
    // lane t == 0 of each quad writes the row's (m_s, l_s).
    const int64_t out_stride = int64_t(p.heads) * D;  // the partials hold this launch's heads
    const int64_t split_rows = int64_t(blockIdx.z) * p.tokens;
    float* out = partials.out + split_rows * out_stride + int64_t(head) * D + 2 * t;
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      if (row0 < p.tokens)
        *reinterpret_cast<float2*>(out + int64_t(row0) * out_stride + d * 8) = make_float2(o[d][0], o[d][1]);
      if (row1 < p.tokens)
        *reinterpret_cast<float2*>(out + int64_t(row1) * out_stride + d * 8) = make_float2(o[d][2], o[d][3]);
    }
    if (t == 0) {
      float2* stats = partials.stats + split_rows * p.heads + head;
      if (row0 < p.tokens) stats[int64_t(row0) * p.heads] = make_float2(m0, l0);
      if (row1 < p.tokens) stats[int64_t(row1) * p.heads] = make_float2(m1, l1);
    }
  } else {
    const int64_t out_stride = int64_t(p.row_heads ? p.row_heads : p.heads) * D;
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
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
}

// One warp per (token, head) row: merges the row's non-empty parts (see the top of the file)
// and writes the bf16 output where the unsplit kernel writes it. Each lane owns D / 32
// consecutive dimensions. query_rows and key_rows: the tiles of the kernel that wrote the parts.
template <int D>
__global__ void __launch_bounds__(kCombineWarps * 32)
    prefill_combine_kernel(PrefillAttentionLaunch p, SplitPartials partials, int query_rows, int key_rows) {
  constexpr int kPerLane = D / kWarpSize;  // 2 or 4
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t rows = int64_t(p.tokens) * p.heads;
  const int64_t row = int64_t(blockIdx.x) * kCombineWarps + warp;  // token * heads + head
  if (row >= rows) return;
  const int token = static_cast<int>(row / p.heads);
  const int q_first = token / query_rows * query_rows;
  const int key_tiles = static_cast<int>(ceil_div(query_tile_key_end(p, q_first, query_rows), key_rows));
  const int parts = split_parts(key_tiles, partials.splits);

  float m = -INFINITY;
  for (int s = 0; s < parts; ++s) m = fmaxf(m, partials.stats[s * rows + row].x);
  float acc[kPerLane] = {};
  float l = 0.0f;
  for (int s = 0; s < parts; ++s) {
    const float2 stat = partials.stats[s * rows + row];
    if (stat.x == -INFINITY) continue;  // every key of this part is in the row's future
    const float w = softmax_weight(stat.x, m);
    l = merge_add(l, stat.y, w);
    const float* partial = partials.out + (s * rows + row) * D + lane * kPerLane;
    if constexpr (kPerLane == 4) {
      const float4 v = *reinterpret_cast<const float4*>(partial);
      acc[0] = merge_add(acc[0], v.x, w);
      acc[1] = merge_add(acc[1], v.y, w);
      acc[2] = merge_add(acc[2], v.z, w);
      acc[3] = merge_add(acc[3], v.w, w);
    } else {
      const float2 v = *reinterpret_cast<const float2*>(partial);
      acc[0] = merge_add(acc[0], v.x, w);
      acc[1] = merge_add(acc[1], v.y, w);
    }
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const int64_t row_heads = p.row_heads ? p.row_heads : p.heads;
  // m and l are in base 2 (x = q.k * scale * log2 e): ln(sum e^(q.k * scale)) = (m + log2 l) ln 2.
  if (p.lse && lane == 0) p.lse[token * row_heads + row % p.heads] = (m + log2f(l)) * kLn2;
  uint16_t* out = p.out + (token * row_heads + row % p.heads) * D + lane * kPerLane;  // [token][head][D]
  if constexpr (kPerLane == 4) {
    *reinterpret_cast<uint2*>(out) =
        make_uint2(pack_bf16(acc[0] * inv, acc[1] * inv), pack_bf16(acc[2] * inv, acc[3] * inv));
  } else {
    *reinterpret_cast<uint32_t*>(out) = pack_bf16(acc[0] * inv, acc[1] * inv);
  }
}

template <int D, int Warps, bool LdmatrixK, bool Partial>
cudaError_t prepare_kernel() {
  static const cudaError_t prepared =
      cudaFuncSetAttribute(prefill_attention_kernel<D, Warps, LdmatrixK, Partial>,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, PrefillShape<D>::kSharedBytes);
  return prepared;
}

// Blocks of the split kernel resident on one SM at once (registers and shared memory allow).
template <int D, int Warps, bool LdmatrixK>
int resident_blocks() {
  static const int resident = [] {
    int blocks = 0;
    if (prepare_kernel<D, Warps, LdmatrixK, true>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, prefill_attention_kernel<D, Warps, LdmatrixK, true>,
                                                      Warps * 32, PrefillShape<D>::kSharedBytes) != cudaSuccess) {
      cudaGetLastError();
      blocks = 1;
    }
    return std::max(blocks, 1);
  }();
  return resident;
}

int resident_blocks_for(const PrefillAttentionLaunch& p) {
  const bool wide = p.warps == 8;
  if (p.head_dim == 64) return wide ? resident_blocks<64, 8, true>() : resident_blocks<64, 4, false>();
  return wide ? resident_blocks<128, 8, true>() : resident_blocks<128, 4, false>();
}

cudaError_t launch_combine(const PrefillAttentionLaunch& p, const SplitPartials& partials, int query_rows, int key_rows,
                           cudaStream_t stream) {
  const int64_t rows = int64_t(p.tokens) * p.heads;
  const unsigned blocks = static_cast<unsigned>(ceil_div(rows, kCombineWarps));
  if (p.head_dim == 128)
    prefill_combine_kernel<128><<<blocks, kCombineWarps * 32, 0, stream>>>(p, partials, query_rows, key_rows);
  else
    prefill_combine_kernel<64><<<blocks, kCombineWarps * 32, 0, stream>>>(p, partials, query_rows, key_rows);
  return cudaGetLastError();
}

template <int D, int Warps, bool LdmatrixK>
cudaError_t launch_for(const PrefillAttentionLaunch& p, int splits, cudaStream_t stream) {
  constexpr int kBytes = PrefillShape<D>::kSharedBytes;
  const unsigned query_tiles = static_cast<unsigned>(ceil_div(p.tokens, Warps * 16));
  if (splits == 1) {
    const cudaError_t prepared = prepare_kernel<D, Warps, LdmatrixK, false>();
    if (prepared != cudaSuccess) return prepared;
    prefill_attention_kernel<D, Warps, LdmatrixK, false>
        <<<dim3(query_tiles, p.heads), Warps * 32, kBytes, stream>>>(p, SplitPartials{});
    return cudaGetLastError();
  }
  const cudaError_t prepared = prepare_kernel<D, Warps, LdmatrixK, true>();
  if (prepared != cudaSuccess) return prepared;
  const int64_t rows = int64_t(p.tokens) * p.heads;
  SplitPartials partials;
  partials.out = static_cast<float*>(p.split_scratch);
  partials.stats = reinterpret_cast<float2*>(partials.out + splits * rows * D);
  partials.splits = splits;
  prefill_attention_kernel<D, Warps, LdmatrixK, true>
      <<<dim3(query_tiles, p.heads, splits), Warps * 32, kBytes, stream>>>(p, partials);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) return launched;
  return launch_combine(p, partials, Warps * 16, kKeyRows, stream);
}

// The Hopper kernel, then the combine over its parts.
cudaError_t launch_hopper(const PrefillAttentionLaunch& p, int splits, cudaStream_t stream) {
  SplitPartials partials;
  if (splits > 1) {
    partials.out = static_cast<float*>(p.split_scratch);
    partials.stats = reinterpret_cast<float2*>(partials.out + int64_t(splits) * p.tokens * p.heads * p.head_dim);
    partials.splits = splits;
  }
  const cudaError_t launched = launch_prefill_attention_hopper(p, splits, partials.out, partials.stats, stream);
  if (launched != cudaSuccess || splits == 1) return launched;
  return launch_combine(p, partials, kHopperQueryRows, kHopperKeyRows, stream);
}

// $TIDAL_PREFILL_KERNEL: mma or wgmma replaces Auto (A/B runs of whole prefills).
PrefillKernel kernel_from_environment() {
  static const PrefillKernel chosen = [] {
    const char* text = std::getenv("TIDAL_PREFILL_KERNEL");
    if (text && std::strcmp(text, "mma") == 0) return PrefillKernel::MmaSync;
    if (text && std::strcmp(text, "wgmma") == 0) return PrefillKernel::Wgmma;
    return PrefillKernel::Auto;
  }();
  return chosen;
}

// The tiles of the kernel a launch runs, and its blocks resident on one SM.
struct Geometry {
  int query_rows, key_rows, resident;
};
Geometry geometry_for(const PrefillAttentionLaunch& p) {
  if (prefill_attention_kernel(p) == PrefillKernel::Wgmma) return {kHopperQueryRows, kHopperKeyRows, 1};
  return {(p.warps == 8 ? 8 : 4) * 16, kKeyRows, resident_blocks_for(p)};
}

// $TIDAL_PREFILL_SPLITS: 1 keeps every chunk on the one-pass kernel, N > 1 forces N parts
// (A/B runs of whole prefills); unset or 0: the rule.
int splits_from_environment() {
  static const int forced = [] {
    const char* text = std::getenv("TIDAL_PREFILL_SPLITS");
    return text ? std::clamp(std::atoi(text), 0, kMaxSplits) : 0;
  }();
  return forced;
}

}  // namespace

static int prefill_attention_splits_rule(const PrefillAttentionLaunch& p);

PrefillKernel prefill_attention_kernel(const PrefillAttentionLaunch& p) {
  if (p.kernel != PrefillKernel::Auto) return p.kernel;
  if (const PrefillKernel forced = kernel_from_environment(); forced != PrefillKernel::Auto) return forced;
  return hopper_prefill_available() ? PrefillKernel::Wgmma : PrefillKernel::MmaSync;
}

int prefill_attention_splits(const PrefillAttentionLaunch& p) {
  // The row statistics come out of the combine, which a launch in one part does not run.
  if (p.lse) return std::max(2, prefill_attention_splits_rule(p));
  return prefill_attention_splits_rule(p);
}

static int prefill_attention_splits_rule(const PrefillAttentionLaunch& p) {
  if (p.splits > 0) return std::min(p.splits, kMaxSplits);
  if (const int forced = splits_from_environment(); forced > 0) return forced;
  if (p.tokens <= 0 || p.tokens >= kSplitMaxTokens) return 1;
  const Geometry geometry = geometry_for(p);
  const int64_t key_tiles = ceil_div(p.start + p.tokens, geometry.key_rows);  // of the last query tile, the longest
  const int64_t most = std::min<int64_t>(kMaxSplits, key_tiles / (kMinKeysPerSplit / geometry.key_rows));
  if (most < 2) return 1;
  const int64_t blocks = ceil_div(p.tokens, geometry.query_rows) * p.heads;
  const int64_t slots = int64_t(current_device_info().sm_count) * geometry.resident;
  if (blocks <= 0 || blocks >= 2 * slots) return 1;
  // Parts that make 2 to 4 waves of resident blocks; of those, the one whose last wave is
  // fullest (the fewest parts on a tie).
  const int64_t low = ceil_div(2 * slots, blocks), high = std::max(low, 4 * slots / blocks);
  int64_t best = low;
  double best_fill = 0.0;
  for (int64_t s = low; s <= high; ++s) {
    const double fill = double(s * blocks) / double(ceil_div(s * blocks, slots) * slots);
    if (fill > best_fill + 1e-9) {
      best = s;
      best_fill = fill;
    }
  }
  return static_cast<int>(std::clamp<int64_t>(std::min(best, most), 1, kMaxSplits));
}

size_t prefill_attention_scratch_bytes(const PrefillAttentionLaunch& p, int splits) {
  if (splits <= 1) return 0;
  return size_t(splits) * size_t(p.tokens) * size_t(p.heads) * size_t(p.head_dim + 2) * sizeof(float);
}

cudaError_t launch_prefill_attention(const PrefillAttentionLaunch& launch, cudaStream_t stream) {
  if (launch.tokens <= 0) return cudaSuccess;
  if (launch.kv_heads <= 0 || launch.heads % launch.kv_heads != 0) return cudaErrorInvalidValue;
  if (launch.row_heads != 0 && launch.row_heads < launch.heads) return cudaErrorInvalidValue;
  if (launch.head_dim != 64 && launch.head_dim != 128) return cudaErrorInvalidValue;
  int splits = prefill_attention_splits(launch);
  const bool room =
      launch.split_scratch && launch.split_scratch_bytes >= prefill_attention_scratch_bytes(launch, splits);
  if (splits > 1 && !room) {
    // Forced, or asked for the row statistics, without room for the partials.
    if (launch.splits > 1 || launch.lse) return cudaErrorInvalidValue;
    splits = 1;
  }
  if (prefill_attention_kernel(launch) == PrefillKernel::Wgmma) {
    const cudaError_t launched = launch_hopper(launch, splits, stream);
    // Auto falls back to the mma.sync kernel for a launch the tensor maps cannot take.
    if (launched != cudaErrorInvalidValue || launch.kernel == PrefillKernel::Wgmma) return launched;
  }
  // 4 warps with 32-bit K loads: the variant measured on the H200 (bench/NOTES.md); 8 warps
  // with ldmatrix K loads: the next candidate, built and tested, not yet measured.
  const bool wide = launch.warps == 8;
  if (launch.head_dim == 128)
    return wide ? launch_for<128, 8, true>(launch, splits, stream) : launch_for<128, 4, false>(launch, splits, stream);
  return wide ? launch_for<64, 8, true>(launch, splits, stream) : launch_for<64, 4, false>(launch, splits, stream);
}

}  // namespace tidal::cuda
