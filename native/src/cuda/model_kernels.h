// Launchers of the per-token model kernels of the CUDA backend (kernels/embedding.cu,
// rms_norm.cu, rope.cu, kv_append.cu, decode_qkv.cu, swiglu.cu, bias_add.cu, gemv.cu, prefill_attention.cu,
// sampling.cu, random_fill.cu) and of the KV-cache compaction (kv_shift.cu). Activations are
// fp32 row-major [tokens][width] unless said; bf16 arrays are passed as uint16_t bits. Every
// launcher is asynchronous on `stream` and returns the launch's error code; the arguments are
// checked by the caller (the backend).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::cuda {

// out[t][i] = table[tokens[t]][i] (bf16 -> fp32).
cudaError_t launch_embedding(const uint16_t* table, const int32_t* tokens, int count, int hidden, float* out,
                             cudaStream_t stream);

// out[r] = bf16(x[r] / rms(x[r]) * weight), rms over `width` values, eps inside the root.
cudaError_t launch_rms_norm(const float* x, int64_t x_stride, const float* weight, int rows, int width, float eps,
                            uint16_t* out, int64_t out_stride, cudaStream_t stream);

// x[r][i] += bias[i] for i < width.
cudaError_t launch_bias_add(float* x, int64_t stride, const float* bias, int rows, int width, cudaStream_t stream);

// In place over qkv [tokens][stride] (q heads, then k heads, then v heads of head_dim each):
// optional per-head RMSNorm of q and k (Qwen3, q_norm/k_norm non-null), then RoPE (rotate-half
// pairs (i, i + head_dim/2), angle = float(start + t) * inv_freq[i]). Also writes q as bf16
// to q_bf16 [tokens][heads * head_dim] when non-null.
struct RopeLaunch {
  float* qkv = nullptr;
  int64_t stride = 0;
  int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  const float* inv_freq = nullptr;  // [head_dim / 2]
  int64_t start = 0;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  float eps = 0;
  uint16_t* q_bf16 = nullptr;
};
cudaError_t launch_rope(const RopeLaunch& launch, cudaStream_t stream);

// keys[h * head_stride + (start + t) * head_dim + i] = bf16(k of token t, head h), values likewise.
cudaError_t launch_kv_append(const float* qkv, int64_t stride, int tokens, int heads, int kv_heads, int head_dim,
                             uint16_t* keys, uint16_t* values, int64_t head_stride, int64_t start,
                             cudaStream_t stream);

// One token's bias_add + rope + kv_append + Quest page update in one launch (kernels/decode_qkv.cu):
// over qkv [heads + 2 * kv_heads][head_dim] in place, bias added to q, k and v (when non-null),
// q/k per-head RMSNorm (when non-null), RoPE of q and k at `position` (read from
// position_device instead when non-null); k and v go to keys / values [kv_head][head_stride]
// at row `position`, and the page of `position` gets its key min/max recomputed (key_min /
// key_max [kv_head][page_head_stride], pages of 16 rows; skipped when key_min is null).
struct DecodeQkvLaunch {
  float* qkv = nullptr;
  const float* bias = nullptr;
  int heads = 0, kv_heads = 0, head_dim = 0;
  const float* inv_freq = nullptr;  // [head_dim / 2]
  int64_t position = 0;
  const int64_t* position_device = nullptr;
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;
  float eps = 0;
  uint16_t* keys = nullptr;
  uint16_t* values = nullptr;
  int64_t head_stride = 0;  // elements between KV heads of the cache (rows of head_dim)
  uint16_t* key_min = nullptr;
  uint16_t* key_max = nullptr;
  int64_t page_head_stride = 0;
};
cudaError_t launch_decode_qkv(const DecodeQkvLaunch& launch, cudaStream_t stream);

// out[t][i] = bf16(silu(gate_up[t][i]) * gate_up[t][inner + i]).
cudaError_t launch_swiglu(const float* gate_up, int tokens, int inner, uint16_t* out, cudaStream_t stream);

// Causal attention of `tokens` queries at positions start .. start + tokens - 1 over the
// cache positions [0, start + tokens) (the new tokens' K/V already appended). q [tokens][heads
// * head_dim] bf16, K/V [kv_head][head_stride] bf16 rows of head_dim, out [tokens][heads *
// head_dim] bf16. Tensor cores (bf16 mma, fp32 accumulators), online softmax in fp32.
// Which prefill attention kernel a launch runs. Auto: the Hopper kernel (wgmma, TMA, warp
// specialisation; kernels/prefill_attention_hopper.cu) where the device and the build have
// it, else the mma.sync kernel; $TIDAL_PREFILL_KERNEL=mma or =wgmma overrides Auto (A/B runs).
enum class PrefillKernel { Auto, MmaSync, Wgmma };

struct PrefillAttentionLaunch {
  const uint16_t* q = nullptr;
  const uint16_t* keys = nullptr;
  const uint16_t* values = nullptr;
  int64_t head_stride = 0;
  int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t start = 0;
  float scale = 0;
  uint16_t* out = nullptr;
  int warps = 4;  // mma.sync kernel: per block (16 query rows each): 4 (measured default) or 8 (ldmatrix K loads)
  PrefillKernel kernel = PrefillKernel::Auto;
  // Split-KV for short chunks against long caches (kernels/prefill_attention.cu): 0 lets
  // prefill_attention_splits() decide, 1 is one pass, N > 1 forces N key parts (tests, bench).
  // Split launches need split_scratch_bytes >= prefill_attention_scratch_bytes() of device
  // memory; without it an undecided launch runs in one pass and a forced one fails.
  int splits = 0;
  void* split_scratch = nullptr;
  size_t split_scratch_bytes = 0;
};
cudaError_t launch_prefill_attention(const PrefillAttentionLaunch& launch, cudaStream_t stream);
// The kernel a launch runs (Auto resolved): MmaSync or Wgmma.
PrefillKernel prefill_attention_kernel(const PrefillAttentionLaunch& launch);
// The key parts a launch runs with: its `splits` when set, else $TIDAL_PREFILL_SPLITS when
// set, else 1 for chunks of 1024+ queries or caches under 2048 keys, else enough parts for
// 2 to 4 waves of resident blocks (the fullest last wave), at least 1024 keys a part, <= 64.
// Blocks and tiles are those of the kernel the launch runs.
int prefill_attention_splits(const PrefillAttentionLaunch& launch);
// Scratch bytes for `splits` parts: splits * tokens * heads * (head_dim + 2) floats.
size_t prefill_attention_scratch_bytes(const PrefillAttentionLaunch& launch, int splits);

// One-token linear layer: y[r] = beta * y[r] + sum_c W[r][c] x[c] (W bf16 [rows][cols], x bf16,
// y fp32; beta == 0 never reads y). cols a multiple of 8, W and x 16-byte aligned.
cudaError_t launch_gemv(const uint16_t* w, int64_t rows, int cols, const uint16_t* x, float* y, float beta,
                        cudaStream_t stream);

// out[r] = the lowest index of the largest value of row r (greedy sampling on the device).
cudaError_t launch_argmax(const float* logits, int rows, int64_t width, int32_t* out, cudaStream_t stream);

// One chunk of a KV-cache compaction (kernels/kv_shift.cu): for every cache row (layer,
// kv_head) r < rows and entry c < count, with (source, table) = moves[c]:
//   key_scratch[r][c]   = bf16(rotate(keys[r][source], rotations[table]))
//   value_scratch[r][c] = values[r][source]
// rotate: rotate-half pairs (i, i + head_dim/2) by the angle whose (cos, sin) are
// rotations[table][i] (fp32 pairs). Cache rows are row_stride elements apart; scratch rows
// count * head_dim. head_dim even and <= 512.
struct KvShiftLaunch {
  const uint16_t* keys = nullptr;
  const uint16_t* values = nullptr;
  int64_t row_stride = 0;
  int rows = 0, head_dim = 0;
  const int32_t* moves = nullptr;     // [count][2]: source position, rotation table
  const float* rotations = nullptr;   // [tables][head_dim / 2][2]: cos, sin
  int count = 0;
  uint16_t* key_scratch = nullptr;    // [rows][count][head_dim]
  uint16_t* value_scratch = nullptr;
};
cudaError_t launch_kv_shift_gather(const KvShiftLaunch& launch, cudaStream_t stream);

// Deterministic pseudo-random fills (hash of seed and index), uniform in
// [center - half_width, center + half_width].
cudaError_t launch_fill_uniform_bf16(uint16_t* out, size_t count, float center, float half_width, uint64_t seed,
                                     cudaStream_t stream);
cudaError_t launch_fill_uniform_f32(float* out, size_t count, float center, float half_width, uint64_t seed,
                                    cudaStream_t stream);

}  // namespace tidal::cuda
