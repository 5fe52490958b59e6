// Embedding lookup: one block per token, bf16 table row widened to fp32.
#include "embedding.h"

#include "common.cuh"

namespace tidal::cuda {

namespace {

__global__ void embedding_kernel(const uint16_t* table, const int32_t* tokens, int hidden, float* out) {
  const int t = blockIdx.x;
  const uint16_t* row = table + int64_t(tokens[t]) * hidden;
  float* target = out + int64_t(t) * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) target[i] = __uint_as_float(uint32_t(row[i]) << 16);
}

}  // namespace

cudaError_t launch_embedding(const uint16_t* table, const int32_t* tokens, int count, int hidden, float* out,
                             cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  embedding_kernel<<<count, 256, 0, stream>>>(table, tokens, hidden, out);
  return cudaGetLastError();
}

}  // namespace tidal::cuda
