// GPU tests of the CUDA backend: the model kernels (prefill attention, RMSNorm, RoPE with
// llama3 scaling, SwiGLU, argmax) against float64 CPU references on random inputs of awkward
// sizes, and whole-model logits of the CUDA backend against the CPU backend (the reference,
// itself checked against transformers in native/tests) on random bf16 models of every
// architecture and on models whose matrices, the embedding included, are Q4_K, Q8_0 or Q6_K
// (tied: the quantised embedding is the output too): prefill in chunks, decode with full,
// tidal and quest attention, graph replay against plain launches, fork and trim, the weights'
// device bytes, and prefill products in many slices of a small dequantisation scratch against
// unsliced ones. The random quantised weights of `tidal bench` are checked for their formats'
// bytes and finite logits. Outputs are poisoned before every run.
#include <cuda_runtime_api.h>
#include <atomic>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench/shapes.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "decode_modes.h"
#include "engine/attention_plan.h"
#include "engine/model_weights.h"
#include "engine/synthetic_model.h"
#include "kernels/gemv.h"
#include "kernels/prefill_attention.h"
#include "kernels/quant_format.h"
#include "kernels/rms_norm.h"
#include "kernels/rope.h"
#include "kernels/sampling.h"
#include "kernels/swiglu.h"
#include "late_writer.h"
#include "prefill_variants.h"
#include "small_model.h"
#include "test_support.h"
#include "tidal/engine.h"
#include "tidal/error.h"

namespace tidal::gpu_test {

namespace {

std::vector<double> widen(const std::vector<uint16_t>& bits) {
  std::vector<double> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = from_bf16(bits[i]);
  return out;
}
std::vector<double> widen(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

std::vector<uint16_t> random_bf16_vector(Rng& rng, size_t count, double lo = -1.0, double hi = 1.0) {
  std::vector<uint16_t> out(count);
  for (uint16_t& v : out) v = random_bf16(rng, lo, hi);
  return out;
}

void test_prefill_attention(Report& report) {
  struct Case {
    int tokens;
    int64_t start;
    int heads, kv_heads, head_dim;
  };
  const Case cases[] = {{77, 0, 4, 2, 128},     {130, 45, 8, 2, 64}, {64, 0, 2, 2, 128},
                        {200, 1000, 8, 2, 128}, {2, 3, 4, 4, 64},    {333, 131, 4, 1, 128}};
  Rng rng(11);
  for (const Case& c : cases) {
    const int64_t total = c.start + c.tokens;
    const int64_t capacity = (total + 255) / 256 * 256 + 16;  // an odd capacity: rows past total hold garbage
    const int group = c.heads / c.kv_heads;
    std::vector<uint16_t> q = random_bf16_vector(rng, size_t(c.tokens) * c.heads * c.head_dim);
    std::vector<uint16_t> k = random_bf16_vector(rng, size_t(c.kv_heads) * capacity * c.head_dim, -2, 2);
    std::vector<uint16_t> v = random_bf16_vector(rng, size_t(c.kv_heads) * capacity * c.head_dim);
    // Past the valid positions: NaN, which must never leak into the output.
    for (int h = 0; h < c.kv_heads; ++h)
      for (int64_t p = total; p < capacity; ++p)
        for (int i = 0; i < c.head_dim; ++i) {
          k[(h * capacity + p) * c.head_dim + i] = 0x7fc0;
          v[(h * capacity + p) * c.head_dim + i] = 0x7fc0;
        }
    DeviceArray<uint16_t> dq(q), dk(k), dv(v), dout(q.size());
    for (const PrefillVariant& variant : prefill_variants()) {
      dout.poison();
      cuda::PrefillAttentionLaunch p;
      p.warps = variant.warps;
      p.kernel = variant.kernel;
      p.q = dq.data();
      p.keys = dk.data();
      p.values = dv.data();
      p.head_stride = capacity * c.head_dim;
      p.tokens = c.tokens;
      p.heads = c.heads;
      p.kv_heads = c.kv_heads;
      p.head_dim = c.head_dim;
      p.start = c.start;
      p.scale = float(1.0 / std::sqrt(double(c.head_dim)));
      p.out = dout.data();
      check_cuda(cuda::launch_prefill_attention(p, nullptr), "prefill attention");
      check_cuda(cudaDeviceSynchronize(), "prefill attention");
      const std::vector<double> got = widen(dout.download());
      std::vector<double> ref(got.size());
      std::vector<double> scores;
      for (int t = 0; t < c.tokens; ++t)
        for (int h = 0; h < c.heads; ++h) {
          const int j = h / group;
          const int64_t visible = c.start + t + 1;
          scores.assign(size_t(visible), 0.0);
          double top = -INFINITY;
          for (int64_t s = 0; s < visible; ++s) {
            double dot = 0;
            for (int i = 0; i < c.head_dim; ++i)
              dot += double(from_bf16(q[(size_t(t) * c.heads + h) * c.head_dim + i])) *
                     from_bf16(k[(j * capacity + s) * c.head_dim + i]);
            scores[size_t(s)] = dot * p.scale;
            top = std::max(top, scores[size_t(s)]);
          }
          double sum = 0;
          for (double& s : scores) sum += (s = std::exp(s - top));
          for (int i = 0; i < c.head_dim; ++i) {
            double acc = 0;
            for (int64_t s = 0; s < visible; ++s)
              acc += scores[size_t(s)] * from_bf16(v[(j * capacity + s) * c.head_dim + i]);
            ref[(size_t(t) * c.heads + h) * c.head_dim + i] = acc / sum;
          }
        }
      const double error = relative_l2(ref, got);
      char name[160];
      std::snprintf(name, sizeof name, "prefill attention tokens=%d start=%lld heads=%d/%d d=%d %s", c.tokens,
                    static_cast<long long>(c.start), c.heads, c.kv_heads, c.head_dim, variant.name);
      report.check(error < 1e-2, name, format("rel L2 %.2e", error));
    }
  }
}

void test_elementwise(Report& report) {
  Rng rng(12);
  {  // RMSNorm of awkward widths, bf16 out.
    for (int width : {64, 1000, 4096, 4099, 14336}) {
      const int rows = 7;
      std::vector<float> x(size_t(rows) * width), w(static_cast<size_t>(width));
      for (float& value : x) value = float(rng.uniform(-3, 3));
      for (float& value : w) value = float(rng.uniform(0.5, 1.5));
      DeviceArray<float> dx(x), dw(w);
      DeviceArray<uint16_t> out(x.size());
      out.poison();
      check_cuda(cuda::launch_rms_norm(dx.data(), width, dw.data(), rows, width, 1e-6f, out.data(), width, nullptr),
                 "rms_norm");
      const std::vector<double> got = widen(out.download());
      std::vector<double> ref(got.size());
      for (int r = 0; r < rows; ++r) {
        double sum = 0;
        for (int i = 0; i < width; ++i) sum += double(x[size_t(r) * width + i]) * x[size_t(r) * width + i];
        const double inv = 1.0 / std::sqrt(sum / width + 1e-6);
        for (int i = 0; i < width; ++i) ref[size_t(r) * width + i] = x[size_t(r) * width + i] * inv * w[size_t(i)];
      }
      const double error = relative_l2(ref, got);
      report.check(error < 5e-3, "rms_norm width " + std::to_string(width), format("rel L2 %.2e", error));
    }
  }
  {  // RoPE with llama3-scaled frequencies at large positions, q and k heads, bf16 copy of q.
    const int tokens = 5, heads = 4, kv_heads = 2, d = 128, half = d / 2;
    const int64_t start = 100003;
    const int64_t stride = int64_t(heads + 2 * kv_heads) * d;
    std::vector<float> inv(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
      double f = std::pow(500000.0, -2.0 * i / d);
      const double wavelength = 2 * M_PI / f;
      if (wavelength > 8192)
        f /= 8;
      else if (wavelength >= 2048) {
        const double smooth = (8192 / wavelength - 1) / 3;
        f = (1 - smooth) * f / 8 + smooth * f;
      }
      inv[size_t(i)] = float(f);
    }
    std::vector<float> qkv(size_t(tokens) * stride);
    for (float& value : qkv) value = float(rng.uniform());
    DeviceArray<float> dqkv(qkv), dinv(inv);
    DeviceArray<uint16_t> qb(size_t(tokens) * heads * d);
    qb.poison();
    cuda::RopeLaunch r;
    r.qkv = dqkv.data();
    r.stride = stride;
    r.tokens = tokens;
    r.heads = heads;
    r.kv_heads = kv_heads;
    r.head_dim = d;
    r.inv_freq = dinv.data();
    r.start = start;
    r.q_bf16 = qb.data();
    check_cuda(cuda::launch_rope(r, nullptr), "rope");
    const std::vector<double> got = widen(dqkv.download());
    std::vector<double> ref = widen(qkv);
    for (int t = 0; t < tokens; ++t)
      for (int h = 0; h < heads + kv_heads; ++h)
        for (int i = 0; i < half; ++i) {
          const double angle = double(float(start + t) * inv[size_t(i)]);
          const size_t a = size_t(t) * stride + size_t(h) * d + i, b = a + half;
          ref[a] = qkv[a] * std::cos(angle) - qkv[b] * std::sin(angle);
          ref[b] = qkv[b] * std::cos(angle) + qkv[a] * std::sin(angle);
        }
    const double error = relative_l2(ref, got);
    report.check(error < 1e-6, "rope llama3 at position 100003", format("rel L2 %.2e", error));
    const std::vector<double> qgot = widen(qb.download());
    std::vector<double> qref(qgot.size());
    for (int t = 0; t < tokens; ++t)
      for (int i = 0; i < heads * d; ++i) qref[size_t(t) * heads * d + i] = ref[size_t(t) * stride + i];
    const double qerror = relative_l2(qref, qgot);
    report.check(qerror < 5e-3, "rope bf16 copy of q", format("rel L2 %.2e", qerror));
  }
  for (int inner : {1377, 14336}) {  // SwiGLU, an odd width (scalar path) and a model's (vector path).
    const int tokens = 3;
    std::vector<float> gu(size_t(tokens) * 2 * inner);
    for (float& value : gu) value = float(rng.uniform(-4, 4));
    DeviceArray<float> dgu(gu);
    DeviceArray<uint16_t> out(size_t(tokens) * inner);
    out.poison();
    check_cuda(cuda::launch_swiglu(dgu.data(), tokens, inner, out.data(), nullptr), "swiglu");
    const std::vector<double> got = widen(out.download());
    std::vector<double> ref(got.size());
    for (int t = 0; t < tokens; ++t)
      for (int i = 0; i < inner; ++i) {
        const double g = gu[size_t(t) * 2 * inner + i], u = gu[size_t(t) * 2 * inner + inner + i];
        ref[size_t(t) * inner + i] = g / (1 + std::exp(-g)) * u;
      }
    const double error = relative_l2(ref, got);
    report.check(error < 5e-3, "swiglu inner " + std::to_string(inner), format("rel L2 %.2e", error));
  }
  {  // One-token GEMV, awkward shapes, beta 0 (y poisoned) and 1 (accumulate).
    for (auto [rows, cols] : {std::pair<int, int>{1003, 4104}, {37, 8}, {4096, 14336}, {5, 30008}}) {
      std::vector<uint16_t> w = random_bf16_vector(rng, size_t(rows) * cols), x = random_bf16_vector(rng, size_t(cols));
      std::vector<float> y0(static_cast<size_t>(rows));
      for (float& value : y0) value = float(rng.uniform());
      DeviceArray<uint16_t> dw(w), dx(x), late_x(static_cast<size_t>(cols));
      DeviceArray<float> dy(static_cast<size_t>(rows)), dy0(y0);
      // Plain, then launched early (kernels/common.cuh) behind a kernel that writes x and y only
      // after a delay, over a poisoned x and y.
      for (const auto& [beta, early] :
           {std::pair<float, bool>{0.0f, false}, {1.0f, false}, {0.0f, true}, {1.0f, true}}) {
        if (beta == 0.0f || early)
          dy.poison();
        else
          dy.upload(y0);
        if (!early) {
          check_cuda(cuda::launch_gemv(dw.data(), rows, cols, dx.data(), dy.data(), beta, nullptr), "gemv");
        } else {
          late_x.poison();
          const void* from[2] = {dx.data(), dy0.data()};
          void* to[2] = {late_x.data(), dy.data()};
          const size_t bytes[2] = {size_t(cols) * 2, beta != 0.0f ? size_t(rows) * 4 : 0};
          behind_late_copy(from, to, bytes, [&](cudaStream_t stream) {
            return cuda::launch_gemv(dw.data(), rows, cols, late_x.data(), dy.data(), beta, stream, true);
          });
        }
        const std::vector<double> got = widen(dy.download());
        std::vector<double> ref(got.size());
        for (int r = 0; r < rows; ++r) {
          double acc = beta * double(y0[size_t(r)]);
          for (int c = 0; c < cols; ++c) acc += double(from_bf16(w[size_t(r) * cols + c])) * from_bf16(x[size_t(c)]);
          ref[size_t(r)] = acc;
        }
        const double error = relative_l2(ref, got);
        report.check(error < 1e-5,
                     "gemv " + std::to_string(rows) + "x" + std::to_string(cols) + " beta " +
                         std::to_string(int(beta)) + (early ? " early" : ""),
                     format("rel L2 %.2e", error));
      }
    }
  }
  // The bf16 GEMV ending in SwiGLU against the plain GEMV then launch_swiglu, bit for bit, with
  // poisoned outputs past `inner` (an odd count: a partial block of 4 outputs).
  for (const auto& [inner, cols] : {std::pair<int64_t, int>{13, 896}, {4864, 896}}) {
    const std::vector<uint16_t> w = random_bf16_vector(rng, size_t(2 * inner) * size_t(cols)),
                                x = random_bf16_vector(rng, size_t(cols));
    DeviceArray<uint16_t> dw(w), dx(x), composed(size_t(inner + 8)), fused(size_t(inner + 8));
    DeviceArray<float> sums(size_t(2 * inner));
    sums.poison();
    composed.poison();
    fused.poison();
    check_cuda(cuda::launch_gemv(dw.data(), 2 * inner, cols, dx.data(), sums.data(), 0.0f, nullptr), "gemv");
    check_cuda(cuda::launch_swiglu(sums.data(), 1, static_cast<int>(inner), composed.data(), nullptr), "swiglu");
    check_cuda(cuda::launch_gemv_swiglu(dw.data(), inner, cols, dx.data(), fused.data(), nullptr), "gemv with SwiGLU");
    const std::vector<uint16_t> want = composed.download(), got = fused.download();
    size_t differing = 0;
    for (int64_t i = 0; i < inner; ++i) differing += want[size_t(i)] != got[size_t(i)];
    bool tail = true;
    for (int64_t i = inner; i < inner + 8; ++i) tail = tail && got[size_t(i)] == 0xFFFFu;
    report.check(differing == 0 && tail,
                 "gemv ending in SwiGLU, inner " + std::to_string(inner) + ": equals gemv then SwiGLU, bit for bit",
                 std::to_string(differing) + " differ" + (tail ? "" : ", wrote past the outputs"));
  }
  {  // Argmax with a tie (lowest index wins) and a NaN (never wins), 151936 wide.
    const int64_t width = 151936;
    std::vector<float> logits(size_t(2 * width));
    for (float& value : logits) value = float(rng.uniform(-5, 5));
    logits[size_t(9000)] = 7.0f;
    logits[size_t(120000)] = 7.0f;
    logits[size_t(width + 5)] = NAN;
    logits[size_t(width + 77777)] = 9.0f;
    DeviceArray<float> dl(logits);
    DeviceArray<int32_t> out(2);
    out.poison();
    check_cuda(cuda::launch_argmax(dl.data(), 2, width, out.data(), nullptr), "argmax");
    const std::vector<int32_t> got = out.download();
    report.check(got[0] == 9000 && got[1] == 77777, "argmax ties and NaN",
                 std::to_string(got[0]) + ", " + std::to_string(got[1]));
  }
}

SyntheticModelSpec gpu_model_spec(const std::string& kind) {
  SyntheticModelSpec spec = small_model_spec(21);
  if (kind == "llama3") {
    spec.llama3_rope_scaling = true;
    spec.rope_theta = 500000.0;
  } else if (kind == "llama2-mha") {
    spec.num_heads = 2;
    spec.num_kv_heads = 2;
    spec.head_dim = 128;
  } else if (kind == "qwen2") {
    spec.architecture = Architecture::Qwen2;
    spec.attention_bias = true;
    spec.tie_word_embeddings = true;
    spec.num_kv_heads = 1;
  } else if (kind == "qwen3") {
    spec.architecture = Architecture::Qwen3;
    spec.qk_norm = true;
    spec.head_dim = 128;
    spec.num_heads = 4;
    spec.o_proj_bias = true;
  } else if (kind == "llama-f32") {
    spec.dtype = DType::F32;  // converted to bf16 on upload: compared with the CPU's f32 at a looser bound
  } else if (kind == "llama-q4_k") {
    // Every matrix, the embedding too, in Q4_K blocks (rows of 256 values); f32 vectors.
    spec.dtype = DType::Q4_K;
    spec.intermediate_size = 768;
  } else if (kind == "qwen2-q8_0") {
    // Tied: the Q8_0 embedding is the output matrix too.
    spec.architecture = Architecture::Qwen2;
    spec.attention_bias = true;
    spec.tie_word_embeddings = true;
    spec.num_kv_heads = 1;
    spec.dtype = DType::Q8_0;
    spec.intermediate_size = 704;
  } else if (kind == "llama-q6_k-tied") {
    spec.dtype = DType::Q6_K;
    spec.tie_word_embeddings = true;
    spec.intermediate_size = 768;
  }
  return spec;
}

// Whether the CUDA backend keeps quantised matrices in their blocks (CudaBackendOptions{}'s
// default unless $TIDAL_CUDA_QUANTIZED=0).
bool keeps_quantized() {
  const char* quantized = std::getenv("TIDAL_CUDA_QUANTIZED");
  return !quantized || std::string(quantized) != "0";
}

// Whether the CUDA backend keeps an untied embedding in host memory (CudaBackendOptions{}'s
// default unless $TIDAL_CUDA_EMBEDDING_ON_HOST=0).
bool embedding_on_host() {
  const char* on_host = std::getenv("TIDAL_CUDA_EMBEDDING_ON_HOST");
  return !on_host || std::string(on_host) != "0";
}

// Bytes of a matrix on the CUDA backend: in its blocks when quantised, any other bf16.
size_t expected_matrix_bytes(const cpu::MatrixView& m) {
  return keeps_quantized() && is_quantized(m.dtype) ? dtype_bytes(m.dtype, m.rows * m.cols)
                                                    : size_t(m.rows * m.cols) * 2;
}

// The device bytes of `weights` on the CUDA backend: a quantised matrix in its blocks, any
// other bf16; vectors f32; an untied embedding in host memory by default. `decode`: only what
// a decode step reads (layers and output matrix).
size_t expected_weight_bytes(const ModelWeights& weights, bool decode) {
  auto matrix = [](const cpu::MatrixView& m) { return expected_matrix_bytes(m); };
  auto vector = [](const std::vector<float>& v) { return v.size() * 4; };
  const bool tied = weights.lm_head.data == weights.embed_tokens.data;
  size_t bytes = matrix(weights.lm_head) + vector(weights.final_norm);
  if (!decode && !tied && !embedding_on_host()) bytes += matrix(weights.embed_tokens);
  for (const LayerWeights& l : weights.layers) {
    for (const cpu::MatrixView* m :
         {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      bytes += matrix(*m);
    bytes += vector(l.input_norm) + vector(l.post_attention_norm);
    if (!decode)
      for (const std::vector<float>* v : {&l.q_bias, &l.k_bias, &l.v_bias, &l.o_bias, &l.q_norm, &l.k_norm})
        bytes += vector(*v);
  }
  return bytes;
}

void test_backend_against_cpu(Report& report, const std::string& kind) {
  const SyntheticModelSpec spec = gpu_model_spec(kind);
  SyntheticModel model = make_synthetic_model(spec);
  const ModelWeights weights = bind_model_weights(model.config, *model.tensors);
  auto cpu = create_cpu_backend(model.config, weights, CpuBackendOptions{0, 0});
  auto gpu = create_cuda_backend(model.config, weights, CudaBackendOptions{});
  auto* tools = dynamic_cast<CudaBackendTools*>(gpu.get());
  const int64_t vocab = model.config.vocab_size;
  const double bound = spec.dtype == DType::BF16 ? 2e-2 : 3e-2;
  Rng rng(31);
  std::vector<int32_t> prompt(333);
  for (int32_t& t : prompt) t = int32_t(rng.below(vocab));

  {
    const size_t total = tools->weight_bytes(), decode = tools->decode_weight_bytes();
    const size_t want_total = expected_weight_bytes(weights, false), want_decode = expected_weight_bytes(weights, true);
    const bool tied = weights.lm_head.data == weights.embed_tokens.data;
    const size_t host = tools->host_weight_bytes();
    const size_t want_host = !tied && embedding_on_host() ? expected_matrix_bytes(weights.embed_tokens) : 0;
    report.check(total == want_total && decode == want_decode && host == want_host,
                 kind + ": weight bytes on the device and in host memory",
                 std::to_string(total) + " (" + std::to_string(want_total) + " expected), " + std::to_string(decode) +
                     " read per token (" + std::to_string(want_decode) + "), " + std::to_string(host) +
                     " in host memory (" + std::to_string(want_host) + ")");
    if (!tied) {
      // The embedding on the device and in host memory: the same rows reach the same kernel,
      // so prefill (every row's logits) and decode steps (plain launches, then replayed graphs)
      // are equal bit for bit.
      CudaBackendOptions other;
      other.embedding_on_host = !embedding_on_host();
      auto moved = create_cuda_backend(model.config, weights, other);
      const AttentionPlan plan = make_plan(model.config, AttentionMode::Tidal, 64, SelectionPolicy::PerQueryHead);
      auto run = [&](Backend& backend) {
        std::vector<float> out(size_t(200 + 6) * size_t(vocab), NAN);
        auto cache = backend.create_kv_cache();
        backend.forward(*cache, prompt.data(), 200, nullptr, LogitsWanted::All, out.data(), nullptr);
        for (int s = 0; s < 6; ++s) {
          const int32_t next = prompt[size_t(200 + s)];
          backend.forward(*cache, &next, 1, &plan, LogitsWanted::Last, out.data() + size_t(200 + s) * size_t(vocab),
                          nullptr);
        }
        return out;
      };
      const std::vector<float> here = run(*gpu), there = run(*moved);
      const auto* moved_tools = dynamic_cast<CudaBackendTools*>(moved.get());
      const bool swapped = (moved_tools->host_weight_bytes() == 0) == (host != 0);
      report.check(
          swapped && here == there && std::all_of(here.begin(), here.end(), [](float x) { return std::isfinite(x); }),
          kind + ": the embedding in host memory gives the logits of the embedding on the device, bit for bit",
          format("rel L2 %.2e", relative_l2f(here, there)) +
              (swapped ? "" : ", the second backend did not move the table"));
    }
  }
  if (tools->dequantized_bytes() > 0) {
    // Prefill products through a 10000-byte scratch (slices of at most 19 rows of 256 values,
    // 6 of 768): the logits of every row as with the whole matrices dequantised at once.
    const int64_t count = 190;
    std::vector<float> reference(size_t(count * vocab)), whole(size_t(count * vocab), NAN);
    std::vector<float> sliced(size_t(count * vocab), NAN);
    auto c = cpu->create_kv_cache();
    cpu->forward(*c, prompt.data(), count, nullptr, LogitsWanted::All, reference.data(), nullptr);
    auto g1 = gpu->create_kv_cache();
    gpu->forward(*g1, prompt.data(), count, nullptr, LogitsWanted::All, whole.data(), nullptr);
    const size_t default_bytes = tools->dequantized_bytes();
    tools->set_dequantized_limit(10000);
    const size_t small_bytes = tools->dequantized_bytes();
    auto g2 = gpu->create_kv_cache();
    gpu->forward(*g2, prompt.data(), count, nullptr, LogitsWanted::All, sliced.data(), nullptr);
    tools->set_dequantized_limit(0);
    // Not bitwise: cuBLAS picks its algorithm (and so its summation order) by the product's
    // shape, and a slice is another shape. Measured on an H100: 4.5e-3 to 5.4e-3 between the two,
    // each ~8e-3 from the CPU. A slice at a wrong offset or of wrong rows would be far off.
    const double error = relative_l2f(whole, sliced), cpu_error = relative_l2f(reference, sliced);
    const double whole_cpu_error = relative_l2f(reference, whole);
    report.check(small_bytes == 10000 && default_bytes > small_bytes && tools->dequantized_bytes() == default_bytes &&
                     error < bound && cpu_error < bound && cpu_error < 1.5 * whole_cpu_error + 1e-3,
                 kind + ": prefill through a small dequantisation scratch (many slices) vs whole matrices",
                 format("rel L2 %.2e", error) + format(", vs cpu %.2e", cpu_error) +
                     format(" (whole matrices %.2e)", whole_cpu_error) + ", scratch " + std::to_string(small_bytes) +
                     " of " + std::to_string(default_bytes) + " bytes");
  }

  auto cpu_cache = cpu->create_kv_cache();
  auto gpu_cache = gpu->create_kv_cache();
  const double prefill_error = prefill_in_two_chunks(*cpu, *gpu, *cpu_cache, *gpu_cache, prompt, vocab);
  report.check(prefill_error < bound && gpu_cache->length() == 333, kind + ": prefill logits vs cpu (2 chunks)",
               format("rel L2 %.2e", prefill_error));

  {
    // A cancelled pass: the flag read after the first layer stops it, nothing is committed, and
    // the same pass afterwards equals the CPU's (the interrupted K/V writes past the cache's
    // length are overwritten).
    auto c = cpu->create_kv_cache();
    auto g = gpu->create_kv_cache();
    cpu->forward(*c, prompt.data(), 100, nullptr, LogitsWanted::None, nullptr, nullptr);
    gpu->forward(*g, prompt.data(), 100, nullptr, LogitsWanted::None, nullptr, nullptr);
    std::atomic<bool> cancel{true};
    std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
    std::string message;
    try {
      gpu->forward(*g, prompt.data() + 100, 233, nullptr, LogitsWanted::Last, b.data(), nullptr, &cancel);
    } catch (const CancelledError& error) {
      message = error.what();
    }
    report.check(message.find("cancelled at layer 0") != std::string::npos && g->length() == 100 && std::isnan(b[0]),
                 kind + ": a cancelled prefill pass stops after its first layer and leaves the cache", message);
    cancel = false;
    cpu->forward(*c, prompt.data() + 100, 233, nullptr, LogitsWanted::Last, a.data(), nullptr);
    gpu->forward(*g, prompt.data() + 100, 233, nullptr, LogitsWanted::Last, b.data(), nullptr, &cancel);
    const double error = relative_l2f(a, b);
    report.check(error < bound && g->length() == 333, kind + ": the pass after a cancelled one vs cpu",
                 format("rel L2 %.2e", error));
  }

  for (const DecodeMode& mode : kDecodeModes) {
    const AttentionPlan plan = make_plan(model.config, mode.mode, 96, mode.policy);
    auto c = cpu_cache->fork(333);
    auto g = gpu_cache->fork(333);
    double worst = 0, overlap = 1;
    int64_t cpu_attended = 0, gpu_attended = 0;
    for (int step = 0; step < 5; ++step) {
      const int32_t token = int32_t(rng.below(vocab));
      std::vector<float> a(static_cast<size_t>(vocab)), b(size_t(vocab), NAN);
      ForwardStats sa, sb;
      cpu->forward(*c, &token, 1, &plan, LogitsWanted::Last, a.data(), &sa);
      gpu->forward(*g, &token, 1, &plan, LogitsWanted::Last, b.data(), &sb);
      worst = std::max(worst, relative_l2f(a, b));
      cpu_attended += sa.attended_positions;
      gpu_attended += sb.attended_positions;
      if (mode.mode == AttentionMode::Tidal)
        overlap = std::min(overlap, selection_overlap(cpu->last_selection_trace(), gpu->last_selection_trace()));
    }
    // Quest's exact check is the full-budget case below and the kernel tests (test_quest.cpp).
    const double mode_bound = mode.bound_factor * bound;
    report.check(worst < mode_bound, kind + ": decode logits vs cpu, " + mode.name, format("rel L2 %.2e", worst));
    if (mode.mode == AttentionMode::Tidal)
      report.check(overlap >= 0.85, kind + ": tidal selection overlaps the cpu's, " + mode.name,
                   format("%.3f", overlap));
    if (mode.mode != AttentionMode::Quest)
      report.check(cpu_attended == gpu_attended, kind + ": attended positions equal the cpu's, " + mode.name,
                   std::to_string(gpu_attended) + " vs " + std::to_string(cpu_attended));
  }

  // Sparse prefill (tidal, every policy): a 40-token pass over the 333 cached positions in one
  // pass and in two, its logits against the CPU backend's. Budget 96 must move the logits far
  // from the dense prefill's (so the plan is not ignored), at least twice as far as from the CPU's; a
  // budget covering the cache gives the dense prefill's. Quest is refused, the cache unchanged.
  {
    std::vector<int32_t> pass(40);
    for (int32_t& t : pass) t = int32_t(rng.below(vocab));
    const size_t rows = pass.size() * size_t(vocab);
    std::vector<float> dense(rows, NAN);
    {
      auto g = gpu_cache->fork(333);
      gpu->forward(*g, pass.data(), 40, nullptr, LogitsWanted::All, dense.data(), nullptr);
    }
    for (const DecodeMode& mode : kDecodeModes) {
      if (mode.mode != AttentionMode::Tidal) continue;
      for (const int64_t budget : {int64_t{96}, int64_t{400}}) {
        AttentionPlan plan = make_plan(model.config, mode.mode, budget, mode.policy);
        plan.sparse_prefill = true;
        for (const int64_t first : {int64_t{40}, int64_t{15}}) {  // one pass, or 15 then 25 tokens
          auto c = cpu_cache->fork(333);
          auto g = gpu_cache->fork(333);
          std::vector<float> a(rows), b(rows, NAN);
          ForwardStats sa, sb;
          cpu->forward(*c, pass.data(), first, &plan, LogitsWanted::All, a.data(), &sa);
          gpu->forward(*g, pass.data(), first, &plan, LogitsWanted::All, b.data(), &sb);
          if (first < 40) {
            cpu->forward(*c, pass.data() + first, 40 - first, &plan, LogitsWanted::All, a.data() + first * vocab, &sa);
            gpu->forward(*g, pass.data() + first, 40 - first, &plan, LogitsWanted::All, b.data() + first * vocab, &sb);
          }
          const double error = relative_l2f(a, b), from_dense = relative_l2f(dense, b);
          const bool covering = budget > 333;
          const bool placed = covering ? from_dense < bound : from_dense > 2 * error;
          report.check(error < mode.bound_factor * bound && placed && g->length() == 373 &&
                           sa.attended_positions == sb.attended_positions,
                       kind + ": sparse prefill logits vs cpu, " + mode.name + ", budget " + std::to_string(budget) +
                           (first < 40 ? ", two passes" : ""),
                       format("rel L2 %.2e", error) + format(", from the dense prefill %.2e", from_dense) +
                           ", attended " + std::to_string(sb.attended_positions) + " vs " +
                           std::to_string(sa.attended_positions));
        }
      }
    }
    AttentionPlan quest = make_plan(model.config, AttentionMode::Quest, 96, SelectionPolicy::PerQueryHead);
    quest.sparse_prefill = true;
    auto g = gpu_cache->fork(333);
    std::string message;
    try {
      gpu->forward(*g, pass.data(), 40, &quest, LogitsWanted::Last, dense.data(), nullptr);
    } catch (const RequestError& error) {
      message = error.what();
    }
    report.check(message.find("Quest") != std::string::npos && g->length() == 333,
                 kind + ": a Quest sparse prefill is refused and leaves the cache", message);
  }

  // Graph replay against plain launches, bit for bit; fork and trim keep the cache usable.
  {
    const AttentionPlan plan = make_plan(model.config, AttentionMode::Tidal, 64, SelectionPolicy::PerQueryHead);
    auto g1 = gpu_cache->fork(333);
    auto g2 = gpu_cache->fork(300);
    g2->trim(290);
    // Logits of `steps` one-token steps (tokens first_token, first_token + 1, ...) on a fork of
    // `from` at `length`, with plain launches ([0]) and with graphs ([1]); a step for which
    // `wants(step)` is false asks for no logits.
    auto plain_and_graphed = [&](KvCache& from, int64_t length, const AttentionPlan& steps_plan, int steps,
                                 int32_t first_token, const std::function<bool(int)>& wants) {
      std::array<std::vector<float>, 2> runs;
      for (size_t pass = 0; pass < 2; ++pass) {
        tools->set_graphs(pass == 1);
        auto g = from.fork(length);
        for (int step = 0; step < steps; ++step) {
          const int32_t token = first_token + step;
          std::vector<float> b(size_t(vocab), NAN);
          const bool wanted = wants(step);
          gpu->forward(*g, &token, 1, &steps_plan, wanted ? LogitsWanted::Last : LogitsWanted::None, b.data(), nullptr);
          if (wanted) runs[pass].insert(runs[pass].end(), b.begin(), b.end());
        }
      }
      tools->set_graphs(false);
      return runs;
    };
    const auto every_step = [](int) { return true; };
    const int64_t replays_before = tools->graph_replays();
    const auto short_runs = plain_and_graphed(*gpu_cache, 333, plan, 4, 7, every_step);
    report.check(short_runs[0] == short_runs[1] && tools->graph_replays() > replays_before,
                 kind + ": graph replay equals plain launches",
                 std::to_string(tools->graph_replays() - replays_before) + " replays");
    // Across the end of a length bucket (1024 positions) the replayed graph is captured anew
    // for the next bucket, full and tidal alike, and still matches plain launches bit for bit.
    auto long_cache = gpu->create_kv_cache();
    std::vector<int32_t> long_prompt(1020);
    for (int32_t& t : long_prompt) t = int32_t(rng.below(vocab));
    gpu->forward(*long_cache, long_prompt.data(), 1020, nullptr, LogitsWanted::None, nullptr, nullptr);
    for (AttentionMode mode : {AttentionMode::Full, AttentionMode::Tidal}) {
      const AttentionPlan long_plan = make_plan(model.config, mode, 64, SelectionPolicy::PerQueryHead);
      const int64_t instantiations_before = tools->graph_instantiations();
      const auto runs = plain_and_graphed(*long_cache, 1020, long_plan, 8, 3, every_step);
      report.check(runs[0] == runs[1],
                   kind + ": graph replay across a length bucket equals plain launches, " +
                       std::string(mode == AttentionMode::Full ? "full" : "tidal"),
                   std::to_string(tools->graph_instantiations() - instantiations_before) + " instantiations");
    }
    // A step that wants no logits must not leave a graph behind that skips them for the next
    // (the first step of the graph wants none).
    const AttentionPlan full = make_plan(model.config, AttentionMode::Full, 64, SelectionPolicy::PerQueryHead);
    const auto mixed = plain_and_graphed(*long_cache, 1020, full, 6, 9, [](int step) { return step % 3 != 0; });
    report.check(mixed[0] == mixed[1], kind + ": graph replay with and without logits equals plain launches");
    // Early launches (kernels/common.cuh) change when the products start, never what they
    // compute: steps with and without them are equal bit for bit, plain and replayed.
    for (AttentionMode mode : {AttentionMode::Full, AttentionMode::Tidal}) {
      const AttentionPlan early_plan = make_plan(model.config, mode, 64, SelectionPolicy::PerQueryHead);
      const bool early_default = tools->early_launch();
      tools->set_early_launch(false);
      const auto off = plain_and_graphed(*long_cache, 1020, early_plan, 6, 11, every_step);
      tools->set_early_launch(true);
      const bool on_here = tools->early_launch();
      const auto on = plain_and_graphed(*long_cache, 1020, early_plan, 6, 11, every_step);
      tools->set_early_launch(early_default);
      report.check(on_here && off[0] == on[0] && off[1] == on[1],
                   kind + ": steps with early launches equal those without, " +
                       std::string(mode == AttentionMode::Full ? "full" : "tidal"),
                   on_here ? "" : "early launch unavailable on this device");
    }
    // The gate|up product ending in SwiGLU itself (the default) against the separate SwiGLU
    // kernel: equal bit for bit, plain and replayed; the prefill path never fuses.
    {
      const AttentionPlan fused_plan = make_plan(model.config, AttentionMode::Tidal, 64, SelectionPolicy::PerQueryHead);
      tools->set_fused_swiglu(false);
      const auto separate = plain_and_graphed(*long_cache, 1020, fused_plan, 5, 13, every_step);
      tools->set_fused_swiglu(true);
      const auto fused = plain_and_graphed(*long_cache, 1020, fused_plan, 5, 13, every_step);
      const bool finite = std::all_of(fused[0].begin(), fused[0].end(), [](float v) { return std::isfinite(v); });
      report.check(
          finite && separate[0] == fused[0] && separate[1] == fused[1] && tools->fused_swiglu(),
          kind + ": steps whose gate|up product ends in SwiGLU equal those with the SwiGLU kernel, bit for bit",
          format("rel L2 %.2e", relative_l2f(separate[0], fused[0])));
    }
    // The trimmed fork continues like a cache prefilled to 290 positions.
    auto c2 = cpu_cache->fork(290);
    std::vector<float> a(static_cast<size_t>(vocab)), b(size_t(vocab), NAN);
    const int32_t token = 5;
    // Budget 4096: every page is chosen, so the step must equal dense attention over the
    // positions kept (K/V past the cut must not leak in through the page expansion).
    const AttentionPlan quest = make_plan(model.config, AttentionMode::Quest, 4096, SelectionPolicy::PerQueryHead);
    cpu->forward(*c2, &token, 1, &quest, LogitsWanted::Last, a.data(), nullptr);
    gpu->forward(*g2, &token, 1, &quest, LogitsWanted::Last, b.data(), nullptr);
    const double error = relative_l2f(a, b);
    report.check(error < bound && g2->length() == 291, kind + ": fork + trim inside a page, quest full-budget step",
                 format("rel L2 %.2e", error));
  }
  {  // One-token linear layers through the GEMV kernel instead of cuBLAS.
    tools->set_gemv(CudaBackendTools::GemvUse::Always);
    const AttentionPlan plan = make_plan(model.config, AttentionMode::Full, 64, SelectionPolicy::PerQueryHead);
    auto c = cpu_cache->fork(333);
    auto g = gpu_cache->fork(333);
    double worst = 0;
    for (int step = 0; step < 3; ++step) {
      const int32_t token = int32_t(11 + step);
      std::vector<float> a(static_cast<size_t>(vocab)), b(static_cast<size_t>(vocab), NAN);
      cpu->forward(*c, &token, 1, &plan, LogitsWanted::Last, a.data(), nullptr);
      gpu->forward(*g, &token, 1, &plan, LogitsWanted::Last, b.data(), nullptr);
      worst = std::max(worst, relative_l2f(a, b));
    }
    tools->set_gemv(CudaBackendTools::GemvUse::Auto);
    report.check(worst < bound, kind + ": decode logits vs cpu, full, GEMV kernel", format("rel L2 %.2e", worst));
  }
}

// create_random_cuda_backend's quantised mixes (tidal bench --weights): the documented format
// of every matrix (q4_k_m: Q4_K, v_proj, down_proj and output Q6_K, the embedding Q4_K, or Q6_K
// when it is the output too; q8_0: all Q8_0), told by the device bytes, and finite logits of a
// prefill and a decode step. Then Llama-3.1-8B's widths (2 layers, a 32768-token vocabulary):
// the 64 MiB dequantisation scratch, and its sliced prefill products against unsliced ones.
void test_random_quantized(Report& report) {
  using cuda::QuantFormat;
  auto blocks = [](QuantFormat f, int64_t rows, int64_t cols) { return size_t(rows * cuda::quant_row_bytes(f, cols)); };
  auto finite = [](const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  for (const std::string mix : {"q8_0", "q4_k_m"})
    for (const bool tied : {false, true}) {
      SyntheticModelSpec spec = gpu_model_spec("llama3");
      spec.intermediate_size = 768;
      spec.tie_word_embeddings = tied;
      const ModelConfig config = make_synthetic_model(spec).config;
      auto gpu = create_random_cuda_backend(config, 5, CudaBackendOptions{}, mix);
      auto* tools = dynamic_cast<CudaBackendTools*>(gpu.get());
      const bool k_quants = mix == "q4_k_m";
      const QuantFormat main = k_quants ? QuantFormat::Q4_K : QuantFormat::Q8_0;
      const QuantFormat wide = k_quants ? QuantFormat::Q6_K : QuantFormat::Q8_0;
      const int64_t hidden = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
      const int64_t q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
      // llama.cpp's Q4_K_M recipe: v_proj and down_proj in Q6_K in the layers use_more_bits picks
      // (the first and last eighth, every third between), Q4_K elsewhere.
      size_t layers = size_t(hidden) * 4;
      const int64_t n = config.num_layers;
      // Consecutive matrices of one format are joined: q|k|v is 1 part (2 where v_proj is Q6_K),
      // gate|up 1, o and down 1 each; the embedding (on the device when tied) and head 1 each.
      size_t want_parts = !tied && !embedding_on_host() ? 2 : 1;
      for (int64_t l = 0; l < n; ++l) {
        const bool more = l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
        const QuantFormat sensitive = more ? wide : main;
        want_parts += (sensitive == main ? 1 : 2) + 3;
        layers += blocks(main, q_size, hidden) + blocks(main, kv_size, hidden) + blocks(sensitive, kv_size, hidden) +
                  blocks(main, hidden, q_size) + 2 * blocks(main, inner, hidden) + blocks(sensitive, hidden, inner) +
                  size_t(hidden) * 8;
      }
      const size_t embedding = blocks(tied ? wide : main, vocab, hidden), head = blocks(wide, vocab, hidden);
      const bool host_table = !tied && embedding_on_host();
      const size_t want_total = layers + (host_table ? 0 : embedding) + (tied ? 0 : head),
                   want_decode = layers + (tied ? embedding : head), want_host = host_table ? embedding : 0;
      std::vector<int32_t> prompt(150);
      Rng rng(43);
      for (int32_t& t : prompt) t = int32_t(rng.below(vocab));
      prompt.back() = int32_t(vocab - 1);
      auto cache = gpu->create_kv_cache();
      std::vector<float> prefill(size_t(prompt.size()) * size_t(vocab), NAN), step(size_t(vocab), NAN);
      gpu->forward(*cache, prompt.data(), int64_t(prompt.size()), nullptr, LogitsWanted::All, prefill.data(), nullptr);
      const int32_t token = int32_t(vocab - 1);
      gpu->forward(*cache, &token, 1, nullptr, LogitsWanted::Last, step.data(), nullptr);
      report.check(tools->weight_bytes() == want_total && tools->decode_weight_bytes() == want_decode &&
                       tools->host_weight_bytes() == want_host && tools->quantized_parts() == want_parts &&
                       finite(prefill) && finite(step),
                   "random " + mix + (tied ? " tied" : "") + " weights: formats and finite logits",
                   std::to_string(tools->weight_bytes()) + " bytes (" + std::to_string(want_total) + " expected), " +
                       std::to_string(tools->decode_weight_bytes()) + " read per token (" +
                       std::to_string(want_decode) + "), " + std::to_string(tools->host_weight_bytes()) +
                       " in host memory (" + std::to_string(want_host) + "), " +
                       std::to_string(tools->quantized_parts()) + " parts (" + std::to_string(want_parts) + ")");
    }
  if (quick_mode()) return;
  ModelConfig config = bench::bench_shape("llama-3.1-8b");
  config.num_layers = 2;
  config.vocab_size = 32768;
  auto gpu = create_random_cuda_backend(config, 6, CudaBackendOptions{}, "q4_k_m");
  auto* tools = dynamic_cast<CudaBackendTools*>(gpu.get());
  const size_t bound_bytes = tools->dequantized_bytes();
  std::vector<int32_t> prompt(96);
  Rng rng(44);
  for (int32_t& t : prompt) t = int32_t(rng.below(config.vocab_size));
  const size_t logits = prompt.size() * size_t(config.vocab_size);
  std::vector<float> sliced(logits, NAN), whole(logits, NAN);
  auto c1 = gpu->create_kv_cache();
  gpu->forward(*c1, prompt.data(), int64_t(prompt.size()), nullptr, LogitsWanted::All, sliced.data(), nullptr);
  tools->set_dequantized_limit(size_t(1) << 30);  // every part at once
  const size_t whole_bytes = tools->dequantized_bytes();
  auto c2 = gpu->create_kv_cache();
  gpu->forward(*c2, prompt.data(), int64_t(prompt.size()), nullptr, LogitsWanted::All, whole.data(), nullptr);
  tools->set_dequantized_limit(0);
  const double error = relative_l2f(whole, sliced);
  // Unsliced: the largest part, the 32768 x 4096 head, at once. Not bitwise (cuBLAS's algorithm
  // depends on the slice's shape): 2.7e-3 measured on an H100; wrong rows would be far off.
  report.check(
      bound_bytes == size_t(64) << 20 && whole_bytes == size_t(32768) * 4096 * 2 && error < 2e-2 && finite(sliced),
      "random q4_k_m at Llama-3.1-8B's widths: 64 MiB scratch, sliced prefill vs whole matrices",
      format("rel L2 %.2e", error) + ", scratch " + std::to_string(bound_bytes) + " / " + std::to_string(whole_bytes) +
          " bytes");
}

// The engine with EngineOptions::backend "cuda" and "auto" against the default cpu engine.
void test_engine_backend(Report& report) {
  const SyntheticModelSpec spec = gpu_model_spec("llama3");
  SyntheticModel model = make_synthetic_model(spec);
  EngineOptions cpu_options, cuda_options, auto_options;
  cuda_options.backend = "cuda";
  auto_options.backend = "auto";
  auto cpu = Engine::from_tensors(model.config, model.tensors, cpu_options);
  auto gpu = Engine::from_tensors(model.config, model.tensors, cuda_options);
  auto chosen = Engine::from_tensors(model.config, model.tensors, auto_options);
  report.check(gpu->model_info().backend == "cuda" && chosen->model_info().backend == "cuda" &&
                   cpu->model_info().backend == "cpu",
               "engine: backend cuda and auto run on the GPU, cpu stays the default");
  Rng rng(41);
  std::vector<int32_t> prompt(600);  // several prefill chunks of 256
  for (int32_t& t : prompt) t = int32_t(rng.below(model.config.vocab_size));
  const SequenceId a = cpu->create_sequence(), b = gpu->create_sequence();
  std::vector<float> la = cpu->prefill(a, prompt), lb = gpu->prefill(b, prompt);
  AttentionOptions tidal;
  tidal.mode = AttentionMode::Tidal;
  tidal.token_budget = 128;
  double worst = relative_l2f(la, lb);
  for (int step = 0; step < 4; ++step) {
    la = cpu->decode(a, 3 + step, tidal);
    lb = gpu->decode(b, 3 + step, tidal);
    worst = std::max(worst, relative_l2f(la, lb));
  }
  report.check(worst < 5e-2, "engine: cuda prefill (3 chunks) + tidal decode logits vs cpu",
               format("rel L2 %.2e", worst));
}

}  // namespace

void test_model(Report& report) {
  report.run("prefill attention", [&] { test_prefill_attention(report); });
  report.run("elementwise kernels", [&] { test_elementwise(report); });
  const std::string reason = cuda_backend_unavailable_reason();
  if (!reason.empty()) {
    report.check(false, "cuda backend", reason);
    return;
  }
  report.run("engine backend", [&] { test_engine_backend(report); });
  for (const char* kind :
       {"llama3", "llama2-mha", "qwen2", "qwen3", "llama-f32", "llama-q4_k", "qwen2-q8_0", "llama-q6_k-tied"})
    report.run(std::string("cuda backend ") + kind, [&] { test_backend_against_cpu(report, kind); });
  report.run("random quantized weights", [&] { test_random_quantized(report); });
}

}  // namespace tidal::gpu_test
