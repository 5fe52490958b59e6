// Attention of one decode step (batch 1, one query vector per head) on the GPU: dense
// attention over a KV cache layer (flash-decoding: the positions are split over many blocks,
// each keeps an online softmax, a second small kernel merges the splits), optionally writing
// the raw scores a TidalDecode selection layer ranks, and sparse attention over lists of
// positions (TidalDecode's selected tokens, Quest's expanded pages).
//
//   s_i = q . K[pos_i] / sqrt(head_dim)
//   out = sum_i softmax(s)_i V[pos_i]
//
// Storage is bf16 (K, V), arithmetic fp32. With GQA the query heads h of one KV head j are
// h = j * group .. j * group + group - 1 (group = num_heads / num_kv_heads, 1 to 8); a block
// reads each K/V row once for all of them.
//
// Every call is asynchronous on `stream`. Invalid arguments throw std::invalid_argument, a
// failed launch throws CudaError; neither leaves work queued.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tidal::cuda {

enum class ElementType : uint8_t { F32, BF16 };

// One layer's keys and values in device memory. Element (kv_head, position, dim) of the keys
// is keys[kv_head * key_head_stride + position * key_row_stride + dim]; values likewise.
// Strides count elements and must be multiples of 16 bytes (8 bf16, 16 FP8), the bases 16-byte
// aligned (every row is read as 16-byte vectors). Elements are bf16, or, when `scales` is set, FP8 E4M3 codes with
// one f16 scale per row (kernels/kv_fp8.cuh): scales[kv_head * scale_head_stride + position]
// holds the key's scale in its low half and the value's in its high half.
struct KvLayerView {
  const void* keys = nullptr;
  const void* values = nullptr;
  int64_t key_head_stride = 0;
  int64_t key_row_stride = 0;
  int64_t value_head_stride = 0;
  int64_t value_row_stride = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // 64 or 128
  const uint32_t* scales = nullptr;
  int64_t scale_head_stride = 0;
  bool fp8() const { return scales != nullptr; }
};

// Which heads read which list of a sparse attention.
enum class PositionSharing : uint8_t {
  PerQueryHead,  // list h (num_heads lists) is read by query head h, on KV head h / group
  PerKvHead,     // list j (num_kv_heads lists) is read by every query head of KV head j
};

// Device lists of positions, [lists][stride] int32, `count` valid entries in each. Each list
// is attended exactly as given: the caller includes the current token (select_top_k can
// append it). Ascending order keeps reads local but is not required.
struct PositionLists {
  const int32_t* positions = nullptr;
  int64_t stride = 0;
  int64_t count = 0;
  PositionSharing sharing = PositionSharing::PerQueryHead;
};

struct DecodeAttentionArgs {
  const void* query = nullptr;  // [num_heads][head_dim], after RoPE, 16-byte aligned
  ElementType query_type = ElementType::F32;
  int num_heads = 0;
  KvLayerView kv;
  // Dense attention: positions [0, seq_len), the current token's K/V already stored.
  int64_t seq_len = 0;
  // Dense only, optional (replayed decode graphs): the kernel reads seq_len from here, and
  // seq_len above is an upper bound that the launch is planned for.
  const int64_t* seq_len_device = nullptr;
  // Sparse attention when non-null: exactly the listed positions (seq_len is then unused).
  const PositionLists* sparse = nullptr;
  // Optional, dense only: scores[h * score_stride + i] = q_h . K[i] / sqrt(head_dim) for
  // every query head h and position i < seq_len (what a TidalDecode selection layer ranks).
  float* scores = nullptr;
  int64_t score_stride = 0;
  void* out = nullptr;  // [num_heads][head_dim]
  ElementType out_type = ElementType::F32;
  // Device scratch for the per-split partial results, decode_attention_workspace_bytes().
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// Workspace one call of decode_attention needs for this many query heads.
size_t decode_attention_workspace_bytes(int num_heads, int head_dim);
// Clears the workspace's per-unit counters: once, before its first decode_attention (every
// launch leaves them cleared again). The partials need no initialisation.
void prepare_decode_attention_workspace(void* workspace, int num_heads, int head_dim, cudaStream_t stream);

void decode_attention(const DecodeAttentionArgs& args, cudaStream_t stream);

}  // namespace tidal::cuda
