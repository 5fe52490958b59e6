// Decode attention on the GPU (dense, dense with fused scores, sparse with per-query-head
// and per-KV-head lists) against the float64 reference.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "attention_reference.h"
#include "cuda/attention_kernels.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

constexpr int kKvHeads = 2;

std::string case_name(const char* kind, int64_t seq, int64_t count, int group, int head_dim, bool q_bf16,
                      bool out_bf16) {
  return std::string(kind) + " seq=" + std::to_string(seq) + (count >= 0 ? " k=" + std::to_string(count) : "") +
         " G=" + std::to_string(group) + " d=" + std::to_string(head_dim) + " q=" + (q_bf16 ? "bf16" : "f32") +
         " out=" + (out_bf16 ? "bf16" : "f32");
}

// An ascending list of `count` distinct positions below `seq` that ends with seq - 1 (the
// current token).
std::vector<int32_t> random_positions(Rng& rng, int64_t seq, int64_t count) {
  std::vector<int32_t> all(static_cast<size_t>(seq - 1));
  std::iota(all.begin(), all.end(), 0);
  for (int64_t i = 0; i < count - 1; ++i) std::swap(all[size_t(i)], all[size_t(i + rng.below(seq - 1 - i))]);
  std::vector<int32_t> list(all.begin(), all.begin() + (count - 1));
  list.push_back(int32_t(seq - 1));
  std::sort(list.begin(), list.end());
  return list;
}

struct Outputs {
  DeviceArray<uint8_t> out;
  DeviceArray<uint8_t> workspace;
  cuda::ElementType type;
  Outputs(int num_heads, int head_dim, cuda::ElementType type)
      : out(size_t(num_heads) * head_dim * (type == cuda::ElementType::BF16 ? 2 : 4)),
        workspace(cuda::decode_attention_workspace_bytes(num_heads, head_dim)),
        type(type) {
    out.poison();
    workspace.poison();  // the partials; the split counters must start cleared
    cuda::prepare_decode_attention_workspace(workspace.data(), num_heads, head_dim, nullptr);
  }
};

// `query`'s heads against `layer` into `outputs`; the caller adds seq_len or the lists.
cuda::DecodeAttentionArgs attention_args(const Query& query, int num_heads, const DeviceLayer& device,
                                         const HostLayer& layer, Outputs& outputs) {
  cuda::DecodeAttentionArgs args;
  args.query = query.device.data();
  args.query_type = query.type;
  args.num_heads = num_heads;
  args.kv = device.view(layer);
  args.out = outputs.out.data();
  args.out_type = outputs.type;
  args.workspace = outputs.workspace.data();
  args.workspace_bytes = outputs.workspace.size();
  return args;
}

// Every position below seq, for each of the heads: dense attention as lists.
std::vector<std::vector<int32_t>> every_position(int num_heads, int64_t seq) {
  std::vector<std::vector<int32_t>> lists(static_cast<size_t>(num_heads),
                                          std::vector<int32_t>(static_cast<size_t>(seq)));
  for (auto& list : lists) std::iota(list.begin(), list.end(), 0);
  return lists;
}

void test_dense(Report& report, Rng& rng, int64_t seq, int group, int head_dim, int variant) {
  if (quick_mode() && seq > 4097) return;
  const bool q_bf16 = variant % 2 == 1;
  const bool out_bf16 = variant % 3 == 0;
  const bool with_scores = variant % 2 == 0 || seq == 33333;
  const bool spike = variant % 2 == 1 || seq > 4000;
  const int num_heads = kKvHeads * group;
  HostLayer layer = make_layer(rng, kKvHeads, head_dim, seq + 3, variant % 4 == 3 ? 8 : 0, 8);
  Query query = make_query(rng, num_heads, head_dim, q_bf16);
  if (spike) add_spike(layer, query.values, group, rng.below(seq));
  DeviceLayer device(layer);

  const cuda::ElementType out_type = out_bf16 ? cuda::ElementType::BF16 : cuda::ElementType::F32;
  Outputs outputs(num_heads, head_dim, out_type);
  const int64_t score_stride = seq + 5;
  DeviceArray<float> scores(size_t(num_heads) * score_stride);
  scores.poison();

  cuda::DecodeAttentionArgs args = attention_args(query, num_heads, device, layer, outputs);
  args.seq_len = seq;
  if (with_scores) {
    args.scores = scores.data();
    args.score_stride = score_stride;
  }
  cuda::decode_attention(args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "decode attention");

  std::vector<double> ref;
  std::vector<std::vector<double>> ref_scores, magnitude;
  reference_attention(layer, query.values, num_heads, every_position(num_heads, seq), ref, &ref_scores, &magnitude);
  const std::vector<double> got = download_output(outputs.out, out_type, ref.size());
  const double error = relative_l2(ref, got);
  const double tolerance = out_bf16 ? kAttentionTolBf16 : kAttentionTolF32;
  const std::string name =
      case_name(with_scores ? "dense+scores" : "dense", seq, -1, group, head_dim, q_bf16, out_bf16) +
      (spike ? " spike" : "");
  report.check(error < tolerance, name, "rel L2 " + format("%.2e", error));

  if (with_scores) {
    const std::vector<float> s = scores.download();
    int64_t bad = 0, padding_written = 0;
    double worst = 0;
    for (int h = 0; h < num_heads; ++h) {
      for (int64_t i = 0; i < seq; ++i) {
        const double value = s[size_t(h * score_stride + i)];
        const double diff = std::fabs(value - ref_scores[size_t(h)][size_t(i)]);
        const double bound = 1e-5 * magnitude[size_t(h)][size_t(i)] + 1e-7;
        worst = std::max(worst, diff / bound);
        if (!(diff <= bound)) ++bad;
      }
      for (int64_t i = seq; i < score_stride; ++i)
        if (!std::isnan(s[size_t(h * score_stride + i)])) ++padding_written;
    }
    report.check(bad == 0 && padding_written == 0, name + " scores",
                 std::to_string(bad) + " wrong, " + std::to_string(padding_written) +
                     " padding written, worst error/bound " + format("%.2f", worst));
  }
}

void test_sparse(Report& report, Rng& rng, int64_t seq, int64_t count, int group, int head_dim,
                 cuda::PositionSharing sharing, int variant) {
  if (quick_mode() && seq > 4097) return;
  const bool q_bf16 = variant % 2 == 0;
  const bool out_bf16 = variant % 3 == 1;
  const int num_heads = kKvHeads * group;
  HostLayer layer = make_layer(rng, kKvHeads, head_dim, seq, 0, 0);
  Query query = make_query(rng, num_heads, head_dim, q_bf16);
  const bool per_head = sharing == cuda::PositionSharing::PerQueryHead;
  const int num_lists = per_head ? num_heads : kKvHeads;
  std::vector<std::vector<int32_t>> lists;
  for (int r = 0; r < num_lists; ++r) lists.push_back(random_positions(rng, seq, count));
  // A spike on a listed position of each list's first head.
  if (variant % 2 == 1) add_spike(layer, query.values, group, lists[0][size_t(rng.below(count))]);
  DeviceLayer device(layer);

  const int64_t stride = count + 3;
  std::vector<int32_t> flat(size_t(num_lists * stride), -1);
  for (int r = 0; r < num_lists; ++r)
    std::copy(lists[size_t(r)].begin(), lists[size_t(r)].end(), flat.begin() + r * stride);
  DeviceArray<int32_t> positions(flat);

  const cuda::ElementType out_type = out_bf16 ? cuda::ElementType::BF16 : cuda::ElementType::F32;
  Outputs outputs(num_heads, head_dim, out_type);
  cuda::PositionLists sparse;
  sparse.positions = positions.data();
  sparse.stride = stride;
  sparse.count = count;
  sparse.sharing = sharing;
  cuda::DecodeAttentionArgs args = attention_args(query, num_heads, device, layer, outputs);
  args.sparse = &sparse;
  cuda::decode_attention(args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "sparse attention");

  std::vector<std::vector<int32_t>> head_lists;
  for (int h = 0; h < num_heads; ++h) head_lists.push_back(lists[size_t(per_head ? h : h / group)]);
  std::vector<double> ref;
  reference_attention(layer, query.values, num_heads, head_lists, ref);
  const double error = relative_l2(ref, download_output(outputs.out, out_type, ref.size()));
  report.check(
      error < (out_bf16 ? kAttentionTolBf16 : kAttentionTolF32),
      case_name(per_head ? "sparse/query-head" : "sparse/kv-head", seq, count, group, head_dim, q_bf16, out_bf16),
      "rel L2 " + format("%.2e", error));
}

// A replayed decode graph reads seq_len from the device, below the bound the split plan was made
// for: the rows between them hold NaN, so attending any of them shows in the result.
void test_device_seq_len(Report& report, Rng& rng, int64_t seq, int64_t bound, int group, int head_dim) {
  if (quick_mode() && bound > 4097) return;
  const int num_heads = kKvHeads * group;
  HostLayer layer = make_layer(rng, kKvHeads, head_dim, bound, 0, 0);
  const uint16_t nan_bits = 0x7fc0;
  for (int j = 0; j < kKvHeads; ++j)
    for (int64_t position = seq; position < bound; ++position)
      for (int i = 0; i < head_dim; ++i) {
        layer.keys[layer.key_index(j, position, i)] = nan_bits;
        layer.values[layer.value_index(j, position, i)] = nan_bits;
      }
  Query query = make_query(rng, num_heads, head_dim, false);
  DeviceLayer device(layer);
  DeviceArray<int64_t> seq_len(std::vector<int64_t>{seq});
  Outputs outputs(num_heads, head_dim, cuda::ElementType::F32);
  cuda::DecodeAttentionArgs args = attention_args(query, num_heads, device, layer, outputs);
  args.seq_len = bound;
  args.seq_len_device = seq_len.data();
  cuda::decode_attention(args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "decode attention, device seq_len");
  std::vector<double> ref;
  reference_attention(layer, query.values, num_heads, every_position(num_heads, seq), ref);
  const double error = relative_l2(ref, download_output(outputs.out, cuda::ElementType::F32, ref.size()));
  report.check(error < kAttentionTolF32,
               "dense, device seq_len=" + std::to_string(seq) + " of " + std::to_string(bound) +
                   " G=" + std::to_string(group) + " d=" + std::to_string(head_dim),
               "rel L2 " + format("%.2e", error));
}

// A per-KV-head list holding every position must give bitwise the dense result.
void test_full_list_equals_dense(Report& report, Rng& rng, int64_t seq, int group, int head_dim) {
  if (quick_mode() && seq > 4097) return;
  const int num_heads = kKvHeads * group;
  HostLayer layer = make_layer(rng, kKvHeads, head_dim, seq, 0, 0);
  Query query = make_query(rng, num_heads, head_dim, false);
  DeviceLayer device(layer);
  std::vector<int32_t> flat(size_t(kKvHeads * seq));
  for (int j = 0; j < kKvHeads; ++j) std::iota(flat.begin() + j * seq, flat.begin() + (j + 1) * seq, 0);
  DeviceArray<int32_t> positions(flat);
  Outputs dense(num_heads, head_dim, cuda::ElementType::F32), sparse(num_heads, head_dim, cuda::ElementType::F32);

  cuda::DecodeAttentionArgs args = attention_args(query, num_heads, device, layer, dense);
  args.seq_len = seq;
  cuda::decode_attention(args, nullptr);
  cuda::PositionLists lists;
  lists.positions = positions.data();
  lists.stride = seq;
  lists.count = seq;
  lists.sharing = cuda::PositionSharing::PerKvHead;
  args.sparse = &lists;
  args.out = sparse.out.data();
  args.workspace = sparse.workspace.data();
  cuda::decode_attention(args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "dense vs full list");
  const std::vector<uint8_t> a = dense.out.download(), b = sparse.out.download();
  report.check(a == b, "full per-KV-head list == dense, bitwise, seq=" + std::to_string(seq) +
                           " G=" + std::to_string(group) + " d=" + std::to_string(head_dim));
}

}  // namespace

void test_decode_attention(Report& report) {
  Rng rng(20241008);
  int variant = 0;
  for (int64_t seq : {1, 17, 1000, 4097, 33333})
    for (int group : {1, 4, 7})
      for (int head_dim : {64, 128}) test_dense(report, rng, seq, group, head_dim, variant++);
  for (int group : {2, 3, 5, 8}) test_dense(report, rng, 1000, group, 128, variant++);

  struct Size {
    int64_t seq, count;
  };
  for (Size size : {Size{17, 17}, Size{1000, 100}, Size{4097, 2048}, Size{33333, 2048}, Size{33333, 4096}})
    for (int group : {1, 4, 7})
      for (auto sharing : {cuda::PositionSharing::PerQueryHead, cuda::PositionSharing::PerKvHead}) {
        const int head_dim = variant % 2 == 0 ? 128 : 64;
        test_sparse(report, rng, size.seq, size.count, group, head_dim, sharing, variant++);
      }

  test_device_seq_len(report, rng, 1000, 4097, 4, 128);
  test_device_seq_len(report, rng, 20000, 33333, 7, 64);
  test_device_seq_len(report, rng, 777, 1000, 1, 128);
  test_full_list_equals_dense(report, rng, 1000, 1, 128);
  test_full_list_equals_dense(report, rng, 4097, 4, 128);
  test_full_list_equals_dense(report, rng, 33333, 7, 64);
}

}  // namespace tidal::gpu_test
