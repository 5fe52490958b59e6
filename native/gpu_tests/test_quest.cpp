// Quest on the GPU: page min/max metadata (full build and an append that must touch only the
// last pages), page upper bounds (against float64, and never below the true best q . k of
// the page), and the whole step: bounds -> top pages -> positions -> sparse attention.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "attention_reference.h"
#include "cuda/attention_kernels.h"
#include "cuda/quest_kernels.h"
#include "cuda/selection_kernels.h"
#include "engine/decoder.h"
#include "test_support.h"

namespace tidal::gpu_test {

namespace {

constexpr int64_t kPage = cuda::kQuestPageTokens;

struct PageTables {
  int64_t max_pages = 0;
  int64_t head_stride = 0;
  DeviceArray<uint16_t> key_min, key_max;
  PageTables(int kv_heads, int head_dim, int64_t pages)
      : max_pages(pages),
        head_stride(pages * head_dim + 8),
        key_min(size_t(kv_heads * (pages * head_dim + 8))),
        key_max(size_t(kv_heads * (pages * head_dim + 8))) {
    key_min.poison();
    key_max.poison();
  }
  cuda::QuestPageTable view() const {
    cuda::QuestPageTable table;
    table.key_min = key_min.data();
    table.key_max = key_max.data();
    table.head_stride = head_stride;
    table.max_pages = max_pages;
    return table;
  }
};

// Number of page entries (over all heads and pages < pages) that differ from the element-
// wise min/max of the keys of positions < seq_len.
int64_t page_mismatches(const HostLayer& layer, const PageTables& tables, int64_t first_page, int64_t pages,
                        int64_t seq_len) {
  const std::vector<uint16_t> lo = tables.key_min.download(), hi = tables.key_max.download();
  int64_t bad = 0;
  const int d = layer.head_dim;
  for (int j = 0; j < layer.kv_heads; ++j)
    for (int64_t page = first_page; page < pages; ++page)
      for (int i = 0; i < d; ++i) {
        float mn = INFINITY, mx = -INFINITY;
        for (int64_t p = page * kPage; p < std::min(seq_len, (page + 1) * kPage); ++p) {
          mn = std::min(mn, float(layer.key(j, p, i)));
          mx = std::max(mx, float(layer.key(j, p, i)));
        }
        const size_t index = size_t(j * tables.head_stride + page * d + i);
        if (from_bf16(lo[index]) != mn || from_bf16(hi[index]) != mx) ++bad;
      }
  return bad;
}

void test_page_update(Report& report, Rng& rng, int head_dim) {
  const int kv_heads = 3;
  const int64_t seq = 4097, appended = 20;
  HostLayer layer = make_layer(rng, kv_heads, head_dim, seq + appended, 0, 8);
  DeviceLayer device(layer);
  PageTables tables(kv_heads, head_dim, 300);
  cuda::update_quest_pages(device.view(layer), tables.view(), 0, seq, nullptr);
  check_cuda(cudaDeviceSynchronize(), "page build");
  const int64_t pages = cuda::quest_page_count(seq);
  int64_t bad = page_mismatches(layer, tables, 0, pages, seq);
  // Pages past the cache stay untouched (still NaN).
  const std::vector<uint16_t> lo = tables.key_min.download();
  int64_t written_beyond = 0;
  for (int j = 0; j < kv_heads; ++j)
    for (int64_t i = pages * head_dim; i < tables.head_stride; ++i)
      if (lo[size_t(j * tables.head_stride + i)] != 0xFFFF) ++written_beyond;
  report.check(bad == 0 && written_beyond == 0, "quest page build seq=4097 d=" + std::to_string(head_dim),
               std::to_string(bad) + " wrong, " + std::to_string(written_beyond) + " written past the cache");

  // Mark every page before the last with a sentinel; appending must leave them alone.
  const int64_t last_page = (seq - 1) / kPage;
  for (int j = 0; j < kv_heads; ++j) {
    check_cuda(cudaMemset(tables.key_min.data() + j * tables.head_stride, 0x3C, size_t(last_page * head_dim) * 2),
               "mark");
    check_cuda(cudaMemset(tables.key_max.data() + j * tables.head_stride, 0x3C, size_t(last_page * head_dim) * 2),
               "mark");
  }
  cuda::update_quest_pages(device.view(layer), tables.view(), seq, seq + appended, nullptr);
  check_cuda(cudaDeviceSynchronize(), "page update");
  const int64_t new_pages = cuda::quest_page_count(seq + appended);
  bad = page_mismatches(layer, tables, last_page, new_pages, seq + appended);
  const std::vector<uint16_t> lo2 = tables.key_min.download(), hi2 = tables.key_max.download();
  int64_t touched = 0;
  for (int j = 0; j < kv_heads; ++j)
    for (int64_t i = 0; i < last_page * head_dim; ++i)
      if (lo2[size_t(j * tables.head_stride + i)] != 0x3C3C || hi2[size_t(j * tables.head_stride + i)] != 0x3C3C)
        ++touched;
  report.check(bad == 0 && touched == 0, "quest page append 4097->4117 d=" + std::to_string(head_dim),
               std::to_string(bad) + " wrong, " + std::to_string(touched) + " earlier entries touched");
}

// Bounds against float64, the bound property, then selection, expansion and attention.
void test_quest_step(Report& report, Rng& rng, int64_t seq, int group, int head_dim, int64_t budget_tokens,
                     bool q_bf16) {
  if (quick_mode() && seq > 4097) return;
  const int kv_heads = 2;
  const int num_heads = kv_heads * group;
  HostLayer layer = make_layer(rng, kv_heads, head_dim, seq, 0, 0);
  Query query = make_query(rng, num_heads, head_dim, q_bf16);
  add_spike(layer, query.values, group, rng.below(seq));
  DeviceLayer device(layer);
  const int64_t pages = cuda::quest_page_count(seq);
  PageTables tables(kv_heads, head_dim, pages + 1);
  cuda::update_quest_pages(device.view(layer), tables.view(), 0, seq, nullptr);

  const int64_t bounds_stride = pages + 3;
  DeviceArray<float> bounds(size_t(num_heads * bounds_stride));
  bounds.poison();
  cuda::QuestScoreArgs score_args;
  score_args.query = query.device.data();
  score_args.query_type = query.type;
  score_args.num_heads = num_heads;
  score_args.num_kv_heads = kv_heads;
  score_args.head_dim = head_dim;
  score_args.pages = tables.view();
  score_args.num_pages = pages;
  score_args.bounds = bounds.data();
  score_args.bounds_stride = bounds_stride;
  cuda::quest_page_scores(score_args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "quest page scores");
  const std::vector<float> got_bounds = bounds.download();

  const std::string name = "quest seq=" + std::to_string(seq) + " G=" + std::to_string(group) +
                           " d=" + std::to_string(head_dim) + " budget=" + std::to_string(budget_tokens) +
                           (q_bf16 ? " q=bf16" : " q=f32");
  const double scale = 1.0 / std::sqrt(double(head_dim));
  int64_t wrong = 0, below_true_max = 0;
  for (int h = 0; h < num_heads; ++h) {
    const int j = h / group;
    const float* q = &query.values[size_t(h * head_dim)];
    for (int64_t page = 0; page < pages; ++page) {
      double bound = 0, magnitude = 0;
      std::vector<double> lo(size_t(head_dim), INFINITY), hi(size_t(head_dim), -INFINITY);
      double true_max = -INFINITY;
      for (int64_t p = page * kPage; p < std::min(seq, (page + 1) * kPage); ++p) {
        double dot = 0;
        for (int i = 0; i < head_dim; ++i) {
          const double k = layer.key(j, p, i);
          dot += q[i] * k;
          lo[size_t(i)] = std::min(lo[size_t(i)], k);
          hi[size_t(i)] = std::max(hi[size_t(i)], k);
        }
        true_max = std::max(true_max, dot * scale);
      }
      for (int i = 0; i < head_dim; ++i) {
        bound += std::max(q[i] * lo[size_t(i)], q[i] * hi[size_t(i)]);
        magnitude += std::fabs(q[i]) * std::max(std::fabs(lo[size_t(i)]), std::fabs(hi[size_t(i)]));
      }
      bound *= scale;
      // float32 rounding of a 64-128 term sum: well under 1e-5 of the sum of magnitudes.
      const double tolerance = 1e-5 * magnitude * scale;
      const double value = got_bounds[size_t(h * bounds_stride + page)];
      if (!(std::fabs(value - bound) <= tolerance)) ++wrong;
      if (!(value >= true_max - tolerance)) ++below_true_max;
    }
    for (int64_t page = pages; page < bounds_stride; ++page)
      if (!std::isnan(got_bounds[size_t(h * bounds_stride + page)])) ++wrong;
  }
  report.check(wrong == 0 && below_true_max == 0, name + " bounds",
               std::to_string(wrong) + " wrong, " + std::to_string(below_true_max) + " below the page's best q.k");

  // Top pages per head: the last page always, plus the best page_budget - 1 of the others.
  const int64_t page_budget = budget_tokens / kPage;
  cuda::TopKArgs select;
  select.scores = bounds.data();
  select.score_stride = bounds_stride;
  select.rows = num_heads;
  select.candidates = pages - 1;
  select.k = page_budget - 1;
  select.append_position = pages - 1;
  const int64_t chosen = cuda::top_k_output_count(select);
  select.out_stride = chosen;
  DeviceArray<int32_t> page_lists(size_t(num_heads * chosen));
  page_lists.poison();
  select.out = page_lists.data();
  cuda::select_top_k(select, nullptr);
  const int64_t count = quest_position_count(seq, page_budget);
  const int64_t position_stride = chosen * kPage;
  DeviceArray<int32_t> positions(size_t(num_heads * position_stride));
  positions.poison();
  cuda::expand_pages(page_lists.data(), num_heads, chosen, chosen, seq, positions.data(), position_stride, nullptr);

  cuda::PositionLists lists;
  lists.positions = positions.data();
  lists.stride = position_stride;
  lists.count = count;
  lists.sharing = cuda::PositionSharing::PerQueryHead;
  DeviceArray<float> out(size_t(num_heads * head_dim));
  out.poison();
  DeviceArray<uint8_t> workspace(cuda::decode_attention_workspace_bytes(num_heads, head_dim));
  workspace.poison();
  cuda::prepare_decode_attention_workspace(workspace.data(), num_heads, head_dim, nullptr);
  cuda::DecodeAttentionArgs args;
  args.query = query.device.data();
  args.query_type = query.type;
  args.num_heads = num_heads;
  args.kv = device.view(layer);
  args.sparse = &lists;
  args.out = out.data();
  args.workspace = workspace.data();
  args.workspace_bytes = workspace.size();
  cuda::decode_attention(args, nullptr);
  check_cuda(cudaDeviceSynchronize(), "quest selection and attention");

  // Expected pages: brute force over the GPU's own bounds (ties: lower page first).
  const std::vector<int32_t> got_pages = page_lists.download(), got_positions = positions.download();
  int64_t bad_lists = 0;
  std::vector<std::vector<int32_t>> head_lists;
  for (int h = 0; h < num_heads; ++h) {
    const float* b = &got_bounds[size_t(h * bounds_stride)];
    std::vector<int32_t> order(size_t(pages - 1));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [b](int32_t x, int32_t y) { return b[x] != b[y] ? b[x] > b[y] : x < y; });
    order.resize(size_t(std::min(page_budget - 1, pages - 1)));
    std::sort(order.begin(), order.end());
    order.push_back(int32_t(pages - 1));
    std::vector<int32_t> expected_positions;
    for (int32_t page : order)
      for (int64_t p = page * kPage; p < std::min(seq, (page + 1) * kPage); ++p)
        expected_positions.push_back(int32_t(p));
    bool ok = int64_t(expected_positions.size()) == count;
    for (size_t i = 0; ok && i < order.size(); ++i) ok = got_pages[size_t(h * chosen) + i] == order[i];
    for (int64_t i = 0; ok && i < position_stride; ++i) {
      const int32_t value = got_positions[size_t(h * position_stride + i)];
      ok = i < count ? value == expected_positions[size_t(i)] : value == -1;
    }
    if (!ok) ++bad_lists;
    head_lists.push_back(expected_positions);
  }
  report.check(bad_lists == 0, name + " pages and positions", std::to_string(bad_lists) + " heads differ");

  std::vector<double> ref;
  reference_attention(layer, query.values, num_heads, head_lists, ref);
  const std::vector<float> got = out.download();
  const double error = relative_l2(ref, std::vector<double>(got.begin(), got.end()));
  report.check(error < kAttentionTolF32, name + " attention", "rel L2 " + format("%.2e", error));
}

}  // namespace

void test_quest(Report& report) {
  Rng rng(160016);
  test_page_update(report, rng, 64);
  test_page_update(report, rng, 128);
  test_quest_step(report, rng, 17, 1, 128, 16, false);
  test_quest_step(report, rng, 1000, 4, 64, 256, true);
  test_quest_step(report, rng, 4097, 7, 128, 2048, false);
  test_quest_step(report, rng, 33333, 4, 128, 2048, true);
  test_quest_step(report, rng, 33333, 1, 64, 4096, false);
  test_quest_step(report, rng, 1000, 4, 128, 4096, false);  // budget above the context: every page
}

}  // namespace tidal::gpu_test
