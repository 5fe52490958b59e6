// Matrix-vector product of a decode step over block-quantised weights (Q8_0, Q4_K, Q6_K):
// y[r] = beta * y[r] + sum_c W[r][c] x[c], x bf16, fp32 accumulation, W dequantised in
// registers. Like kernels/gemv.cu it is bound by the bytes of W, now 0.56 (Q4_K) to 1.06
// (Q8_0) bytes a value, so the instructions spent per value matter as much as the loads.
//
// Loads. Each warp owns kRowsPerWarp rows and walks them in chunks of 1024 values. A chunk of
// a row is a whole number of blocks (4 K-blocks or 32 Q8_0 blocks), which the warp copies into
// its own shared-memory stage with coalesced 16-byte cp.async loads (the aligned vectors that
// cover the chunk's bytes; a Q6_K row need not start on 16 bytes, so the chunk's first byte
// lies `head` bytes into the stage). kStages stages per warp keep the next chunks in flight
// while the current one is decoded; only __syncwarp orders them, warps never wait for each
// other.
//
// Decoding. Lane l decodes piece l of the chunk, 32 values of one block (kernels/
// quant_blocks.cuh says which), for each of the warp's rows; the 32 x values of the piece are
// read once (16-byte loads through the read-only cache) and serve all rows. A row's sum is a
// warp reduction at the end.
//
// Quants to float without integer conversions: a quant byte b < 128 moved by a byte permute
// into bits 16-23 of 0x3F000000 is the float 0.5 + b / 256 (exponent 2^-1, b the top 7
// mantissa bits). With X = sum x over a run, sum (0.5 + b / 256) x = X / 2 + sum b x / 256, so
// sum b x = 256 * S - 128 * X, where S is the fma sum of the permuted floats. One permute and
// one fma per value per row; X is needed anyway for Q4_K's min and Q6_K's -32, and is shared
// by the rows. b = 8q for a Q4_K nibble (b <= 120) and 2q for a Q6_K quant (b <= 126), so
// the quant's own bits fill the top of the mantissa and the cancellation costs only a few bits
// of a float's 24. Q8_0's signed quants use the exact 2^23 form instead: 0x4B0000uu is 2^23 +
// uu, with uu = q + 128 (sign bit flipped), and one subtraction gives q.
#include "gemv_quant.h"

#include "common.cuh"
#include "quant_blocks.cuh"

namespace tidal::cuda {

namespace {

constexpr int kPieceValues = 32;
constexpr int kChunkValues = kWarpSize * kPieceValues;

// 16-byte cp.async (global -> shared, L2 only) reading only the first `source_bytes` bytes
// (0..16) of the source and zero-filling the rest: the last vector of a matrix whose size is
// not a multiple of 16 reads nothing past its end.
__device__ __forceinline__ void copy_async_16_bytes(void* shared, const void* global, int source_bytes) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global), "r"(source_bytes)
               : "memory");
}

// Byte `byte` of `word` (b < 128) as the float 0.5 + b / 256.
__device__ __forceinline__ float half_plus_byte(uint32_t word, int byte) {
  return __uint_as_float(__byte_perm(word, 0x3F00u, 0x5044u | (byte << 8)));
}

// Byte `byte` of `word` (uu) as the float 2^23 + uu.
__device__ __forceinline__ float two23_plus_byte(uint32_t word, int byte) {
  return __uint_as_float(__byte_perm(word, 0x4B00u, 0x5440u | byte));
}

// xs[Offset, Offset + 8) = 8 bf16 of x (16-byte aligned) as floats; their sum added to `sum`.
template <int Offset>
__device__ __forceinline__ void load_x8(const uint16_t* x, float (&xs)[32], float& sum) {
  float values[8];
  unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(x)), values);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    xs[Offset + i] = values[i];
    sum += values[i];
  }
}

// Per format: load_x reads the 32 x values of piece `piece` of the block whose first value
// is x_block[0], in the order dot consumes them, and their run sums; dot returns the piece's
// contribution sum_i W_i x_i for one row, from the block's bytes in shared memory.
struct Q8_0Gemv : QuantBlock<QuantFormat::Q8_0> {
  static constexpr int kRuns = 1;
  __device__ static void load_x(const uint16_t* x_block, int, float (&xs)[32], float (&sums)[kRuns]) {
    sums[0] = 0.0f;
    load_x8<0>(x_block, xs, sums[0]);
    load_x8<8>(x_block + 8, xs, sums[0]);
    load_x8<16>(x_block + 16, xs, sums[0]);
    load_x8<24>(x_block + 24, xs, sums[0]);
  }
  __device__ static float dot(const uint8_t* block, int, const float (&xs)[32], const float (&)[kRuns]) {
    const float d = f16_bits_to_float(load_u16(block));
    float sum = 0.0f;
#pragma unroll
    for (int t = 0; t < 8; ++t) {
      const uint32_t word = load_u32_even(block + 2 + 4 * t) ^ 0x80808080u;
#pragma unroll
      for (int b = 0; b < 4; ++b) sum = fmaf(two23_plus_byte(word, b) - 8388736.0f, xs[4 * t + b], sum);
    }
    return d * sum;
  }
};

struct Q4_KGemv : QuantBlock<QuantFormat::Q4_K> {
  static constexpr int kRuns = 2;
  __device__ static void load_x(const uint16_t* x_block, int piece, float (&xs)[32], float (&sums)[kRuns]) {
    sums[0] = sums[1] = 0.0f;
    load_x8<0>(x_block + q4k_run_start(piece, 0), xs, sums[0]);
    load_x8<8>(x_block + q4k_run_start(piece, 0) + 8, xs, sums[0]);
    load_x8<16>(x_block + q4k_run_start(piece, 1), xs, sums[1]);
    load_x8<24>(x_block + q4k_run_start(piece, 1) + 8, xs, sums[1]);
  }
  // Block 16-byte aligned (Q4_K blocks always are in a staged chunk: see the kernel).
  __device__ static float dot(const uint8_t* block, int piece, const float (&xs)[32], const float (&sums)[kRuns]) {
    const uint4 header = *reinterpret_cast<const uint4*>(block);  // d, dmin | packed scales
    const float d = f16_bits_to_float(header.x & 0xFFFF);
    const float dmin = f16_bits_to_float(header.x >> 16);
    int scale[2], min[2];
    q4k_scale_min(header.y, header.z, header.w, 2 * (piece / 2), scale[0], min[0]);
    q4k_scale_min(header.y, header.z, header.w, 2 * (piece / 2) + 1, scale[1], min[1]);
    const uint4 quants = *reinterpret_cast<const uint4*>(block + q4k_quant_offset(piece));
    const uint32_t words[4] = {quants.x, quants.y, quants.z, quants.w};
    float s[2] = {0.0f, 0.0f};
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const uint32_t low = (words[t] << 3) & 0x78787878u;   // 8 * low nibble in each byte
      const uint32_t high = (words[t] >> 1) & 0x78787878u;  // 8 * high nibble in each byte
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        s[0] = fmaf(half_plus_byte(low, b), xs[4 * t + b], s[0]);
        s[1] = fmaf(half_plus_byte(high, b), xs[16 + 4 * t + b], s[1]);
      }
    }
    float total = 0.0f;
#pragma unroll
    for (int run = 0; run < 2; ++run) {
      // sum 8q x = 256 S - 128 X, so sum q x = 32 S - 16 X.
      const float quant_dot = 32.0f * s[run] - 16.0f * sums[run];
      total += d * float(scale[run]) * quant_dot - dmin * float(min[run]) * sums[run];
    }
    return total;
  }
};

struct Q6_KGemv : QuantBlock<QuantFormat::Q6_K> {
  static constexpr int kRuns = 4;
  __device__ static void load_x(const uint16_t* x_block, int piece, float (&xs)[32], float (&sums)[kRuns]) {
    sums[0] = sums[1] = sums[2] = sums[3] = 0.0f;
    load_x8<0>(x_block + q6k_run_start(piece, 0), xs, sums[0]);
    load_x8<8>(x_block + q6k_run_start(piece, 1), xs, sums[1]);
    load_x8<16>(x_block + q6k_run_start(piece, 2), xs, sums[2]);
    load_x8<24>(x_block + q6k_run_start(piece, 3), xs, sums[3]);
  }
  // Block 2-byte aligned.
  __device__ static float dot(const uint8_t* block, int piece, const float (&xs)[32], const float (&sums)[kRuns]) {
    const int half = piece / 4, first = 8 * (piece % 4);
    const uint8_t* low = block + 64 * half + first;  // k = 0, 2; low + 32: k = 1, 3
    const uint8_t* high = block + 128 + 32 * half + first;
    const float d = f16_bits_to_float(load_u16(block + 208));
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      const uint32_t a = load_u32_even(low + 4 * t), b = load_u32_even(low + 32 + 4 * t);
      const uint32_t h = load_u32_even(high + 4 * t);
      // 2q in each byte: the nibble in bits 1-4, the two high bits in bits 5-6.
      const uint32_t q[4] = {
          ((a << 1) & 0x1E1E1E1Eu) | ((h << 5) & 0x60606060u), ((b << 1) & 0x1E1E1E1Eu) | ((h << 3) & 0x60606060u),
          ((a >> 3) & 0x1E1E1E1Eu) | ((h << 1) & 0x60606060u), ((b >> 3) & 0x1E1E1E1Eu) | ((h >> 1) & 0x60606060u)};
#pragma unroll
      for (int k = 0; k < 4; ++k)
#pragma unroll
        for (int i = 0; i < 4; ++i) s[k] = fmaf(half_plus_byte(q[k], i), xs[8 * k + 4 * t + i], s[k]);
    }
    float total = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      // sum 2q x = 256 S - 128 X, so sum (q - 32) x = 128 S - 64 X - 32 X.
      const float scale = float(static_cast<int8_t>(block[192 + q6k_scale_index(piece, k)]));
      total += scale * (128.0f * s[k] - 96.0f * sums[k]);
    }
    return d * total;
  }
};

// kWarps warps a block, kRowsPerWarp rows a warp, kStages chunks per warp in shared memory
// (the configurations a launch may pick: GemvQuantConfig).
// inner > 0: W is a gate|up matrix [2 * inner][cols] and the product ends in SwiGLU: a warp's
// first kRowsPerWarp / 2 rows are gate rows j.., the others the up rows inner + j.., and it
// writes bf16 silu(gate) * up to out[j..] (y_out, uint16_t) instead of fp32 sums (beta unused).
template <class Format, int kWarps, int kRowsPerWarp, int kStages>
__global__ void __launch_bounds__(kWarps* kWarpSize)
    gemv_quant_kernel(const uint8_t* w, int64_t rows, int cols, const uint16_t* x, void* y_out, float beta,
                      int64_t inner) {
  constexpr int kChunkBytes = kChunkValues / Format::kValues * Format::kBytes;
  // The chunk plus up to 15 bytes of head, in whole vectors.
  constexpr int kStageBytes = (kChunkBytes + 15 + 15) / 16 * 16;
  constexpr int kVectorsPerLane = (kStageBytes / 16 + kWarpSize - 1) / kWarpSize;
  __shared__ __align__(16) uint8_t stage[kWarps][kStages][kRowsPerWarp][kStageBytes];
  static_assert(sizeof(stage) <= 48 * 1024, "static shared memory above 48 KB");

  let_next_kernel_start();
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  constexpr int kPairs = kRowsPerWarp / 2;
  // The warp's first row, or with SwiGLU its first output.
  const int64_t first = (int64_t(blockIdx.x) * kWarps + warp) * (inner > 0 ? kPairs : kRowsPerWarp);
  if (first >= (inner > 0 ? inner : rows)) {
    wait_for_previous_kernels();
    return;
  }
  const int64_t row_bytes = int64_t(cols / Format::kValues) * Format::kBytes;
  const int64_t matrix_bytes = rows * row_bytes;
  int64_t row_begin[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    int64_t row = first + r < rows ? first + r : rows - 1;
    if constexpr (kPairs > 0) {
      if (inner > 0) row = (r < kPairs ? 0 : inner) + min(first + r % kPairs, inner - 1);
    }
    row_begin[r] = row * row_bytes;
  }
  const int chunks = int(ceil_div(cols, kChunkValues));

  // Copies chunk `chunk` of the warp's rows into stage chunk % kStages; one commit group per
  // call, empty past the last chunk, so that the wait below counts groups uniformly.
  auto issue = [&](int chunk) {
    if (chunk < chunks) {
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        uint8_t* target = stage[warp][chunk % kStages][r];
        const int64_t begin = row_begin[r] + int64_t(chunk) * kChunkBytes;
        const int64_t end = min(begin + kChunkBytes, row_begin[r] + row_bytes);
        const int64_t aligned = begin & ~int64_t(15);
        const uint8_t* source = w + aligned;
        const int span = int(end - aligned);  // bytes to copy from `aligned`, at most kStageBytes
        const int readable = int(min(int64_t(kStageBytes), matrix_bytes - aligned));  // >= span
#pragma unroll
        for (int i = 0; i < kVectorsPerLane; ++i) {
          const int v = lane + i * kWarpSize;
          if (16 * v < span) copy_async_16_bytes(target + 16 * v, source + 16 * v, min(16, readable - 16 * v));
        }
      }
    }
    copy_async_commit();
  };

  float acc[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) acc[r] = 0.0f;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s);
  // Launched early, the first chunks of W are in flight before the wait for the kernel that
  // writes x (and y).
  wait_for_previous_kernels();

  const int block = lane / Format::kPieces, piece = lane % Format::kPieces;
  for (int chunk = 0; chunk < chunks; ++chunk) {
    issue(chunk + kStages - 1);
    // Lane l's piece exists when the chunk (whole blocks) holds 32 * (l + 1) values.
    const bool active = kPieceValues * lane < cols - chunk * kChunkValues;
    float xs[32], sums[Format::kRuns];
    if (active) Format::load_x(x + int64_t(chunk) * kChunkValues + block * Format::kValues, piece, xs, sums);
    copy_async_wait<kStages - 1>();
    __syncwarp();
    if (active) {
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        // A Q4_K chunk starts on 16 bytes (rows and chunks are multiples of 144 bytes), so its
        // blocks are 16-byte aligned in the stage, as Q4_KGemv::dot needs.
        const int head = int((row_begin[r] + int64_t(chunk) * kChunkBytes) & 15);
        acc[r] += Format::dot(stage[warp][chunk % kStages][r] + head + block * Format::kBytes, piece, xs, sums);
      }
    }
    __syncwarp();  // the stage is refilled by the next iteration's issue
  }

  float sums[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) sums[r] = warp_sum(acc[r]);
  if (lane != 0) return;
  if (inner > 0) {
    if constexpr (kPairs > 0) {
#pragma unroll
      for (int r = 0; r < kPairs; ++r)
        if (first + r < inner)
          reinterpret_cast<__nv_bfloat16*>(y_out)[first + r] =
              __float2bfloat16_rn(silu_times(sums[r], sums[r + kPairs]));
    }
    return;
  }
  float* y = static_cast<float*>(y_out);
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r)
    if (first + r < rows) y[first + r] = beta == 0.0f ? sums[r] : beta * y[first + r] + sums[r];
}

// inner > 0: SwiGLU over a gate|up matrix of rows = 2 * inner (gemv_quant_kernel); y is then
// the bf16 output. Configurations of an odd row count per warp cannot pair rows.
template <class Format, int kWarps, int kRowsPerWarp, int kStages>
cudaError_t launch(const void* w, int64_t rows, int cols, const uint16_t* x, void* y, float beta, cudaStream_t stream,
                   bool early, int64_t inner) {
  if (inner > 0 && kRowsPerWarp % 2 != 0) return cudaErrorInvalidValue;
  const int64_t outputs_per_block = inner > 0 ? kWarps * (kRowsPerWarp / 2) : kWarps * kRowsPerWarp;
  return launch_kernel(gemv_quant_kernel<Format, kWarps, kRowsPerWarp, kStages>,
                       dim3(static_cast<unsigned>(ceil_div(inner > 0 ? inner : rows, outputs_per_block))),
                       dim3(kWarps * kWarpSize), 0, stream, early, static_cast<const uint8_t*>(w), rows, cols, x, y,
                       beta, inner);
}

template <class Format>
cudaError_t launch_config(const GemvQuantConfig& config, const void* w, int64_t rows, int cols, const uint16_t* x,
                          void* y, float beta, cudaStream_t stream, bool early, int64_t inner) {
#define TIDAL_GEMV_QUANT_CONFIG(W, R, S)                                    \
  if (config.warps == W && config.rows_per_warp == R && config.stages == S) \
    return launch<Format, W, R, S>(w, rows, cols, x, y, beta, stream, early, inner);
  TIDAL_GEMV_QUANT_CONFIGS(TIDAL_GEMV_QUANT_CONFIG)
#undef TIDAL_GEMV_QUANT_CONFIG
  return cudaErrorInvalidValue;
}

// ---- Q4_K on tensor cores ----
//
// The SIMT kernel above spends ~8 instructions a Q4_K value (Nsight Compute: issue-bound at 53%
// of the memory rate, bench/NOTES.md Version 16). Here a warp multiplies 16 rows at once with
// mma.sync m16n8k16 (bf16 in, fp32 accumulation) and the per-value work is only the widening of
// the nibbles to bf16.
//
// Nibbles to bf16: 0x4300 | q is the bf16 128 + q (exponent 2^7, q in the low mantissa bits),
// so one LOP3 widens the low nibbles of bytes 0 and 2 of a word into a pair of bf16, and a shift
// plus a LOP3 each of the other three pairs: 7 instructions for 8 values. The bias comes back
// out exactly: sum (128 + q) x = 128 X + sum q x, with X the sum of x over the sub-block,
// computed on the tensor cores as well (an A of ones), so both sums round alike.
//
// One mma per K-block sub-block half. The 8 columns of B are the 8 sub-blocks of a K-block:
// column j holds x restricted to sub-block j (zero elsewhere), so after the K-block's 16 mmas
// the accumulator holds, for every row r and sub-block j, C[r][j] = 128 X_j + sum_i q_ri x_i,
// and thread (group g, lane-in-group t) holds rows g and g + 8 of sub-blocks 2t and 2t + 1: the
// per-sub-block scales and mins are applied once per (row, sub-block), never duplicated across
// the threads of a group.
//
// Order of k. Within a sub-block (32 values i), thread t owns i in [8t, 8t + 8): its 8-byte
// load of quant bytes 32p + 8t.. gives those 8 values of sub-block 2p (low nibbles) and of
// 2p + 1 (high). The mma's k slots are a permutation of i chosen so that A and B agree: in
// half h of the sub-block, slots (2t, 2t + 1) are i = 8t + 4h + (0, 2) and slots
// (2t + 8, 2t + 9) are i = 8t + 4h + (1, 3), for A's rows and for B's column alike (B's x
// pairs are byte-permuted the same way).
//
// Loads: each warp streams its K-blocks of the block's 16 rows through its own shared-memory
// stages with cp.async (pairs of K-blocks, 288 bytes a row, a row stride of 32 mod 128 bytes so
// that the 8-byte loads of the 8 row groups fall in distinct banks); the warps' partial sums
// meet in shared memory at the end.
namespace q4k_mma {

constexpr int kRows = 16;
constexpr int kBlocksPerStage = 2;
constexpr int kBlockBytes = 144;
constexpr int row_stride() {
  int stride = kBlocksPerStage * kBlockBytes;
  while (stride % 128 != 32 && stride % 128 != 96) stride += 16;
  return stride;
}
constexpr int kStride = row_stride();
constexpr int kStageBytes = kRows * kStride;
constexpr int kVectorsPerRow = kBlocksPerStage * kBlockBytes / 16;

constexpr size_t shared_bytes(int warps, int stages) {
  return size_t(warps) * stages * kStageBytes + size_t(warps) * kRows * sizeof(float);
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Nibbles at bits `shift` and `shift` + 16 of `word`, as the bf16 pair (128 + q, 128 + q').
template <int Shift>
__device__ __forceinline__ uint32_t widen(uint32_t word) {
  return ((word >> Shift) & 0x000F000Fu) | 0x43004300u;
}

// The block's warps form kGroups = kWarps / kSplits groups of 16 rows; the kSplits warps of a
// group split its K-blocks between them (kSplits == kWarps: the whole block on 16 rows, the
// most blocks for a small matrix; kSplits == 1: every warp streams whole rows of its own, the
// longest-lived pipelines).
// inner > 0: W is a gate|up matrix [2 * inner][cols], a group's 16 rows are gate rows j..j+7
// and up rows inner + j..+7, and it writes bf16 silu(gate) * up to out[j..j+7] (y_out,
// uint16_t) instead of fp32 sums (beta unused).
template <int kWarps, int kStages, int kSplits, int kMinBlocks>
__global__ void __launch_bounds__(kWarps* kWarpSize, kMinBlocks)
    gemv_q4k_mma_kernel(const uint8_t* w, int64_t rows, int cols, const uint16_t* x, void* y_out, float beta,
                        int64_t inner) {
  static_assert(kSplits >= 1 && kWarps % kSplits == 0, "the warps split into whole groups");
  constexpr int kGroups = kWarps / kSplits;
  extern __shared__ __align__(16) uint8_t shared[];
  let_next_kernel_start();
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int group = warp / kSplits, split = warp % kSplits;
  const int g = lane / 4, t = lane % 4;
  // The group's first row, or with SwiGLU its first output (8 a group). A group past the
  // matrix repeats its last rows (clamped below) and writes nothing.
  const int64_t first = (int64_t(blockIdx.x) * kGroups + group) * (inner > 0 ? kRows / 2 : kRows);
  const int k_blocks = cols / 256;
  const int64_t row_bytes = int64_t(k_blocks) * kBlockBytes;
  const int kb_begin = int(int64_t(k_blocks) * split / kSplits);
  const int kb_end = int(int64_t(k_blocks) * (split + 1) / kSplits);
  const int steps = int(ceil_div(kb_end - kb_begin, kBlocksPerStage));
  uint8_t* stages = shared + size_t(warp) * kStages * kStageBytes;
  float* partial = reinterpret_cast<float*>(shared + size_t(kWarps) * kStages * kStageBytes);

  // Copies the step's K-blocks of the 16 rows (rows past the matrix repeat its last row; their
  // sums are never written) into stage step % kStages; one commit group per call.
  constexpr int kVectors = kRows * kVectorsPerRow;
  auto issue = [&](int step) {
    if (step < steps) {
      const int kb0 = kb_begin + step * kBlocksPerStage;
      const int row_vectors = kBlockBytes / 16 * min(kBlocksPerStage, kb_end - kb0);
      uint8_t* target = stages + (step % kStages) * kStageBytes;
#pragma unroll
      for (int i = 0; i < (kVectors + kWarpSize - 1) / kWarpSize; ++i) {
        const int v = lane + i * kWarpSize;
        const int r = v / kVectorsPerRow, u = v % kVectorsPerRow;
        if (v < kVectors && u < row_vectors) {
          const int64_t row = inner > 0 ? (r < kRows / 2 ? 0 : inner) + min(first + r % (kRows / 2), inner - 1)
                                        : min(first + r, rows - 1);
          copy_async_16(target + r * kStride + 16 * u, w + row * row_bytes + int64_t(kb0) * kBlockBytes + 16 * u, true);
        }
      }
    }
    copy_async_commit();
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s);
  // Launched early, the first K-blocks of W are in flight before the wait for the kernel that
  // writes x (and y).
  wait_for_previous_kernels();

  // mask[j]: B's column j is x of sub-block j, supplied by the threads of group j only.
  uint32_t mask[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) mask[j] = g == j ? 0xFFFFFFFFu : 0u;
  constexpr uint32_t kOnes = 0x3F803F80u;  // the bf16 pair (1, 1)
  // The packed scales of sub-blocks 2t, 2t + 1 sit in bytes 2(t % 2), +1 of the scale words.
  const int scale_shift = 16 * (t & 1);
  const bool low_scales = t < 2;
  float acc[2] = {0.0f, 0.0f};  // rows g and g + 8

  for (int step = 0; step < steps; ++step) {
    issue(step + kStages - 1);
    const int kb0 = kb_begin + step * kBlocksPerStage;
    const int count = min(kBlocksPerStage, kb_end - kb0);
    uint4 xr[kBlocksPerStage];
#pragma unroll
    for (int i = 0; i < kBlocksPerStage; ++i)
      if (i < count) xr[i] = __ldg(reinterpret_cast<const uint4*>(x + int64_t(kb0 + i) * 256 + 32 * g + 8 * t));
    copy_async_wait<kStages - 1>();
    __syncwarp();
    const uint8_t* stage = stages + (step % kStages) * kStageBytes;
#pragma unroll
    for (int i = 0; i < kBlocksPerStage; ++i) {
      if (i >= count) break;
      // x pairs in the k-slot order: (x0, x2), (x1, x3), (x4, x6), (x5, x7) of i = 8t + ...
      const uint32_t xp[4] = {__byte_perm(xr[i].x, xr[i].y, 0x5410), __byte_perm(xr[i].x, xr[i].y, 0x7632),
                              __byte_perm(xr[i].z, xr[i].w, 0x5410), __byte_perm(xr[i].z, xr[i].w, 0x7632)};
      float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // X of sub-blocks 2t, 2t + 1 (twice)
      mma_bf16(sums, kOnes, kOnes, kOnes, kOnes, xp[0], xp[1]);
      mma_bf16(sums, kOnes, kOnes, kOnes, kOnes, xp[2], xp[3]);
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const uint8_t* row_lo = stage + g * kStride + i * kBlockBytes;  // row g's block
      const uint8_t* row_hi = row_lo + 8 * kStride;                   // row g + 8's
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        const uint2 lo = *reinterpret_cast<const uint2*>(row_lo + 16 + 32 * p + 8 * t);
        const uint2 hi = *reinterpret_cast<const uint2*>(row_hi + 16 + 32 * p + 8 * t);
        // Sub-block 2p (low nibbles), halves h = 0 (word .x) and 1 (word .y).
        mma_bf16(c, widen<0>(lo.x), widen<0>(hi.x), widen<8>(lo.x), widen<8>(hi.x), xp[0] & mask[2 * p],
                 xp[1] & mask[2 * p]);
        mma_bf16(c, widen<0>(lo.y), widen<0>(hi.y), widen<8>(lo.y), widen<8>(hi.y), xp[2] & mask[2 * p],
                 xp[3] & mask[2 * p]);
        // Sub-block 2p + 1 (high nibbles).
        mma_bf16(c, widen<4>(lo.x), widen<4>(hi.x), widen<12>(lo.x), widen<12>(hi.x), xp[0] & mask[2 * p + 1],
                 xp[1] & mask[2 * p + 1]);
        mma_bf16(c, widen<4>(lo.y), widen<4>(hi.y), widen<12>(lo.y), widen<12>(hi.y), xp[2] & mask[2 * p + 1],
                 xp[3] & mask[2 * p + 1]);
      }
      // c[0], c[1]: row g, sub-blocks 2t, 2t + 1; c[2], c[3]: row g + 8.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint4 head = *reinterpret_cast<const uint4*>(r == 0 ? row_lo : row_hi);
        const float d = f16_bits_to_float(head.x & 0xFFFF);
        const float dmin = f16_bits_to_float(head.x >> 16);
        const uint32_t a = head.y >> scale_shift, b = head.z >> scale_shift, e = head.w >> scale_shift;
        // kernels/quant_blocks.cuh q4k_scale_min, for two sub-blocks a byte each.
        const uint32_t scales = low_scales ? a & 0x3F3Fu : (e & 0x0F0Fu) | ((a >> 2) & 0x3030u);
        const uint32_t mins = low_scales ? b & 0x3F3Fu : ((e >> 4) & 0x0F0Fu) | ((b >> 2) & 0x3030u);
        float inner = 0.0f, min_sum = 0.0f;
#pragma unroll
        for (int k = 0; k < 2; ++k) {
          const float quant_dot = fmaf(-128.0f, sums[k], c[2 * r + k]);
          inner = fmaf(float((scales >> (8 * k)) & 0xFF), quant_dot, inner);
          min_sum = fmaf(float((mins >> (8 * k)) & 0xFF), sums[k], min_sum);
        }
        acc[r] = fmaf(d, inner, acc[r]);
        acc[r] = fmaf(-dmin, min_sum, acc[r]);
      }
    }
    __syncwarp();  // the stage is refilled by the next iteration's issue
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    acc[r] += __shfl_xor_sync(0xFFFFFFFFu, acc[r], 1);
    acc[r] += __shfl_xor_sync(0xFFFFFFFFu, acc[r], 2);
  }
  if (t == 0) {
    partial[warp * kRows + g] = acc[0];
    partial[warp * kRows + g + 8] = acc[1];
  }
  __syncthreads();
  // Each row's sum over its group's warps, in split order (the same order with and without
  // SwiGLU, so the fused output is the plain one's bit for bit).
  auto row_sum = [&](int row_group, int row) {
    float sum = 0.0f;
#pragma unroll
    for (int v = 0; v < kSplits; ++v) sum += partial[(row_group * kSplits + v) * kRows + row];
    return sum;
  };
  if (inner > 0) {
    // Thread i < 8 kGroups: output i % 8 of group i / 8 from its gate row (i % 8) and up row
    // (i % 8 + 8).
    if (threadIdx.x < kGroups * kRows / 2) {
      const int row_group = threadIdx.x / (kRows / 2), j = threadIdx.x % (kRows / 2);
      const int64_t out = (int64_t(blockIdx.x) * kGroups + row_group) * (kRows / 2) + j;
      if (out < inner)
        reinterpret_cast<__nv_bfloat16*>(y_out)[out] =
            __float2bfloat16_rn(silu_times(row_sum(row_group, j), row_sum(row_group, kRows / 2 + j)));
    }
    return;
  }
  if (threadIdx.x < kGroups * kRows) {
    float* y = static_cast<float*>(y_out);
    const int row_group = threadIdx.x / kRows, r = threadIdx.x % kRows;
    const float sum = row_sum(row_group, r);
    const int64_t row = (int64_t(blockIdx.x) * kGroups + row_group) * kRows + r;
    if (row < rows) y[row] = beta == 0.0f ? sum : beta * y[row] + sum;
  }
}

// kMinBlocks 0: no register bound (launch bounds of 0 minimum blocks), the default carveout.
template <int kWarps, int kStages, int kSplits, int kMinBlocks>
cudaError_t launch(const void* w, int64_t rows, int cols, const uint16_t* x, void* y, float beta, cudaStream_t stream,
                   bool early, int64_t inner) {
  constexpr size_t kShared = shared_bytes(kWarps, kStages);
  constexpr auto kernel = gemv_q4k_mma_kernel<kWarps, kStages, kSplits, kMinBlocks>;
  if constexpr (kShared > 48 * 1024) {
    static const cudaError_t raised =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kShared));
    if (raised != cudaSuccess) return raised;
  }
  if constexpr (kMinBlocks > 0) {
    // The driver sizes the SM's shared memory for the blocks it expects (Nsight Compute: a
    // 168 KB carveout, 4 blocks of the 2-stage kernel); ask for all of it.
    static const cudaError_t raised =
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
    if (raised != cudaSuccess) return raised;
  }
  constexpr int kGroups = kWarps / kSplits;
  const unsigned blocks =
      static_cast<unsigned>(inner > 0 ? ceil_div(inner, kGroups * kRows / 2) : ceil_div(rows, kGroups * kRows));
  return launch_kernel(kernel, dim3(blocks), dim3(kWarps * kWarpSize), kShared, stream, early,
                       static_cast<const uint8_t*>(w), rows, cols, x, y, beta, inner);
}

cudaError_t launch_config(const GemvQuantConfig& config, const void* w, int64_t rows, int cols, const uint16_t* x,
                          void* y, float beta, cudaStream_t stream, bool early, int64_t inner) {
#define TIDAL_GEMV_Q4K_MMA_CONFIG(W, S, K, B)                                                    \
  if (config.warps == W && config.stages == S && config.k_splits == K && config.min_blocks == B) \
    return launch<W, S, (K == 0 ? W : K), B>(w, rows, cols, x, y, beta, stream, early, inner);
  TIDAL_GEMV_Q4K_MMA_CONFIGS(TIDAL_GEMV_Q4K_MMA_CONFIG)
#undef TIDAL_GEMV_Q4K_MMA_CONFIG
  return cudaErrorInvalidValue;
}

}  // namespace q4k_mma

}  // namespace

bool gemv_quant_config_supported(const GemvQuantConfig& config) {
  for (const GemvQuantConfig& compiled : kGemvQuantConfigs)
    if (compiled == config) return true;
  return false;
}

bool gemv_quant_config_supported(const GemvQuantConfig& config, QuantFormat format) {
  return gemv_quant_config_supported(config) && (!config.mma || format == QuantFormat::Q4_K);
}

namespace {

// Both products: inner > 0 for SwiGLU over a gate|up matrix of rows = 2 * inner.
cudaError_t launch_any(const GemvQuantConfig& config, QuantFormat format, const void* w, int64_t rows, int cols,
                       const uint16_t* x, void* y, float beta, cudaStream_t stream, bool early, int64_t inner) {
  if (!is_quant_format(uint32_t(format)) || !gemv_quant_config_supported(config, format)) return cudaErrorInvalidValue;
  if (cols <= 0 || cols % quant_block_elements(format) != 0) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(x)) % 16 != 0) return cudaErrorMisalignedAddress;
  if (rows <= 0) return cudaSuccess;
  switch (format) {
    case QuantFormat::Q8_0:
      return launch_config<Q8_0Gemv>(config, w, rows, cols, x, y, beta, stream, early, inner);
    case QuantFormat::Q4_K:
      if (config.mma) return q4k_mma::launch_config(config, w, rows, cols, x, y, beta, stream, early, inner);
      return launch_config<Q4_KGemv>(config, w, rows, cols, x, y, beta, stream, early, inner);
    case QuantFormat::Q6_K:
      return launch_config<Q6_KGemv>(config, w, rows, cols, x, y, beta, stream, early, inner);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_gemv_quant_with(const GemvQuantConfig& config, QuantFormat format, const void* w, int64_t rows,
                                   int cols, const uint16_t* x, float* y, float beta, cudaStream_t stream, bool early) {
  return launch_any(config, format, w, rows, cols, x, y, beta, stream, early, 0);
}

cudaError_t launch_gemv_quant_swiglu_with(const GemvQuantConfig& config, QuantFormat format, const void* w,
                                          int64_t inner, int cols, const uint16_t* x, uint16_t* out,
                                          cudaStream_t stream, bool early) {
  if (inner <= 0) return cudaSuccess;
  return launch_any(config, format, w, 2 * inner, cols, x, out, 0.0f, stream, early, inner);
}

cudaError_t launch_gemv_quant_swiglu(QuantFormat format, const void* w, int64_t inner, int cols, const uint16_t* x,
                                     uint16_t* out, cudaStream_t stream, bool early) {
  return launch_gemv_quant_swiglu_with(default_gemv_quant_config(format), format, w, inner, cols, x, out, stream,
                                       early);
}

cudaError_t launch_gemv_quant(QuantFormat format, const void* w, int64_t rows, int cols, const uint16_t* x, float* y,
                              float beta, cudaStream_t stream, bool early) {
  return launch_gemv_quant_with(default_gemv_quant_config(format), format, w, rows, cols, x, y, beta, stream, early);
}

}  // namespace tidal::cuda
