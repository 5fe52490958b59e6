// Argument checks and launch planning of decode attention; the kernels are in
// kernels/decode_attention.cu.
#include "cuda/attention_kernels.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/cuda_error.h"
#include "kernels/decode_attention.h"
#include "kernels/device_info.h"

namespace tidal::cuda {

namespace {

using detail::AttentionLaunch;
using detail::PositionMode;

bool aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument("decode_attention: " + message);
}

size_t partial_floats(int num_heads, int head_dim) {
  return size_t(num_heads) * detail::kMaxSplits * size_t(head_dim + 2);
}

// One finished-split counter per unit (at most num_heads units), padded to 16 bytes.
size_t counter_bytes(int num_heads) { return (size_t(num_heads) * sizeof(unsigned) + 15) / 16 * 16; }

// Splits per unit: as many as fill the resident-block capacity of the GPU in one wave (never
// more, so no block waits for a second wave), each at least one step of rows (one tile)
// long (128 rows at least: a short sparse list's time is mostly the latency of each block's
// chain of gathers; bench/NOTES.md has the measurement). Dense and sparse split alike, so that a list of every position
// gives bitwise the dense result.
void plan_splits(AttentionLaunch& launch, int units) {
  const DeviceInfo& device = current_device_info();
  const int64_t capacity = int64_t(device.sm_count) * detail::attention_blocks_per_sm(launch);
  int64_t splits = std::max<int64_t>(1, capacity / units);
  const int64_t step = detail::attention_rows_per_step(launch);
  splits = std::min<int64_t>(splits, (launch.count + step - 1) / step);
  splits = std::clamp<int64_t>(splits, 1, detail::kMaxSplits);
  int64_t rows = (launch.count + splits - 1) / splits;
  rows = (rows + step - 1) / step * step;
  launch.split_rows = rows;
  launch.num_splits = static_cast<int>((launch.count + rows - 1) / rows);
}

}  // namespace

size_t decode_attention_workspace_bytes(int num_heads, int head_dim) {
  return partial_floats(num_heads, head_dim) * sizeof(float) + counter_bytes(num_heads);
}

void prepare_decode_attention_workspace(void* workspace, int num_heads, int head_dim, cudaStream_t stream) {
  throw_if_failed(cudaMemsetAsync(static_cast<char*>(workspace) + partial_floats(num_heads, head_dim) * sizeof(float),
                                  0, counter_bytes(num_heads), stream),
                  "clearing the decode attention counters");
}

void decode_attention(const DecodeAttentionArgs& args, cudaStream_t stream) {
  const KvLayerView& kv = args.kv;
  require(kv.head_dim == 64 || kv.head_dim == 128, "head_dim must be 64 or 128, got " + std::to_string(kv.head_dim));
  require(kv.num_kv_heads > 0 && args.num_heads > 0 && args.num_heads % kv.num_kv_heads == 0,
          "num_heads must be a positive multiple of num_kv_heads");
  const int group = args.num_heads / kv.num_kv_heads;
  require(group <= 8, "at most 8 query heads per KV head are supported, got " + std::to_string(group));
  require(args.query && kv.keys && kv.values && args.out, "query, keys, values and out must be set");
  require(aligned16(args.query) && aligned16(kv.keys) && aligned16(kv.values),
          "query, keys and values must be 16-byte aligned");
  const int64_t vector = kv.fp8() ? 16 : 8;  // elements in 16 bytes
  require(kv.key_row_stride % vector == 0 && kv.key_head_stride % vector == 0 && kv.value_row_stride % vector == 0 &&
              kv.value_head_stride % vector == 0,
          "K/V strides must be multiples of 16 bytes");
  if (kv.fp8()) {
    require(args.query_type == ElementType::F32, "an FP8 cache is read with an fp32 query");
    require(reinterpret_cast<uintptr_t>(kv.scales) % 4 == 0 && kv.scale_head_stride >= 0,
            "FP8 scales must be 4-byte aligned");
  }
  require(args.workspace && args.workspace_bytes >= decode_attention_workspace_bytes(args.num_heads, kv.head_dim),
          "workspace smaller than decode_attention_workspace_bytes()");

  AttentionLaunch launch;
  launch.query = args.query;
  launch.query_bf16 = args.query_type == ElementType::BF16;
  launch.keys = kv.keys;
  launch.values = kv.values;
  launch.scales = kv.scales;
  launch.scale_head_stride = kv.scale_head_stride;
  launch.key_head_stride = kv.key_head_stride;
  launch.key_row_stride = kv.key_row_stride;
  launch.value_head_stride = kv.value_head_stride;
  launch.value_row_stride = kv.value_row_stride;
  launch.num_heads = args.num_heads;
  launch.num_kv_heads = kv.num_kv_heads;
  launch.group = group;
  launch.head_dim = kv.head_dim;
  launch.scale_log2 = float(1.4426950408889634 / std::sqrt(double(kv.head_dim)));
  launch.out = args.out;
  launch.out_bf16 = args.out_type == ElementType::BF16;

  int units = kv.num_kv_heads;
  if (args.sparse == nullptr) {
    require(args.seq_len > 0, "seq_len must be positive");
    launch.mode = PositionMode::Dense;
    launch.count = args.seq_len;
    launch.count_device = args.seq_len_device;
    if (args.scores != nullptr) {
      require(args.score_stride >= args.seq_len, "score_stride must be at least seq_len");
      launch.scores = args.scores;
      launch.score_stride = args.score_stride;
    }
  } else {
    const PositionLists& lists = *args.sparse;
    require(args.scores == nullptr, "scores are written by dense attention only");
    require(args.seq_len_device == nullptr, "a device seq_len is for dense attention only");
    require(lists.positions != nullptr && lists.count > 0, "sparse position lists must hold at least one position");
    require(lists.stride >= lists.count, "position list stride must be at least count");
    launch.count = lists.count;
    launch.positions = lists.positions;
    launch.position_stride = lists.stride;
    if (lists.sharing == PositionSharing::PerQueryHead) {
      launch.mode = PositionMode::PerQueryHead;
      units = args.num_heads;
    } else {
      launch.mode = PositionMode::PerKvHead;
    }
  }
  plan_splits(launch, units);
  float* partials = static_cast<float*>(args.workspace);
  launch.partial_acc = partials;
  launch.partial_stats = partials + size_t(args.num_heads) * launch.num_splits * kv.head_dim;
  launch.split_counters = reinterpret_cast<unsigned*>(partials + partial_floats(args.num_heads, kv.head_dim));
  throw_if_failed(detail::launch_decode_attention(launch, stream), "launching decode attention");
}

}  // namespace tidal::cuda
