// A plain float64 forward pass of a Llama/Mistral/Qwen2/Qwen3 decoder with full causal
// attention, written independently of the engine from the Hugging Face definitions, to
// check the engine's logits. Slow and simple on purpose.
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor_source.h"
#include "model/model_config.h"
#include "model/weight_store.h"

namespace tidal_test {

// Per token, per query head, the positions it attends to; an empty list (or a missing token)
// means all of 0..t, causal attention.
using AttentionLists = std::vector<std::vector<std::vector<int64_t>>>;
// Given a layer's rotated queries and keys ([token][heads * head_dim], [token][kv_heads *
// head_dim]), the positions each query attends to in that layer.
using AttentionRestriction = std::function<AttentionLists(int64_t layer, const std::vector<std::vector<double>>& q,
                                                          const std::vector<std::vector<double>>& k)>;

class ReferenceModel {
 public:
  ReferenceModel(const tidal::ModelConfig& config, const tidal::TensorSource& tensors)
      : c_(config), tensors_(tensors) {}

  // Logits [tokens.size()][vocab] for every position; `restrict`, when given, chooses the
  // positions each query attends to, layer by layer (sparse attention).
  std::vector<std::vector<double>> logits(const std::vector<int32_t>& tokens,
                                          const AttentionRestriction& restrict = nullptr) const {
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t hidden = c_.hidden_size, hd = c_.head_dim, nh = c_.num_heads, nkv = c_.num_kv_heads;
    const auto embed = load("model.embed_tokens.weight");
    std::vector<std::vector<double>> x(n);
    for (int64_t t = 0; t < n; ++t)
      x[t].assign(embed.begin() + tokens[t] * hidden, embed.begin() + (tokens[t] + 1) * hidden);

    const std::vector<double> inv_freq = inverse_frequencies();
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (int64_t t = 0; t < n; ++t) {
        auto h = rms_norm(x[t], load(p + "input_layernorm.weight"));
        q[t] = linear(p + "self_attn.q_proj", h, c_.attention_bias);
        k[t] = linear(p + "self_attn.k_proj", h, c_.attention_bias);
        v[t] = linear(p + "self_attn.v_proj", h, c_.attention_bias);
        for (int64_t head = 0; head < nh; ++head) prepare(q[t], head, t, inv_freq, p + "self_attn.q_norm.weight");
        for (int64_t head = 0; head < nkv; ++head) prepare(k[t], head, t, inv_freq, p + "self_attn.k_norm.weight");
      }
      const AttentionLists lists = restrict ? restrict(l, q, k) : AttentionLists{};
      for (int64_t t = 0; t < n; ++t) {
        std::vector<double> attn(static_cast<size_t>(nh * hd), 0.0);
        for (int64_t head = 0; head < nh; ++head) {
          const int64_t kvh = head / (nh / nkv);
          std::vector<int64_t> seen;
          if (static_cast<size_t>(t) < lists.size()) seen = lists[t][head];
          if (seen.empty())
            for (int64_t j = 0; j <= t; ++j) seen.push_back(j);
          std::vector<double> s(seen.size());
          double mx = -INFINITY;
          for (size_t j = 0; j < seen.size(); ++j) {
            double d = 0.0;
            for (int64_t i = 0; i < hd; ++i) d += q[t][head * hd + i] * k[seen[j]][kvh * hd + i];
            s[j] = d / std::sqrt(static_cast<double>(hd));
            mx = std::fmax(mx, s[j]);
          }
          double sum = 0.0;
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (size_t j = 0; j < seen.size(); ++j)
            for (int64_t i = 0; i < hd; ++i) attn[head * hd + i] += s[j] / sum * v[seen[j]][kvh * hd + i];
        }
        auto o = linear(p + "self_attn.o_proj", attn, c_.o_proj_bias);
        for (int64_t i = 0; i < hidden; ++i) x[t][i] += o[i];
        auto h = rms_norm(x[t], load(p + "post_attention_layernorm.weight"));
        auto gate = linear(p + "mlp.gate_proj", h, false);
        auto up = linear(p + "mlp.up_proj", h, false);
        for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
        auto down = linear(p + "mlp.down_proj", gate, false);
        for (int64_t i = 0; i < hidden; ++i) x[t][i] += down[i];
      }
    }
    const std::string head_name = c_.tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    std::vector<std::vector<double>> out(n);
    for (int64_t t = 0; t < n; ++t) out[t] = linear(head_name, rms_norm(x[t], load("model.norm.weight")), false);
    return out;
  }

 private:
  std::vector<double> load(const std::string& name) const {
    const tidal::TensorView* view = tensors_.find(name);
    if (!view) throw std::runtime_error("reference model: missing " + name);
    std::vector<float> f(static_cast<size_t>(view->numel()));
    tidal::convert_to_f32(*view, f.data());
    return std::vector<double>(f.begin(), f.end());
  }

  std::vector<double> linear(const std::string& prefix, const std::vector<double>& x, bool bias) const {
    const auto w = load(prefix + ".weight");
    const size_t cols = x.size(), rows = w.size() / cols;
    std::vector<double> y(rows, 0.0);
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * x[c];
    if (bias) {
      const auto b = load(prefix + ".bias");
      for (size_t r = 0; r < rows; ++r) y[r] += b[r];
    }
    return y;
  }

  std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w) const {
    double ms = 0.0;
    for (double e : x) ms += e * e;
    ms /= static_cast<double>(x.size());
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + c_.rms_norm_eps) * w[i];
    return y;
  }

  std::vector<double> inverse_frequencies() const {
    const int64_t half = c_.head_dim / 2;
    std::vector<double> f(static_cast<size_t>(half));
    const auto& s = c_.rope_scaling;
    for (int64_t i = 0; i < half; ++i) {
      double freq = 1.0 / std::pow(c_.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(c_.head_dim));
      if (s.type == "llama3") {
        const double wavelength = 2.0 * M_PI / freq;
        const double old = static_cast<double>(s.original_max_position_embeddings);
        if (wavelength > old / s.low_freq_factor) {
          freq /= s.factor;
        } else if (wavelength >= old / s.high_freq_factor) {
          const double smooth = (old / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          freq = (1.0 - smooth) * freq / s.factor + smooth * freq;
        }
      }
      f[i] = freq;
    }
    return f;
  }

  // Optional per-head RMSNorm (Qwen3), then rotate-half RoPE at `position`.
  void prepare(std::vector<double>& vec, int64_t head, int64_t position, const std::vector<double>& inv_freq,
               const std::string& norm_name) const {
    const int64_t hd = c_.head_dim, half = hd / 2;
    double* h = vec.data() + head * hd;
    if (c_.qk_norm) {
      std::vector<double> part(h, h + hd);
      part = rms_norm(part, load(norm_name));
      std::copy(part.begin(), part.end(), h);
    }
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(position) * inv_freq[i];
      const double x1 = h[i], x2 = h[i + half];
      h[i] = x1 * std::cos(a) - x2 * std::sin(a);
      h[i + half] = x2 * std::cos(a) + x1 * std::sin(a);
    }
  }

  const tidal::ModelConfig& c_;
  const tidal::TensorSource& tensors_;
};

}  // namespace tidal_test
