// Prefill attention on Hopper (sm_90a): the computation of kernels/prefill_attention.cu —
// causal, GQA, a chunk of queries against the KV cache, online softmax in base 2 — with the
// matrix products on wgmma, the tiles moved by the tensor memory accelerator (TMA), and the
// warps of a block split by role.
//
// A block takes 128 consecutive queries of one head and has three warpgroups (384 threads):
//   - the producer warpgroup: one thread issues every copy. Q (128 rows) once, then K and V
//     in tiles of 128 positions into a ring of `Stages` (3) shared-memory stages. Each stage has a
//     "full" barrier (the copy engine counts the bytes in) and an "empty" barrier (each
//     consumer warp arrives when it is done with the stage). The producer gives most of its
//     registers back (setmaxnreg) to the consumers.
//   - two consumer warpgroups of 64 query rows each. Per key tile: S = Q K^T (wgmma, both
//     operands in shared memory), causal mask and online softmax on the fp32 accumulators, P
//     rounded to bf16 straight from the S registers into the A operand of O += P V (wgmma with
//     A in registers, V in shared memory read transposed). Inside a warpgroup, tile n's
//     softmax runs while tile n - 1's O += P V is on the tensor cores; the two warpgroups also
//     overlap each other.
//
// Shared memory layout (every tile 1024-byte aligned): tiles are stored as column blocks of
// 64 bf16 (128 bytes a row) with the 128-byte swizzle that both TMA and wgmma understand: the
// 16-byte chunk c of row r sits at chunk c ^ (r % 8). A [rows][D] tile is D / 64 column
// blocks of [rows][64]. wgmma descriptors address them as
//   K-major (Q for S, K for S): 8-row groups 1024 bytes apart (the stride offset); a k-step of
//     16 columns is +32 bytes inside a column block, the next column block +rows * 128.
//   MN-major (V for O, N = head dim): 8-key groups 1024 bytes apart (stride offset), column
//     blocks of 64 head dims rows * 128 bytes apart (leading offset); a k-step of 16 keys is
//     +2048 bytes.
// K and V are read through 3-D tensor maps (head dim, position, KV head) whose position extent
// is the chunk's end: positions past it read as zero, never as stale cache rows. Q's 2-D map
// zero-fills rows past the chunk.
//
// The accumulator layout of wgmma m64nN (per warp w of the warpgroup, lane = 4 g + t): rows 16
// w + g and 16 w + g + 8; register 4 j + e holds column 8 j + 2 t + (e & 1) of row g (e < 2)
// or g + 8 (e >= 2) — the m16n8 layout repeated over N / 8 columns, so the P fragments come
// out of the S registers as in the mma.sync kernel.
//
// Split-KV launches (Partial) cut a query tile's key tiles into parts exactly as
// kernels/prefill_attention.cu does (with 128-key tiles) and write the same partial format.
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "common.cuh"
#include "device_info.h"
#include "prefill_attention_hopper.h"

namespace tidal::cuda {

namespace {

constexpr int kConsumerGroups = 2;
constexpr int kThreads = 128 * (1 + kConsumerGroups);
constexpr int kConsumerWarps = 4 * kConsumerGroups;
// Shared-memory stages of the K/V ring: 3 (224 KB at head dim 128). With 2, softmax of tile n
// overlapping the product of tile n - 1 measured slower (the next copy waits for that stage).
constexpr int kStages = 3;
constexpr int kBlockColumns = 64;           // bf16 columns of one swizzled column block
constexpr int kRowBytes = 128;              // one row of a column block
constexpr int kGroupBytes = 8 * kRowBytes;  // 8 rows: one swizzle atom
static_assert(kHopperQueryRows == kHopperKeyRows, "Q and K/V column blocks share one size");
constexpr int kColumnBlockBytes = kHopperKeyRows * kRowBytes;  // 16 KB

template <int D, int Stages>
struct HopperShape {
  static constexpr int kColumnBlocks = D / kBlockColumns;
  static constexpr int kTileBytes = kHopperKeyRows * D * 2;  // Q, K or V
  static constexpr int kStageBytes = 2 * kTileBytes;         // K then V
  static constexpr int kBarrierOffset = kTileBytes + Stages * kStageBytes;
  // + the slack that lets the kernel round its base up to 1024 bytes.
  static constexpr int kSharedBytes = kBarrierOffset + (2 * Stages + 1) * 8 + kGroupBytes;
};

struct HopperParams {
  int tokens = 0, heads = 0, kv_heads = 0;
  int row_heads = 0;  // heads in a row of out (PrefillAttentionLaunch::row_heads, resolved)
  int64_t start = 0;
  float scale_log2 = 0;
  uint16_t* out = nullptr;
  float* partial_out = nullptr;
  float2* partial_stats = nullptr;
  int splits = 1;
};

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// ---- mbarrier -------------------------------------------------------------
__device__ __forceinline__ void barrier_init(uint64_t* barrier, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(barrier)), "r"(arrivals));
}
// Makes the initialised barriers visible to the copy engine (the async proxy).
__device__ __forceinline__ void barrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\nfence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void barrier_expect_bytes(uint64_t* barrier, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(barrier)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void barrier_arrive(uint64_t* barrier) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(barrier)) : "memory");
}
// Waits until the barrier's phase with this parity has completed.
__device__ __forceinline__ void barrier_wait(uint64_t* barrier, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred ready;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 ready, [%0], %1;\n"
      "@!ready bra WAIT;\n"
      "}\n" ::"r"(shared_address(barrier)),
      "r"(parity)
      : "memory");
}

// ---- TMA ------------------------------------------------------------------
__device__ __forceinline__ void tma_load_2d(void* destination, const CUtensorMap* map, int x, int y,
                                            uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          shared_address(destination)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(shared_address(barrier))
      : "memory");
}
__device__ __forceinline__ void tma_load_3d(void* destination, const CUtensorMap* map, int x, int y, int z,
                                            uint64_t* barrier) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(shared_address(destination)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(z), "r"(shared_address(barrier))
      : "memory");
}

// ---- wgmma ----------------------------------------------------------------
// A shared-memory matrix descriptor with the 128-byte swizzle: start address, leading and
// stride byte offsets, all in 16-byte units; layout type 1 (bits 62-63) is the 128-byte swizzle.
__device__ __forceinline__ uint64_t make_descriptor(uint32_t address, uint32_t leading_bytes, uint32_t stride_bytes) {
  return uint64_t((address & 0x3ffff) >> 4) | uint64_t((leading_bytes >> 4) & 0x3fff) << 16 |
         uint64_t((stride_bytes >> 4) & 0x3fff) << 32 | uint64_t(1) << 62;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most `Pending` committed groups of products are still running.
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}
// Keeps the compiler from touching accumulators across the asynchronous products.
template <int N>
__device__ __forceinline__ void hold_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

template <uint32_t Registers>
__device__ __forceinline__ void registers_release() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
}
template <uint32_t Registers>
__device__ __forceinline__ void registers_claim() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

// Named barriers 1 and 2 (0 is __syncthreads) order the two consumer warpgroups' product
// issues: 256 threads take part, one warpgroup waiting (sync) and the other arriving.
__device__ __forceinline__ void named_barrier_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void named_barrier_arrive(int id) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory");
}

// 2^x on the special-function unit, subnormal results flushed to zero (they are below the
// bf16 rounding of P anyway).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// D (64 x 128, fp32) = (scale_d ? D : 0) + A (64 x 16) * B (16 x 128); A and B in shared
// memory, both K-major (128-byte swizzle, see make_descriptor).
__device__ __forceinline__ void wgmma_m64n128_ss(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred keep;\nsetp.ne.b32 keep, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, keep, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(scale_d));
}

// D (64 x 128, fp32) += A (64 x 16) * B (16 x 128); A in registers (bf16 pairs in the
// m16n8k16 layout per warp), B in shared memory MN-major (the transpose flag).
__device__ __forceinline__ void wgmma_m64n128_rs_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

// D (64 x 64, fp32) += A (64 x 16) * B (16 x 64); A in registers (bf16 pairs in the
// m16n8k16 layout per warp), B in shared memory MN-major (the transpose flag).
__device__ __forceinline__ void wgmma_m64n64_rs_tb(float (&d)[32], const uint32_t (&a)[4], uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

template <int D>
__device__ __forceinline__ void product_pv(float (&o)[D / 2], const uint32_t (&a)[4], uint64_t b) {
  if constexpr (D == 128) {
    wgmma_m64n128_rs_tb(o, a, b);
  } else {
    wgmma_m64n64_rs_tb(o, a, b);
  }
}

template <int D, int Stages, bool Partial, bool PingPong>
__global__ void __launch_bounds__(kThreads, 1)
    hopper_prefill_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                          const __grid_constant__ CUtensorMap v_map, HopperParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Shape = HopperShape<D, Stages>;
  extern __shared__ uint8_t raw_shared[];
  uint8_t* shared = raw_shared + ((kGroupBytes - shared_address(raw_shared) % kGroupBytes) % kGroupBytes);
  uint8_t* q_tile = shared;
  uint8_t* stages = shared + Shape::kTileBytes;  // stage s: K at s * kStageBytes, V right after
  uint64_t* full = reinterpret_cast<uint64_t*>(shared + Shape::kBarrierOffset);
  uint64_t* empty = full + Stages;
  uint64_t* q_full = empty + Stages;

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int group = warp / 4;                          // 0: producer, 1 and 2: consumers
  const int query_block = gridDim.x - 1 - blockIdx.x;  // the longest blocks first
  const int head = blockIdx.y;
  const int kv_head = head / (p.heads / p.kv_heads);
  const int q_first = query_block * kHopperQueryRows;  // token index within the chunk
  const int64_t total = p.start + p.tokens;
  const int64_t kv_end = min(total, p.start + q_first + kHopperQueryRows);
  const int key_tiles = static_cast<int>(ceil_div(kv_end, kHopperKeyRows));
  int tile_begin = 0, tile_end = key_tiles;
  if constexpr (Partial) {
    const TileRange range = split_tiles(key_tiles, p.splits, blockIdx.z);
    if (range.begin >= range.end) return;  // an empty part: the combine does not read it
    tile_begin = range.begin;
    tile_end = range.end;
  }
  const int tiles = tile_end - tile_begin;

  if (threadIdx.x == 0) {
    for (int s = 0; s < Stages; ++s) {
      barrier_init(&full[s], 1);
      barrier_init(&empty[s], kConsumerWarps);
    }
    barrier_init(q_full, 1);
    barrier_init_fence();
  }
  __syncthreads();

  if (group == 0) {
    registers_release<40>();
    if (warp == 0 && lane == 0) {
      barrier_expect_bytes(q_full, Shape::kTileBytes);
      for (int c = 0; c < Shape::kColumnBlocks; ++c)
        tma_load_2d(q_tile + c * kColumnBlockBytes, &q_map, head * D + c * kBlockColumns, q_first, q_full);
      for (int n = 0; n < tiles; ++n) {
        const int stage = n % Stages, round = n / Stages;
        if (round > 0) barrier_wait(&empty[stage], (round - 1) & 1);
        uint8_t* k_tile = stages + stage * Shape::kStageBytes;
        uint8_t* v_tile = k_tile + Shape::kTileBytes;
        const int position = (tile_begin + n) * kHopperKeyRows;
        barrier_expect_bytes(&full[stage], Shape::kStageBytes);
        for (int c = 0; c < Shape::kColumnBlocks; ++c) {
          tma_load_3d(k_tile + c * kColumnBlockBytes, &k_map, c * kBlockColumns, position, kv_head, &full[stage]);
          tma_load_3d(v_tile + c * kColumnBlockBytes, &v_map, c * kBlockColumns, position, kv_head, &full[stage]);
        }
      }
    }
    return;
  }
  registers_claim<232>();

  const int consumer = group - 1;  // which 64 rows of the block
  const int warp_in_group = warp % 4;
  const int g = lane / 4, t = lane % 4;
  const int warp_row = q_first + consumer * 64 + warp_in_group * 16;  // chunk token of the warp's first row
  const int row0 = warp_row + g, row1 = row0 + 8;
  const int64_t pos0 = p.start + row0, pos1 = pos0 + 8;
  const int64_t warp_first_position = p.start + warp_row;
  const uint32_t q_address = shared_address(q_tile) + consumer * 64 * kRowBytes;

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float s[kHopperKeyRows / 2];
#pragma unroll
  for (int i = 0; i < kHopperKeyRows / 2; ++i) s[i] = 0.0f;
  uint32_t pa[kHopperKeyRows / 16][4];  // P of the previous tile, the A operand of O += P V
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  const auto k_address = [&](int n) { return shared_address(stages) + (n % Stages) * Shape::kStageBytes; };
  // S = Q K^T of tile n, issued (not waited for).
  const auto issue_scores = [&](int n) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t column = (kk / 4) * kColumnBlockBytes + (kk % 4) * 32;
      wgmma_m64n128_ss(s, make_descriptor(q_address + column, 16, kGroupBytes),
                       make_descriptor(k_address(n) + column, 16, kGroupBytes), kk > 0);
    }
  };
  // O += P V of tile n, issued.
  const auto issue_values = [&](int n) {
    const uint32_t v_address = k_address(n) + Shape::kTileBytes;
#pragma unroll
    for (int i = 0; i < kHopperKeyRows / 16; ++i)
      product_pv<D>(o, pa[i], make_descriptor(v_address + i * 2 * kGroupBytes, kColumnBlockBytes, kGroupBytes));
  };
  // The causal mask of tile n (only tiles that reach past the warp's first row) and new running
  // maxima, both on the raw scores Q K^T; then s = 2^(x * scale_log2 - m * scale_log2), one FFMA
  // and one ex2 per score. Gives the rescale of the old rows. m0 and m1 stay in raw units.
  const float scale = p.scale_log2;
  const auto softmax = [&](int n, float* alpha0, float* alpha1) {
    const int64_t first = int64_t(tile_begin + n) * kHopperKeyRows;
    const bool needs_mask = first + kHopperKeyRows - 1 > warp_first_position;
    if (needs_mask) {
#pragma unroll
      for (int j = 0; j < kHopperKeyRows / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t key = first + j * 8 + 2 * t + (e & 1);
          if (key > (e < 2 ? pos0 : pos1)) s[4 * j + e] = -INFINITY;
        }
      }
    }
    float tile_max0 = -INFINITY, tile_max1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < kHopperKeyRows / 8; ++j) {
      tile_max0 = fmaxf(tile_max0, fmaxf(s[4 * j], s[4 * j + 1]));
      tile_max1 = fmaxf(tile_max1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    tile_max0 = quad_max(tile_max0);
    tile_max1 = quad_max(tile_max1);
    const float new0 = fmaxf(m0, tile_max0), new1 = fmaxf(m1, tile_max1);
    const float base0 = new0 == -INFINITY ? 0.0f : new0 * scale, base1 = new1 == -INFINITY ? 0.0f : new1 * scale;
    *alpha0 = fast_exp2(fmaf(m0, scale, -base0));
    *alpha1 = fast_exp2(fmaf(m1, scale, -base1));
    m0 = new0;
    m1 = new1;
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int j = 0; j < kHopperKeyRows / 8; ++j) {
      s[4 * j] = fast_exp2(fmaf(s[4 * j], scale, -base0));
      s[4 * j + 1] = fast_exp2(fmaf(s[4 * j + 1], scale, -base0));
      s[4 * j + 2] = fast_exp2(fmaf(s[4 * j + 2], scale, -base1));
      s[4 * j + 3] = fast_exp2(fmaf(s[4 * j + 3], scale, -base1));
      sum0 += s[4 * j] + s[4 * j + 1];
      sum1 += s[4 * j + 2] + s[4 * j + 3];
    }
    l0 = l0 * *alpha0 + sum0;
    l1 = l1 * *alpha1 + sum1;
  };
  // Rescales O (no product in flight) and rounds P into the A fragments.
  const auto rescale_and_pack = [&](float alpha0, float alpha1) {
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      o[4 * d] *= alpha0;
      o[4 * d + 1] *= alpha0;
      o[4 * d + 2] *= alpha1;
      o[4 * d + 3] *= alpha1;
    }
#pragma unroll
    for (int j = 0; j < kHopperKeyRows / 8; ++j) {
      pa[j / 2][(j & 1) * 2 + 0] = pack_bf16(s[4 * j], s[4 * j + 1]);
      pa[j / 2][(j & 1) * 2 + 1] = pack_bf16(s[4 * j + 2], s[4 * j + 3]);
    }
  };
  const auto release = [&](int n) {
    __syncwarp();
    if (lane == 0) barrier_arrive(&empty[n % Stages]);
  };

  // Ping-pong: the two consumer warpgroups take turns to issue their products (named barrier
  // 1 + c is consumer c's turn), so one's products run on the tensor cores while the other
  // does its softmax. Both issue tiles + 1 times; consumer 1 opens the first turn of consumer
  // 0 and does not hand over after its last issue, so every barrier phase completes.
  const auto take_turn = [&] {
    if constexpr (PingPong) named_barrier_sync(1 + consumer);
  };
  const auto hand_over = [&](bool last) {
    if constexpr (PingPong) {
      if (!(last && consumer == 1)) named_barrier_arrive(2 - consumer);
    }
  };
  if constexpr (PingPong) {
    if (consumer == 1) named_barrier_arrive(1);
  }

  // Tile n's scores and softmax overlap tile n - 1's O += P V: per tile, issue S_n and PV_{n-1},
  // wait for S_n only, do its softmax while PV_{n-1} runs, then wait for PV_{n-1}, release its
  // stage, rescale O and pack P_n.
  barrier_wait(q_full, 0);
  barrier_wait(&full[0], 0);
  take_turn();
  wgmma_fence();
  issue_scores(0);
  wgmma_commit();
  hand_over(false);
  wgmma_wait<0>();
  hold_registers(s);
  {
    float alpha0, alpha1;
    softmax(0, &alpha0, &alpha1);
    rescale_and_pack(alpha0, alpha1);
  }
  for (int n = 1; n < tiles; ++n) {
    barrier_wait(&full[n % Stages], (n / Stages) & 1);
    take_turn();
    wgmma_fence();
    issue_scores(n);
    wgmma_commit();
    issue_values(n - 1);
    wgmma_commit();
    hand_over(false);
    wgmma_wait<1>();
    hold_registers(s);
    float alpha0, alpha1;
    softmax(n, &alpha0, &alpha1);
    wgmma_wait<0>();
    hold_registers(o);
    release(n - 1);
    rescale_and_pack(alpha0, alpha1);
  }
  take_turn();
  wgmma_fence();
  issue_values(tiles - 1);
  wgmma_commit();
  hand_over(true);
  wgmma_wait<0>();
  hold_registers(o);
  release(tiles - 1);

  l0 = quad_sum(l0);
  l1 = quad_sum(l1);
  if constexpr (Partial) {
    const int64_t out_stride = int64_t(p.heads) * D;  // the partials hold this launch's heads
    const int64_t split_rows = int64_t(blockIdx.z) * p.tokens;
    float* out = p.partial_out + split_rows * out_stride + int64_t(head) * D + 2 * t;
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      if (row0 < p.tokens)
        *reinterpret_cast<float2*>(out + int64_t(row0) * out_stride + d * 8) = make_float2(o[4 * d], o[4 * d + 1]);
      if (row1 < p.tokens)
        *reinterpret_cast<float2*>(out + int64_t(row1) * out_stride + d * 8) = make_float2(o[4 * d + 2], o[4 * d + 3]);
    }
    if (t == 0) {
      float2* stats = p.partial_stats + split_rows * p.heads + head;
      if (row0 < p.tokens) stats[int64_t(row0) * p.heads] = make_float2(m0 * scale, l0);
      if (row1 < p.tokens) stats[int64_t(row1) * p.heads] = make_float2(m1 * scale, l1);
    }
  } else {
    const int64_t out_stride = int64_t(p.row_heads) * D;
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    __nv_bfloat16* out = reinterpret_cast<__nv_bfloat16*>(p.out) + int64_t(head) * D + 2 * t;
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      if (row0 < p.tokens)
        *reinterpret_cast<__nv_bfloat162*>(out + int64_t(row0) * out_stride + d * 8) =
            __floats2bfloat162_rn(o[4 * d] * inv0, o[4 * d + 1] * inv0);
      if (row1 < p.tokens)
        *reinterpret_cast<__nv_bfloat162*>(out + int64_t(row1) * out_stride + d * 8) =
            __floats2bfloat162_rn(o[4 * d + 2] * inv1, o[4 * d + 3] * inv1);
    }
  }
#endif
}

// ---- host -----------------------------------------------------------------
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
  }();
  return encoder;
}

// bf16 tensor map with the 128-byte swizzle over `rank` dims (dims[0] contiguous); strides in
// bytes for dims 1 .. rank - 1.
bool encode_map(CUtensorMap* map, const void* base, int rank, const cuuint64_t* dims, const cuuint64_t* strides,
                const cuuint32_t* box) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (!encode) return false;
  const cuuint32_t element_strides[3] = {1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, static_cast<cuuint32_t>(rank), const_cast<void*>(base), dims,
                strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int D, int Stages, bool Partial, bool PingPong>
cudaError_t prepare() {
  static const cudaError_t prepared =
      cudaFuncSetAttribute(hopper_prefill_kernel<D, Stages, Partial, PingPong>,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, HopperShape<D, Stages>::kSharedBytes);
  return prepared;
}

template <int D, int Stages, bool PingPong>
cudaError_t launch_shape(const CUtensorMap& q_map, const CUtensorMap& k_map, const CUtensorMap& v_map,
                         const HopperParams& params, unsigned query_tiles, cudaStream_t stream) {
  constexpr int kBytes = HopperShape<D, Stages>::kSharedBytes;
  if (params.splits == 1) {
    if (const cudaError_t prepared = prepare<D, Stages, false, PingPong>(); prepared != cudaSuccess) return prepared;
    hopper_prefill_kernel<D, Stages, false, PingPong>
        <<<dim3(query_tiles, params.heads), kThreads, kBytes, stream>>>(q_map, k_map, v_map, params);
  } else {
    if (const cudaError_t prepared = prepare<D, Stages, true, PingPong>(); prepared != cudaSuccess) return prepared;
    hopper_prefill_kernel<D, Stages, true, PingPong>
        <<<dim3(query_tiles, params.heads, params.splits), kThreads, kBytes, stream>>>(q_map, k_map, v_map, params);
  }
  return cudaGetLastError();
}

}  // namespace

bool hopper_prefill_available() {
  static std::once_flag once;
  static bool available = false;
  std::call_once(once, [] {
    int device = 0;
    cudaFuncAttributes attributes{};
    available = cudaGetDevice(&device) == cudaSuccess && current_device_info().compute_capability == 90 &&
                tensor_map_encoder() != nullptr &&
                cudaFuncGetAttributes(&attributes, hopper_prefill_kernel<128, kStages, false, true>) == cudaSuccess &&
                attributes.binaryVersion == 90;
    cudaGetLastError();
  });
  return available;
}

cudaError_t launch_prefill_attention_hopper(const PrefillAttentionLaunch& launch, int splits, float* partial_out,
                                            float2* partial_stats, cudaStream_t stream) {
  if (!hopper_prefill_available()) return cudaErrorNotSupported;
  const int d = launch.head_dim;
  if ((d != 64 && d != 128) || launch.kv_heads <= 0 || launch.heads % launch.kv_heads != 0 || launch.tokens <= 0)
    return cudaErrorInvalidValue;
  if (splits > 1 && (!partial_out || !partial_stats)) return cudaErrorInvalidValue;
  const int64_t total = launch.start + launch.tokens;
  // Tensor-map limits: 16-byte aligned bases and strides, dims below 2^32.
  const auto aligned = [](const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; };
  if (!aligned(launch.q) || !aligned(launch.keys) || !aligned(launch.values) || (launch.head_stride * 2) % 16 != 0 ||
      launch.head_stride < total * d || total >= (int64_t(1) << 31))
    return cudaErrorInvalidValue;

  CUtensorMap q_map, k_map, v_map;
  const cuuint64_t q_dims[2] = {cuuint64_t(launch.heads) * d, cuuint64_t(launch.tokens)};
  const int row_heads = launch.row_heads ? launch.row_heads : launch.heads;
  const cuuint64_t q_strides[1] = {cuuint64_t(row_heads) * d * 2};
  const cuuint32_t q_box[2] = {kBlockColumns, kHopperQueryRows};
  const cuuint64_t kv_dims[3] = {cuuint64_t(d), cuuint64_t(total), cuuint64_t(launch.kv_heads)};
  const cuuint64_t kv_strides[2] = {cuuint64_t(d) * 2, cuuint64_t(launch.head_stride) * 2};
  const cuuint32_t kv_box[3] = {kBlockColumns, kHopperKeyRows, 1};
  if (!encode_map(&q_map, launch.q, 2, q_dims, q_strides, q_box) ||
      !encode_map(&k_map, launch.keys, 3, kv_dims, kv_strides, kv_box) ||
      !encode_map(&v_map, launch.values, 3, kv_dims, kv_strides, kv_box))
    return cudaErrorInvalidValue;

  HopperParams params;
  params.tokens = launch.tokens;
  params.heads = launch.heads;
  params.kv_heads = launch.kv_heads;
  params.row_heads = row_heads;
  params.start = launch.start;
  params.scale_log2 = launch.scale * kLog2e;
  params.out = launch.out;
  params.partial_out = partial_out;
  params.partial_stats = partial_stats;
  params.splits = std::max(splits, 1);
  const unsigned query_tiles = static_cast<unsigned>(ceil_div(launch.tokens, kHopperQueryRows));
  // The two consumer warpgroups take turns on the tensor cores unless $TIDAL_PREFILL_PINGPONG=0
  // (A/B runs).
  static const bool ping_pong = [] {
    const char* text = std::getenv("TIDAL_PREFILL_PINGPONG");
    return !(text && std::atoi(text) == 0);
  }();
  if (d == 128)
    return ping_pong ? launch_shape<128, kStages, true>(q_map, k_map, v_map, params, query_tiles, stream)
                     : launch_shape<128, kStages, false>(q_map, k_map, v_map, params, query_tiles, stream);
  return ping_pong ? launch_shape<64, kStages, true>(q_map, k_map, v_map, params, query_tiles, stream)
                   : launch_shape<64, kStages, false>(q_map, k_map, v_map, params, query_tiles, stream);
}

}  // namespace tidal::cuda
