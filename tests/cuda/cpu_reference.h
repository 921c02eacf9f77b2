// A direct double-precision CPU forward of the model (docs/config.md, docs/model.md, SPEC
// sections 2-3), by parameter name, for the GPU tests: loss pieces for given weights. Gradients
// come from central finite differences of this function, so the test oracle shares no
// derivation with the GPU backward. Written for clarity, not speed (tiny models only).
// Covers every switch: gpt2 / pythia (rotary, parallel residual, untied head), bias on/off,
// all activations (learnable leaky ReLU slopes included), weight norm and spectral norm.
// Spectral norm: by default u is held fixed (sigma = ||W^T u||, the function whose exact
// gradient the models' backward computes, as BasicModel::set_spectral_norm_frozen); with
// set_sn_iterate(true) a training forward first runs the power iteration on a copy of u, as
// the models do, and forward() can return the updated u.
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "cuda/gpu_model.h"

namespace aero::cuda::test {

struct RefStats {
  double ce = 0, ent_reg = 0, loss = 0;
};

class CpuReference {
 public:
  CpuReference(const model::ModelConfig& c, const std::vector<GpuParam>& ps) : c_(c) {
    for (auto& p : ps) off_[p.name] = p.offset;
  }

  void set_sn_iterate(bool on) { sn_iterate_ = on; }

  // updated (optional): w with the spectral-norm u after this forward's power iteration.
  RefStats forward(const std::vector<double>& w, const std::vector<int32_t>& tok,
                   const std::vector<int32_t>& tgt, int B, int T, bool training,
                   std::vector<double>* updated = nullptr) const {
    const int d = c_.d_model, H = c_.n_head, dk = d / H, L = c_.n_layer, V = c_.vocab_size;
    const int N = B * T;
    auto P = [&](const std::string& n) -> const double* {
      auto it = off_.find(n);
      return it == off_.end() ? nullptr : w.data() + it->second;
    };
    if (updated) *updated = w;
    const bool iterate = training && sn_iterate_;
    // The weight a linear uses (docs/model.md, "Weight and spectral normalization").
    auto weight = [&](const std::string& lin, int out, int in) -> std::vector<double> {
      const bool qkv = lin.size() >= 8 && lin.compare(lin.size() - 8, 8, "attn.qkv") == 0;
      const bool proj = lin.size() >= 9 && lin.compare(lin.size() - 9, 9, "attn.proj") == 0;
      auto group = [&](const model::LinearGroups& g, int sub) {
        return qkv ? (sub < 2 ? g.qk : g.v) : proj ? g.o : g.ffn;
      };
      std::vector<double> W(size_t(out) * in);
      if (const double* v = P(lin + ".weight_v")) {
        const double* g = P(lin + ".weight_g");
        const int h = qkv ? out / 3 : out;
        for (int o = 0; o < out; ++o) {
          double ss = 0;
          for (int i = 0; i < in; ++i) ss += v[o * in + i] * v[o * in + i];
          const double sc = group(c_.weight_norm, o / h) ? g[o] / std::sqrt(ss) : 1.0;
          for (int i = 0; i < in; ++i) W[o * in + i] = sc * v[o * in + i];
        }
        return W;
      }
      const double* src = P(lin + ".weight");
      std::copy(src, src + W.size(), W.begin());
      const double* u0 = P(lin + ".sn_u");
      if (!u0) return W;
      const int nsub = qkv ? 3 : 1, h = out / nsub;
      for (int s = 0; s < nsub; ++s) {
        if (!group(c_.spectral_norm, s)) continue;
        const double* Ws = src + size_t(s) * h * in;
        std::vector<double> u(u0 + s * h, u0 + (s + 1) * h), v(in, 0.0), Wv(h, 0.0);
        for (int r = 0; r < h; ++r)
          for (int i = 0; i < in; ++i) v[i] += Ws[r * in + i] * u[r];
        double nv = 0;
        for (double x : v) nv += x * x;
        nv = std::max(std::sqrt(nv), 1e-12);
        for (double& x : v) x /= nv;
        for (int r = 0; r < h; ++r)
          for (int i = 0; i < in; ++i) Wv[r] += Ws[r * in + i] * v[i];
        if (iterate) {
          double nu = 0;
          for (double x : Wv) nu += x * x;
          nu = std::max(std::sqrt(nu), 1e-12);
          for (int r = 0; r < h; ++r) u[r] = Wv[r] / nu;
          if (updated)
            std::copy(u.begin(), u.end(),
                      updated->begin() + off_.at(lin + ".sn_u") + size_t(s) * h);
        }
        double sigma = 0;
        for (int r = 0; r < h; ++r) sigma += u[r] * Wv[r];
        for (size_t i = 0; i < size_t(h) * in; ++i) W[size_t(s) * h * in + i] = Ws[i] / sigma;
      }
      return W;
    };
    std::vector<double> x(size_t(N) * d);
    const double* wte = P("wte");
    const double* wpe = P("wpe");  // gpt2 only
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < d; ++k)
        x[n * d + k] = wte[tok[n] * d + k] + (wpe ? wpe[(n % T) * d + k] : 0.0);
    // rotated dims per head (ModelConfig::rotary_dims; config.cpp is not in the GPU build)
    int R = c_.family == model::Family::pythia ? int(dk * c_.rotary_pct) : 0;
    R -= R % 2;
    const int half = R / 2;
    const bool reg = training && c_.entropy_reg.enabled;
    const double lnT = std::log(double(T));
    double pen_sum = 0;
    for (int l = 0; l < L; ++l) {
      std::string b = "blocks." + std::to_string(l) + ".";
      auto h = norm(x, P(b + "ln1.weight"), P(b + "ln1.bias"), N, d);
      auto qkv = linear(h, weight(b + "attn.qkv", 3 * d, d).data(), P(b + "attn.qkv.bias"), N, d,
                        3 * d);
      // rotary (pythia): the first R dims of each q and k head, rotate_half layout
      for (int n = 0; n < N && R > 0; ++n)
        for (int part = 0; part < 2; ++part)
          for (int hh = 0; hh < H; ++hh) {
            double* e = &qkv[size_t(n) * 3 * d + part * d + hh * dk];
            for (int f = 0; f < half; ++f) {
              const double ang = (n % T) * std::pow(c_.rotary_base, -2.0 * f / R);
              const double x1 = e[f], x2 = e[f + half];
              e[f] = x1 * std::cos(ang) - x2 * std::sin(ang);
              e[f + half] = x2 * std::cos(ang) + x1 * std::sin(ang);
            }
          }
      std::vector<double> y(size_t(N) * d, 0.0);
      const double* temp = P(b + "attn.temp");
      for (int bb = 0; bb < B; ++bb)
        for (int hh = 0; hh < H; ++hh)
          for (int i = 0; i < T; ++i) {
            double t = 1.0;
            if (temp) {
              double s = temp[hh * c_.context + i];
              t = c_.temperature_param == model::TemperatureParam::exp      ? std::exp(s)
                  : c_.temperature_param == model::TemperatureParam::direct ? s
                                                                            : 1.0 + s;
            }
            std::vector<double> z(i + 1);
            double mx = -1e300;
            for (int j = 0; j <= i; ++j) {
              double dot = 0;
              for (int k = 0; k < dk; ++k)
                dot += qkv[(bb * T + i) * 3 * d + hh * dk + k] *
                       qkv[(bb * T + j) * 3 * d + d + hh * dk + k];
              z[j] = dot / (t * std::sqrt(double(dk)));
              mx = std::max(mx, z[j]);
            }
            double sum = 0;
            for (auto& v : z) sum += (v = std::exp(v - mx));
            double E = 0;
            for (int j = 0; j <= i; ++j) {
              double a = z[j] / sum;
              E -= a * std::log(a + 1e-9);
              for (int k = 0; k < dk; ++k)
                y[(bb * T + i) * d + hh * dk + k] += a * qkv[(bb * T + j) * 3 * d + 2 * d + hh * dk + k];
            }
            if (reg) {
              double delta = E - P("entropy_theta")[l * H + hh] * lnT;
              if (std::fabs(delta) > c_.entropy_reg.gamma * lnT) pen_sum += delta * delta;
            }
          }
      auto o = linear(y, weight(b + "attn.proj", d, d).data(), P(b + "attn.proj.bias"), N, d, d);
      const std::vector<double> x_in = x;  // block input (parallel residual's FFN input)
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];  // x is now xhat
      if (c_.has_ffn(l)) {
        auto h2 = norm(c_.parallel_residual ? x_in : x, P(b + "ln2.weight"), P(b + "ln2.bias"),
                       N, d);
        std::vector<double> m;
        if (c_.ffn_kind == model::FfnKind::standard) {
          auto pre = linear(h2, weight(b + "ffn.fc", c_.d_ff, d).data(), P(b + "ffn.fc.bias"), N,
                            d, c_.d_ff);
          const double* sl = P(b + "ffn.slope");
          if (!sl) sl = P("ffn_slope");
          for (auto& v : pre) v = act(v, sl ? *sl : c_.leaky_slope);
          m = linear(pre, weight(b + "ffn.proj", d, c_.d_ff).data(), P(b + "ffn.proj.bias"), N,
                     c_.d_ff, d);
        } else {
          m = linear(h2, weight(b + "ffn.fused", d, d).data(), P(b + "ffn.fused.bias"), N, d, d);
        }
        double al = 1, be = 1;
        if (c_.ffn_scaling) {
          al = *P(b + "ffn_scale.alpha");
          be = *P(b + "ffn_scale.beta");
        }
        for (size_t i = 0; i < x.size(); ++i) x[i] = be * x[i] + m[i] / al;
      }
    }
    auto hf = norm(x, P("ln_f.weight"), P("ln_f.bias"), N, d);
    const double* head = P("lm_head.weight") ? P("lm_head.weight") : wte;
    RefStats st;
    for (int n = 0; n < N; ++n) {
      std::vector<double> z(V);
      double mx = -1e300;
      for (int v = 0; v < V; ++v) {
        double dot = 0;
        for (int k = 0; k < d; ++k) dot += hf[n * d + k] * head[v * d + k];
        z[v] = dot;
        mx = std::max(mx, dot);
      }
      double s = 0;
      for (double v : z) s += std::exp(v - mx);
      st.ce += mx + std::log(s) - z[tgt[n]];
    }
    st.ce /= N;
    if (reg) {
      double c = 1.0 / (double(L) * H);
      if (c_.entropy_reg.reduction == model::EntropyReduction::mean) c /= double(B) * T;
      st.ent_reg = pen_sum * c;
    }
    st.loss = st.ce + (reg ? c_.entropy_reg.lambda * st.ent_reg : 0.0);
    return st;
  }

 private:
  double act(double v, double slope) const {
    switch (c_.ffn_act) {
      case model::Activation::gelu:
        return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      case model::Activation::gelu_exact: return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      case model::Activation::relu: return v > 0 ? v : 0;
      case model::Activation::leaky_relu:
      case model::Activation::learnable_leaky_relu: return v > 0 ? v : slope * v;
      default: return v;
    }
  }
  static std::vector<double> norm(const std::vector<double>& x, const double* w, const double* b,
                                  int N, int d) {
    if (!w) return x;
    std::vector<double> o(x.size());
    for (int n = 0; n < N; ++n) {
      double m = 0, v = 0;
      for (int k = 0; k < d; ++k) m += x[n * d + k];
      m /= d;
      for (int k = 0; k < d; ++k) v += (x[n * d + k] - m) * (x[n * d + k] - m);
      v /= d;
      for (int k = 0; k < d; ++k) o[n * d + k] = (x[n * d + k] - m) / std::sqrt(v + 1e-5) * w[k] + b[k];
    }
    return o;
  }
  // y = x W^T + b, W [out, in]
  static std::vector<double> linear(const std::vector<double>& x, const double* W, const double* b,
                                    int N, int in, int out) {
    std::vector<double> y(size_t(N) * out);
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < out; ++o) {
        double acc = b ? b[o] : 0.0;
        for (int k = 0; k < in; ++k) acc += x[n * in + k] * W[o * in + k];
        y[n * out + o] = acc;
      }
    return y;
  }
  model::ModelConfig c_;
  std::map<std::string, size_t> off_;
  bool sn_iterate_ = false;
};

}  // namespace aero::cuda::test
