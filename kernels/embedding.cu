// Embedding lookup, one token's row at a time: a bf16 table row widened to fp32 (one block per
// token), or a row of a block-quantised table (Q8_0, Q4_K, Q6_K) dequantised to fp32 by the
// piece decoders of kernels/quant_blocks.cuh, each value the CPU dequantiser's float32. A
// quantised row is hidden / 32 pieces, one thread each; grid (tokens, pieces / kQuantThreads).
#include "embedding.h"

#include "common.cuh"
#include "quant_blocks.cuh"

namespace tidal::cuda {

namespace {

constexpr int kQuantThreads = 128;

__global__ void embedding_kernel(const uint16_t* table, const int32_t* tokens, int hidden, float* out) {
  let_next_kernel_start();
  const int t = blockIdx.x;
  const uint16_t* row = table + int64_t(tokens ? tokens[t] : t) * hidden;
  float* target = out + int64_t(t) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) target[i] = __uint_as_float(uint32_t(row[i]) << 16);
}

// out 16-byte aligned and hidden a multiple of 32: every run of 8 values is two float4 stores.
template <class Format>
__global__ void __launch_bounds__(kQuantThreads)
    embedding_quant_kernel(const uint8_t* table, const int32_t* tokens, int hidden, float* out) {
  let_next_kernel_start();
  const int pieces_per_row = hidden / Format::kPieceValues;
  const int in_row = int(blockIdx.y) * kQuantThreads + int(threadIdx.x);
  if (in_row >= pieces_per_row) return;
  const int t = blockIdx.x;
  const int block = in_row / Format::kPieces, piece = in_row % Format::kPieces;
  const int64_t row_bytes = int64_t(hidden / Format::kValues) * Format::kBytes;
  const uint8_t* source = table + int64_t(tokens ? tokens[t] : t) * row_bytes + int64_t(block) * Format::kBytes;
  float* target = out + int64_t(t) * hidden + int64_t(block) * Format::kValues;
  Format::decode(source, piece, [&](int first, const float(&values)[8]) {
    float4* at = reinterpret_cast<float4*>(target + first);
    at[0] = make_float4(values[0], values[1], values[2], values[3]);
    at[1] = make_float4(values[4], values[5], values[6], values[7]);
  });
}

template <class Format>
cudaError_t launch_quant(const void* table, const int32_t* tokens, int count, int hidden, float* out,
                         cudaStream_t stream) {
  const int pieces = hidden / Format::kPieceValues;
  const dim3 grid(static_cast<unsigned>(count), static_cast<unsigned>(ceil_div(pieces, kQuantThreads)));
  embedding_quant_kernel<Format>
      <<<grid, kQuantThreads, 0, stream>>>(static_cast<const uint8_t*>(table), tokens, hidden, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_embedding(const uint16_t* table, const int32_t* tokens, int count, int hidden, float* out,
                             cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  embedding_kernel<<<count, 256, 0, stream>>>(table, tokens, hidden, out);
  return cudaGetLastError();
}

cudaError_t launch_embedding_quant(QuantFormat format, const void* table, const int32_t* tokens, int count, int hidden,
                                   float* out, cudaStream_t stream) {
  if (!is_quant_format(uint32_t(format))) return cudaErrorInvalidValue;
  if (hidden <= 0 || hidden % quant_block_elements(format) != 0) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(table) | reinterpret_cast<uintptr_t>(out)) % 16 != 0)
    return cudaErrorMisalignedAddress;
  if (count <= 0) return cudaSuccess;
  return with_quant_pieces(
      format, [&](auto pieces) { return launch_quant<decltype(pieces)>(table, tokens, count, hidden, out, stream); });
}

}  // namespace tidal::cuda
