// A direct double-precision CPU forward of the model (docs/config.md, SPEC sections 2-3), by
// parameter name, for the GPU tests: loss pieces for given weights. Gradients come from central
// finite differences of this function, so the test oracle shares no derivation with the GPU
// backward. Written for clarity, not speed (tiny models only).
#pragma once
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

  RefStats forward(const std::vector<double>& w, const std::vector<int32_t>& tok,
                   const std::vector<int32_t>& tgt, int B, int T, bool training) const {
    const int d = c_.d_model, H = c_.n_head, dk = d / H, L = c_.n_layer, V = c_.vocab_size;
    const int N = B * T;
    auto P = [&](const std::string& n) -> const double* {
      auto it = off_.find(n);
      return it == off_.end() ? nullptr : w.data() + it->second;
    };
    std::vector<double> x(size_t(N) * d);
    const double* wte = P("wte");
    const double* wpe = P("wpe");
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < d; ++k) x[n * d + k] = wte[tok[n] * d + k] + wpe[(n % T) * d + k];
    const bool reg = training && c_.entropy_reg.enabled;
    const double lnT = std::log(double(T));
    double pen_sum = 0;
    for (int l = 0; l < L; ++l) {
      std::string b = "blocks." + std::to_string(l) + ".";
      auto h = norm(x, P(b + "ln1.weight"), P(b + "ln1.bias"), N, d);
      auto qkv = linear(h, P(b + "attn.qkv.weight"), P(b + "attn.qkv.bias"), N, d, 3 * d);
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
      auto o = linear(y, P(b + "attn.proj.weight"), P(b + "attn.proj.bias"), N, d, d);
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];  // x is now xhat
      if (c_.has_ffn(l)) {
        auto h2 = norm(x, P(b + "ln2.weight"), P(b + "ln2.bias"), N, d);
        std::vector<double> m;
        if (c_.ffn_kind == model::FfnKind::standard) {
          auto pre = linear(h2, P(b + "ffn.fc.weight"), P(b + "ffn.fc.bias"), N, d, c_.d_ff);
          for (auto& v : pre) v = act(v);
          m = linear(pre, P(b + "ffn.proj.weight"), P(b + "ffn.proj.bias"), N, c_.d_ff, d);
        } else {
          m = linear(h2, P(b + "ffn.fused.weight"), P(b + "ffn.fused.bias"), N, d, d);
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
    RefStats st;
    for (int n = 0; n < N; ++n) {
      std::vector<double> z(V);
      double mx = -1e300;
      for (int v = 0; v < V; ++v) {
        double dot = 0;
        for (int k = 0; k < d; ++k) dot += hf[n * d + k] * wte[v * d + k];
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
  double act(double v) const {
    switch (c_.ffn_act) {
      case model::Activation::gelu:
        return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      case model::Activation::relu: return v > 0 ? v : 0;
      case model::Activation::leaky_relu: return v > 0 ? v : c_.leaky_slope * v;
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
};

}  // namespace aero::cuda::test
