// Attention of query vectors over one KV head, on a KV cache stored in pages of
// kKvPageTokens positions. Dense, tidal-selected and Quest-page attention all go through
// these functions with a list of positions (or none = positions 0..count-1), so that a
// sparse attention whose list covers every position is bitwise equal to the dense one.
//
//   s_i = scale * q . K[pos_i]                       (attention_scores)
//   p   = softmax(s)                                  (max-subtracted, summed in list order)
//   out = sum_i p_i V[pos_i]                          (attention_weighted_values)
//
// The grouped forms serve the query heads of one GQA group together: each key and value
// row is read once for all of them, and every head's result is the same sequence of
// operations as the one-head form, so grouping never changes a bit.
#pragma once
#include <cstdint>

namespace tidal::cpu {

// Positions per KV page (and per Quest page).
constexpr int64_t kKvPageTokens = 16;

// Where the keys and values of one KV head of one layer live: page p holds positions
// [16p, 16p + 16); inside a page, keys are [16][head_dim] at `key_offset` floats from the
// page base and values likewise at `value_offset`.
struct KvHeadView {
  const float* const* pages = nullptr;
  int64_t key_offset = 0;
  int64_t value_offset = 0;
  int64_t head_dim = 0;

  const float* key(int64_t position) const {
    return pages[position / kKvPageTokens] + key_offset + (position % kKvPageTokens) * head_dim;
  }
  const float* value(int64_t position) const {
    return pages[position / kKvPageTokens] + value_offset + (position % kKvPageTokens) * head_dim;
  }
};

// scores[h * scores_stride + i] = scale * q_h . K[position_i] for h < heads, with q_h at
// q + h * head_dim and position_i = positions[i], or i when `positions` is null.
void attention_scores_grouped(const float* q, int64_t heads, const KvHeadView& kv, const int32_t* positions,
                              int64_t count, float scale, float* scores, int64_t scores_stride);

// Turns each head's row of scores into softmax probabilities in place, then writes
// out_h = sum_i p_h,i V[position_i] to out + h * head_dim.
void attention_weighted_values_grouped(float* scores, int64_t scores_stride, int64_t heads, const KvHeadView& kv,
                                       const int32_t* positions, int64_t count, float* out);

// Both steps for `heads` query heads; `scratch` holds heads * count floats.
void attend_grouped(const float* q, int64_t heads, const KvHeadView& kv, const int32_t* positions, int64_t count,
                    float scale, float* scratch, float* out);

// One query head.
void attention_scores(const float* q, const KvHeadView& kv, const int32_t* positions, int64_t count, float scale,
                      float* scores);
void attention_weighted_values(float* scores, const KvHeadView& kv, const int32_t* positions, int64_t count,
                               float* out);
void attend(const float* q, const KvHeadView& kv, const int32_t* positions, int64_t count, float scale, float* scratch,
            float* out);

}  // namespace tidal::cpu
