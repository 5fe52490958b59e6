#include "cpu/attention.h"

#include "cpu/dot_kernels.h"
#include "cpu/simd_support.h"
#include "cpu/softmax.h"

namespace tidal::cpu {

namespace {

inline int64_t position_at(const int32_t* positions, int64_t i) { return positions ? positions[i] : i; }

// Each page keeps a head's 16 keys (and values) together, but consecutive pages are far
// apart in memory, which defeats the hardware prefetchers (they stop at 4 KiB boundaries):
// the loops ask for the rows kPrefetchAhead positions ahead themselves.
constexpr int64_t kPrefetchAhead = 16;

inline void prefetch_row(const float* row, int64_t floats) {
#if defined(__GNUC__) || defined(__clang__)
  for (int64_t offset = 0; offset < floats; offset += 16) __builtin_prefetch(row + offset, 0, 3);
#else
  (void)row;
  (void)floats;
#endif
}

inline void prefetch_key(const KvHeadView& kv, const int32_t* positions, int64_t count, int64_t i) {
  if (i + kPrefetchAhead < count) prefetch_row(kv.key(position_at(positions, i + kPrefetchAhead)), kv.head_dim);
}

inline void prefetch_value(const KvHeadView& kv, const int32_t* positions, int64_t count, int64_t i) {
  if (i + kPrefetchAhead < count) prefetch_row(kv.value(position_at(positions, i + kPrefetchAhead)), kv.head_dim);
}

// The loops exist once per instruction path so that the dot product and y += a*x inline
// into them. A dot product is the same operations whichever side is the "row" and however
// many products share a call (see dot_kernels.h), so the scores below are bitwise those of
// a one-head, one-position loop; batching them only hides the FMA latency.

// One head: four positions per call, q shared. Several heads: per position, up to four
// heads per call, the key shared (read once for the group).
#define TIDAL_SCORES_LOOP(DOT)                                                                   \
  const int64_t d = kv.head_dim;                                                                 \
  if (heads == 1) {                                                                              \
    const auto* q_bytes = reinterpret_cast<const unsigned char*>(q);                             \
    for (int64_t i = 0; i < count; i += 4) {                                                     \
      const int64_t n = count - i < 4 ? count - i : 4;                                           \
      const float* keys[4];                                                                      \
      for (int64_t j = 0; j < n; ++j) {                                                          \
        prefetch_key(kv, positions, count, i + j);                                               \
        keys[j] = kv.key(position_at(positions, i + j));                                         \
      }                                                                                          \
      float dots[4];                                                                             \
      switch (n) {                                                                               \
        case 4:                                                                                  \
          DOT<DType::F32, 4>(q_bytes, keys, d, dots);                                            \
          break;                                                                                 \
        case 3:                                                                                  \
          DOT<DType::F32, 3>(q_bytes, keys, d, dots);                                            \
          break;                                                                                 \
        case 2:                                                                                  \
          DOT<DType::F32, 2>(q_bytes, keys, d, dots);                                            \
          break;                                                                                 \
        default:                                                                                 \
          DOT<DType::F32, 1>(q_bytes, keys, d, dots);                                            \
          break;                                                                                 \
      }                                                                                          \
      for (int64_t j = 0; j < n; ++j) scores[i + j] = dots[j] * scale;                           \
    }                                                                                            \
    return;                                                                                      \
  }                                                                                              \
  for (int64_t i = 0; i < count; ++i) {                                                          \
    prefetch_key(kv, positions, count, i);                                                       \
    const auto* key = reinterpret_cast<const unsigned char*>(kv.key(position_at(positions, i))); \
    for (int64_t h = 0; h < heads; h += 4) {                                                     \
      const int64_t n = heads - h < 4 ? heads - h : 4;                                           \
      const float* queries[4];                                                                   \
      for (int64_t j = 0; j < n; ++j) queries[j] = q + (h + j) * d;                              \
      float dots[4];                                                                             \
      switch (n) {                                                                               \
        case 4:                                                                                  \
          DOT<DType::F32, 4>(key, queries, d, dots);                                             \
          break;                                                                                 \
        case 3:                                                                                  \
          DOT<DType::F32, 3>(key, queries, d, dots);                                             \
          break;                                                                                 \
        case 2:                                                                                  \
          DOT<DType::F32, 2>(key, queries, d, dots);                                             \
          break;                                                                                 \
        default:                                                                                 \
          DOT<DType::F32, 1>(key, queries, d, dots);                                             \
          break;                                                                                 \
      }                                                                                          \
      for (int64_t j = 0; j < n; ++j) scores[(h + j) * stride + i] = dots[j] * scale;            \
    }                                                                                            \
  }

void scores_portable(const float* q, int64_t heads, const KvHeadView& kv, const int32_t* positions, int64_t count,
                     float scale, float* scores, int64_t stride) {
  TIDAL_SCORES_LOOP(kernels::dot_rows_portable)
}

void weighted_values_portable(const float* probabilities, int64_t stride, int64_t heads, const KvHeadView& kv,
                              const int32_t* positions, int64_t count, float* out) {
  const int64_t d = kv.head_dim;
  for (int64_t i = 0; i < count; ++i) {
    prefetch_value(kv, positions, count, i);
    const float* value = kv.value(position_at(positions, i));
    for (int64_t h = 0; h < heads; ++h) kernels::axpy_portable(probabilities[h * stride + i], value, out + h * d, d);
  }
}

#if TIDAL_X86_SIMD
TIDAL_TARGET_AVX2 void scores_avx2(const float* q, int64_t heads, const KvHeadView& kv, const int32_t* positions,
                                   int64_t count, float scale, float* scores,
                                   int64_t stride){TIDAL_SCORES_LOOP(kernels::dot_rows_avx2)}

TIDAL_TARGET_AVX2 void weighted_values_avx2(const float* probabilities, int64_t stride, int64_t heads,
                                            const KvHeadView& kv, const int32_t* positions, int64_t count, float* out) {
  const int64_t d = kv.head_dim;
  for (int64_t i = 0; i < count; ++i) {
    prefetch_value(kv, positions, count, i);
    const float* value = kv.value(position_at(positions, i));
    for (int64_t h = 0; h < heads; ++h) kernels::axpy_avx2(probabilities[h * stride + i], value, out + h * d, d);
  }
}
#endif

#undef TIDAL_SCORES_LOOP

}  // namespace

void attention_scores_grouped(const float* q, int64_t heads, const KvHeadView& kv, const int32_t* positions,
                              int64_t count, float scale, float* scores, int64_t scores_stride) {
#if TIDAL_X86_SIMD
  if (simd_enabled()) return scores_avx2(q, heads, kv, positions, count, scale, scores, scores_stride);
#endif
  scores_portable(q, heads, kv, positions, count, scale, scores, scores_stride);
}

void attention_weighted_values_grouped(float* scores, int64_t scores_stride, int64_t heads, const KvHeadView& kv,
                                       const int32_t* positions, int64_t count, float* out) {
  for (int64_t h = 0; h < heads; ++h) softmax_in_place(scores + h * scores_stride, count);
  for (int64_t j = 0; j < heads * kv.head_dim; ++j) out[j] = 0.0f;
#if TIDAL_X86_SIMD
  if (simd_enabled()) return weighted_values_avx2(scores, scores_stride, heads, kv, positions, count, out);
#endif
  weighted_values_portable(scores, scores_stride, heads, kv, positions, count, out);
}

void attend_grouped(const float* q, int64_t heads, const KvHeadView& kv, const int32_t* positions, int64_t count,
                    float scale, float* scratch, float* out) {
  attention_scores_grouped(q, heads, kv, positions, count, scale, scratch, count);
  attention_weighted_values_grouped(scratch, count, heads, kv, positions, count, out);
}

void attention_scores(const float* q, const KvHeadView& kv, const int32_t* positions, int64_t count, float scale,
                      float* scores) {
  attention_scores_grouped(q, 1, kv, positions, count, scale, scores, count);
}

void attention_weighted_values(float* scores, const KvHeadView& kv, const int32_t* positions, int64_t count,
                               float* out) {
  attention_weighted_values_grouped(scores, count, 1, kv, positions, count, out);
}

void attend(const float* q, const KvHeadView& kv, const int32_t* positions, int64_t count, float scale, float* scratch,
            float* out) {
  attend_grouped(q, 1, kv, positions, count, scale, scratch, out);
}

}  // namespace tidal::cpu
