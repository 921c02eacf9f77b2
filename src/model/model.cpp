// The model graph: GPT-2 / Pythia decoder blocks with every AERO switch (docs/config.md,
// docs/model.md), forward and backward written out layer by layer over one parameter arena,
// one gradient arena and one activation arena, allocated at construction (llm.c layout).
//
// Block (pre-norm; LN = identity when norm=none; no FFN in pruned layers):
//   sequential: x_hat = x + MHA(LN1 x);  out = beta x_hat + FFN(LN2 x_hat) / alpha
//   parallel:   x_hat = x + MHA(LN1 x);  out = beta x_hat + FFN(LN2 x) / alpha
// (beta = alpha = 1 without ffn_scaling).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/rng.h"
#include "model/layers.h"
#include "model/model.h"

namespace aero::model {

namespace {

enum class Init { normal, zero, one, constant, wn_g, sn_u };

template <typename T>
bool all_finite(const T* p, size_t n) {
  bool ok = true;
#pragma omp parallel for if(n >= size_t(omp_min_work)) reduction(&& : ok) schedule(static)
  for (long i = 0; i < long(n); i++) ok = ok && std::isfinite(p[i]);
  return ok;
}

Act act_of(Activation a) {
  switch (a) {
    case Activation::gelu: return Act::gelu;
    case Activation::relu: return Act::relu;
    case Activation::leaky_relu:
    case Activation::learnable_leaky_relu: return Act::leaky;
    case Activation::identity: return Act::identity;
    case Activation::gelu_exact: return Act::gelu_exact;
  }
  return Act::identity;
}

}  // namespace

template <typename T>
struct BasicModel<T>::Impl {
  // A linear layer and its reparameterization. The forward uses W (the parameter itself, or
  // the effective weight recomputed each forward under weight / spectral normalization).
  struct Linear {
    std::string name;
    int out = 0, in = 0;
    int w = -1, g = -1, b = -1, u = -1;  // param indices (w = weight, or weight_v under WN)
    bool wn = false, sn = false;
    int wn_r0 = 0, wn_r1 = 0;           // rows normalized by WN
    int n_subs = 1, sub_h = 0;          // SN sub-matrices (3 for qkv), each sub_h rows
    std::vector<bool> sn_on;            // per sub-matrix
    std::vector<T> w_eff, dw_eff, norms, sn_v, sn_sigma;
    const T* W = nullptr;
    T* dW = nullptr;
  };
  struct Layer {
    int ln1w = -1, ln1b = -1, ln2w = -1, ln2b = -1, temp = -1, slope = -1, alpha = -1, beta = -1;
    Linear qkv, proj, fc, fproj, fused;
    bool ffn = false;
  };

  ModelConfig cfg;
  int maxB, maxT, L, H, C, D, F, V, R;
  std::vector<Param> params;
  std::vector<Init> init_kind;
  std::vector<double> init_val;
  std::vector<size_t> offsets;
  std::vector<T> arena, grad_arena;
  std::vector<Layer> layers;
  int wte = -1, wpe = -1, lnfw = -1, lnfb = -1, lm_head = -1, global_slope = -1, theta = -1;
  bool sn_frozen = false;

  // Activations (sized for maxB x maxT), per layer where noted.
  std::vector<T> res, ln1, ln1_mean, ln1_rstd, qkv, probs, att, xhat, ln2, ln2_mean, ln2_rstd,
      fc_pre, fc_act, ffn_out, lnf, lnf_mean, lnf_rstd, logits, lse, scale, temp_t, ent_coef;
  std::vector<T> rot_cos, rot_sin;
  // Backward scratch.
  std::vector<T> dres, dx, dxhat, dtmp, dffn, dqkv, datt, dfc, dscale;
  // Last forward.
  int B = 0, Tn = 0, count = 0;
  bool training = false, has_targets = false, backward_done = false, fwd_valid = false;
  std::vector<int32_t> tokens, targets;
  std::vector<double> ent_penalty;
  ForwardStats stats;

  size_t N() const { return size_t(B) * Tn; }
  size_t NM() const { return size_t(maxB) * maxT; }
  T* P(int i) { return params[i].data; }
  T* G(int i) { return params[i].grad; }

  int add(const std::string& name, std::vector<int64_t> shape, bool decay, Init init,
          double val = 0, bool trainable = true) {
    Param p;
    p.name = name;
    p.shape = shape;
    p.size = 1;
    for (auto s : shape) p.size *= size_t(s);
    p.decay = decay;
    p.trainable = trainable;
    params.push_back(p);
    init_kind.push_back(init);
    init_val.push_back(val);
    return int(params.size()) - 1;
  }

  void add_linear(Linear& lin, const std::string& name, int out, int in, double std,
                  const std::vector<std::pair<int, bool>>& subs_wn_sn_groups, bool wn_any,
                  bool sn_any) {
    // subs_wn_sn_groups: per sub-matrix (row blocks of equal height), whether WN / SN is on
    // is decided by the caller through wn_rows and sn_on below.
    lin.name = name;
    lin.out = out;
    lin.in = in;
    lin.wn = wn_any;
    lin.sn = sn_any;
    if (wn_any) {
      lin.g = add(name + ".weight_g", {out}, false, Init::wn_g);
      lin.w = add(name + ".weight_v", {out, in}, true, Init::normal, std);
    } else {
      lin.w = add(name + ".weight", {out, in}, true, Init::normal, std);
    }
    if (sn_any) {
      lin.n_subs = int(subs_wn_sn_groups.size());
      lin.sub_h = out / lin.n_subs;
      lin.u = add(name + ".sn_u", {lin.n_subs, lin.sub_h}, false, Init::sn_u, 0, false);
      for (auto& s : subs_wn_sn_groups) lin.sn_on.push_back(s.second);
    }
    if (cfg.bias) lin.b = add(name + ".bias", {out}, false, Init::zero);
  }

  Impl(const ModelConfig& c, int mb, int mt) : cfg(c), maxB(mb), maxT(mt) {
    AERO_CHECK(mb >= 1, "model: max_batch must be >= 1 (got ", mb, ")");
    AERO_CHECK(mt >= 1 && mt <= c.context, "model: max_seq ", mt, " must be in [1, model.context = ",
               c.context, "]");
    AERO_CHECK(c.d_model % c.n_head == 0, "model.n_head: d_model ", c.d_model,
               " is not divisible by n_head ", c.n_head);
    L = c.n_layer, H = c.n_head, C = c.d_model, D = C / H, F = c.d_ff, V = c.vocab_size;
    R = c.rotary_dims();
    const double sd = c.init_std, sd_out = c.init_std / std::sqrt(2.0 * L);
    const bool ln = c.norm == Norm::layernorm;
    wte = add("wte", {V, C}, true, Init::normal, sd);
    if (c.has_positions()) wpe = add("wpe", {c.context, C}, true, Init::normal, sd);
    layers.resize(L);
    const auto& wn = c.weight_norm;
    const auto& sn = c.spectral_norm;
    for (int l = 0; l < L; l++) {
      Layer& Ly = layers[l];
      std::string p = "blocks." + std::to_string(l) + ".";
      if (ln) {
        Ly.ln1w = add(p + "ln1.weight", {C}, false, Init::one);
        Ly.ln1b = add(p + "ln1.bias", {C}, false, Init::zero);
      }
      add_linear(Ly.qkv, p + "attn.qkv", 3 * C, C, sd, {{0, sn.qk}, {1, sn.qk}, {2, sn.v}},
                 wn.qk || wn.v, sn.qk || sn.v);
      // WN rows of qkv: q, k rows belong to group qk, v rows to group v (contiguous range).
      Ly.qkv.wn_r0 = wn.qk ? 0 : 2 * C;
      Ly.qkv.wn_r1 = wn.v ? 3 * C : 2 * C;
      add_linear(Ly.proj, p + "attn.proj", C, C, sd_out, {{0, sn.o}}, wn.o, sn.o);
      Ly.proj.wn_r0 = 0, Ly.proj.wn_r1 = C;
      if (c.temperature) {
        double s0 = c.temperature_param == TemperatureParam::exp ? std::log(c.temperature_init)
                                                                 : c.temperature_init;
        Ly.temp = add(p + "attn.temp", {H, c.context}, false, Init::constant, s0);
      }
      Ly.ffn = c.has_ffn(l);
      if (!Ly.ffn) continue;
      if (ln) {
        Ly.ln2w = add(p + "ln2.weight", {C}, false, Init::one);
        Ly.ln2b = add(p + "ln2.bias", {C}, false, Init::zero);
      }
      if (c.ffn_kind == FfnKind::standard) {
        add_linear(Ly.fc, p + "ffn.fc", F, C, sd, {{0, sn.ffn}}, wn.ffn, sn.ffn);
        Ly.fc.wn_r0 = 0, Ly.fc.wn_r1 = F;
        add_linear(Ly.fproj, p + "ffn.proj", C, F, sd_out, {{0, sn.ffn}}, wn.ffn, sn.ffn);
        Ly.fproj.wn_r0 = 0, Ly.fproj.wn_r1 = C;
        if (c.ffn_act == Activation::learnable_leaky_relu && c.slope_scope == SlopeScope::per_layer)
          Ly.slope = add(p + "ffn.slope", {1}, false, Init::constant, c.leaky_slope);
      } else {
        add_linear(Ly.fused, p + "ffn.fused", C, C, sd_out, {{0, sn.ffn}}, wn.ffn, sn.ffn);
        Ly.fused.wn_r0 = 0, Ly.fused.wn_r1 = C;
      }
      if (c.ffn_scaling) {
        Ly.alpha = add(p + "ffn_scale.alpha", {1}, false, Init::constant, c.ffn_alpha_init);
        Ly.beta = add(p + "ffn_scale.beta", {1}, false, Init::constant, c.ffn_beta_init);
      }
    }
    if (c.ffn_act == Activation::learnable_leaky_relu && c.slope_scope == SlopeScope::global &&
        c.ffn_kind == FfnKind::standard)
      global_slope = add("ffn_slope", {1}, false, Init::constant, c.leaky_slope);
    if (c.final_norm) {
      lnfw = add("ln_f.weight", {C}, false, Init::one);
      lnfb = add("ln_f.bias", {C}, false, Init::zero);
    }
    if (!c.tie_embeddings) lm_head = add("lm_head.weight", {V, C}, true, Init::normal, sd);
    if (c.entropy_reg.enabled)
      theta = add("entropy_theta", {L, H}, false, Init::constant, c.entropy_reg.theta_init);

    // One arena for the parameters, one (same offsets) for the gradients.
    size_t total = 0;
    for (auto& p : params) {
      offsets.push_back(total);
      total += (p.size + 15) & ~size_t(15);  // 64-byte alignment of every tensor
    }
    arena.assign(total, T(0));
    grad_arena.assign(total, T(0));
    for (size_t i = 0; i < params.size(); i++) {
      params[i].data = arena.data() + offsets[i];
      params[i].grad = params[i].trainable ? grad_arena.data() + offsets[i] : nullptr;
    }
    for (auto& Ly : layers)
      for (Linear* lin : {&Ly.qkv, &Ly.proj, &Ly.fc, &Ly.fproj, &Ly.fused}) {
        if (lin->w < 0) continue;
        size_t n = size_t(lin->out) * lin->in;
        if (lin->wn || lin->sn) {
          lin->w_eff.assign(n, T(0));
          lin->dw_eff.assign(n, T(0));
        }
        if (lin->wn) lin->norms.assign(lin->out, T(0));
        if (lin->sn) {
          lin->sn_v.assign(size_t(lin->n_subs) * lin->in, T(0));
          lin->sn_sigma.assign(lin->n_subs, T(1));
        }
      }

    // Activations, allocated once.
    const size_t NMx = NM(), NC = NMx * C;
    const bool any_ffn = c.ffn_kind != FfnKind::none;
    res.assign(NC * (L + 1), 0);
    if (ln) {
      ln1.assign(NC * L, 0);
      ln1_mean.assign(NMx * L, 0);
      ln1_rstd.assign(NMx * L, 0);
      ln2.assign(NC * L, 0);
      ln2_mean.assign(NMx * L, 0);
      ln2_rstd.assign(NMx * L, 0);
    }
    qkv.assign(3 * NC * L, 0);
    probs.assign(size_t(maxB) * H * maxT * maxT * L, 0);
    att.assign(NC * L, 0);
    xhat.assign(NC * L, 0);
    if (any_ffn) ffn_out.assign(NC * L, 0);
    if (c.ffn_kind == FfnKind::standard) {
      fc_pre.assign(NMx * F * L, 0);
      if (c.ffn_act != Activation::identity) fc_act.assign(NMx * F * L, 0);
      dfc.assign(NMx * F, 0);
    }
    if (c.final_norm) {
      lnf.assign(NC, 0);
      lnf_mean.assign(NMx, 0);
      lnf_rstd.assign(NMx, 0);
    }
    logits.assign(NMx * V, 0);
    lse.assign(NMx, 0);
    scale.assign(size_t(L) * H * maxT, 0);
    temp_t.assign(size_t(L) * H * maxT, 1);
    if (c.entropy_reg.enabled) ent_coef.assign(size_t(L) * maxB * H * maxT, 0);
    ent_penalty.assign(L, 0);
    dres.assign(NC, 0);
    dx.assign(NC, 0);
    dxhat.assign(NC, 0);
    dtmp.assign(NC, 0);
    if (c.ffn_scaling) dffn.assign(NC, 0);
    dqkv.assign(3 * NC, 0);
    datt.assign(NC, 0);
    if (c.temperature) dscale.assign(size_t(maxB) * H * maxT, 0);
    if (R > 0) {
      // cos/sin of t * base^(-2f/R), in double then rounded (as GPT-NeoX's cached table).
      int half = R / 2;
      rot_cos.assign(size_t(maxT) * half, 0);
      rot_sin.assign(size_t(maxT) * half, 0);
      for (int t = 0; t < maxT; t++)
        for (int f = 0; f < half; f++) {
          double inv = std::pow(c.rotary_base, -2.0 * f / R);
          rot_cos[size_t(t) * half + f] = T(std::cos(t * inv));
          rot_sin[size_t(t) * half + f] = T(std::sin(t * inv));
        }
    }
  }

  // ---------------------------------------------------------------- reparameterizations
  void prepare_linear(Linear& lin, bool iterate) {
    if (!lin.wn && !lin.sn) {
      lin.W = P(lin.w);
      lin.dW = G(lin.w);
      return;
    }
    lin.W = lin.w_eff.data();
    lin.dW = lin.dw_eff.data();
    if (lin.wn) {
      weight_norm_forward(lin.w_eff.data(), lin.norms.data(), P(lin.g), P(lin.w), lin.out, lin.in,
                          lin.wn_r0, lin.wn_r1);
    } else {
      std::copy(P(lin.w), P(lin.w) + size_t(lin.out) * lin.in, lin.w_eff.data());
      for (int s = 0; s < lin.n_subs; s++) {
        if (!lin.sn_on[s]) continue;
        size_t off = size_t(s) * lin.sub_h * lin.in;
        lin.sn_sigma[s] = spectral_norm_forward(lin.w_eff.data() + off, P(lin.u) + size_t(s) * lin.sub_h,
                                                lin.sn_v.data() + size_t(s) * lin.in, P(lin.w) + off,
                                                lin.sub_h, lin.in, iterate);
      }
    }
  }
  void finish_linear_backward(Linear& lin) {
    if (!lin.wn && !lin.sn) return;
    if (lin.wn) {
      weight_norm_backward(G(lin.g), G(lin.w), lin.dw_eff.data(), P(lin.g), P(lin.w),
                           lin.norms.data(), lin.out, lin.in, lin.wn_r0, lin.wn_r1);
      return;
    }
    for (int s = 0; s < lin.n_subs; s++) {
      size_t off = size_t(s) * lin.sub_h * lin.in, n = size_t(lin.sub_h) * lin.in;
      if (!lin.sn_on[s]) {
        T* g = G(lin.w) + off;
        const T* d = lin.dw_eff.data() + off;
        for (size_t i = 0; i < n; i++) g[i] += d[i];
        continue;
      }
      spectral_norm_backward(G(lin.w) + off, lin.dw_eff.data() + off, P(lin.w) + off,
                             P(lin.u) + size_t(s) * lin.sub_h, lin.sn_v.data() + size_t(s) * lin.in,
                             lin.sn_sigma[s], lin.sub_h, lin.in);
    }
  }
  template <typename Fn>
  void for_linears(Fn fn) {
    for (auto& Ly : layers)
      for (Linear* lin : {&Ly.qkv, &Ly.proj, &Ly.fc, &Ly.fproj, &Ly.fused})
        if (lin->w >= 0) fn(*lin);
  }

  T slope_of(const Layer& Ly) const {
    if (cfg.ffn_act != Activation::learnable_leaky_relu) return T(cfg.leaky_slope);
    return Ly.slope >= 0 ? params[Ly.slope].data[0] : params[global_slope].data[0];
  }

  // Activation pointers of layer l.
  T* res_at(int l) { return res.data() + size_t(l) * NM() * C; }
  T* lay(std::vector<T>& v, int l, size_t per) { return v.data() + size_t(l) * per; }

  // ---------------------------------------------------------------- forward
  ForwardStats forward(const int32_t* tok, const int32_t* tgt, int b, int t, bool train) {
    AERO_CHECK(b >= 1 && b <= maxB, "model.forward: batch ", b, " outside [1, max_batch = ", maxB, "]");
    AERO_CHECK(t >= 1 && t <= maxT, "model.forward: sequence length ", t, " outside [1, max_seq = ", maxT, "]");
    B = b, Tn = t;
    const size_t n = N();
    for (size_t i = 0; i < n; i++)
      AERO_CHECK(tok[i] >= 0 && tok[i] < V, "model.forward: token ", tok[i], " at position ", i,
                 " is outside the vocabulary [0, ", V, ")");
    tokens.assign(tok, tok + n);
    has_targets = tgt != nullptr;
    if (tgt) {
      for (size_t i = 0; i < n; i++)
        AERO_CHECK(tgt[i] < V, "model.forward: target ", tgt[i], " at position ", i,
                   " is outside the vocabulary [0, ", V, ")");
      targets.assign(tgt, tgt + n);
    }
    training = train;
    backward_done = false;
    fwd_valid = true;
    const bool ln = cfg.norm == Norm::layernorm;
    const bool ent_on = cfg.entropy_reg.enabled && train;
    const size_t NC = NM() * C;

    for_linears([&](Linear& lin) { prepare_linear(lin, train && !sn_frozen); });

    // Per-(head, query) score multipliers 1 / (t sqrt(D)).
    const double inv_sqrt_d = 1.0 / std::sqrt(double(D));
    for (int l = 0; l < L; l++) {
      T* sc = scale.data() + size_t(l) * H * maxT;
      T* tt = temp_t.data() + size_t(l) * H * maxT;
      for (int h = 0; h < H; h++)
        for (int i = 0; i < maxT; i++) {
          T tv = 1;
          if (layers[l].temp >= 0) {
            T s = P(layers[l].temp)[size_t(h) * cfg.context + i];
            tv = cfg.temperature_param == TemperatureParam::exp ? std::exp(s)
                 : cfg.temperature_param == TemperatureParam::direct ? s : T(1) + s;
          }
          tt[size_t(h) * maxT + i] = tv;
          sc[size_t(h) * maxT + i] = T(inv_sqrt_d) / tv;
        }
    }

    embedding_forward(res_at(0), tok, P(wte), wpe >= 0 ? P(wpe) : nullptr, B, Tn, C, V);
    const size_t probs_per = size_t(maxB) * H * maxT * maxT;
    for (int l = 0; l < L; l++) {
      Layer& Ly = layers[l];
      T* x = res_at(l);
      T* out = res_at(l + 1);
      T* a_in = x;
      if (ln) {
        a_in = lay(ln1, l, NC);
        layernorm_forward(a_in, lay(ln1_mean, l, NM()), lay(ln1_rstd, l, NM()), x, P(Ly.ln1w),
                          P(Ly.ln1b), int(n), C);
      }
      T* q = lay(qkv, l, 3 * NC);
      linear_forward(q, a_in, Ly.qkv.W, Ly.qkv.b >= 0 ? P(Ly.qkv.b) : nullptr, int(n), C, 3 * C);
      if (R > 0) rotary_apply(q, rot_cos.data(), rot_sin.data(), B, Tn, C, H, R, false);
      EntropyRegArgs<T> ea;
      if (ent_on) {
        ea.theta = P(theta) + size_t(l) * H;
        ea.e_max = std::log(double(Tn));
        ea.tol = cfg.entropy_reg.gamma * ea.e_max;
        ea.weight = cfg.entropy_reg.lambda / (double(L) * H);
        if (cfg.entropy_reg.reduction == EntropyReduction::mean) ea.weight /= double(B) * Tn;
        ea.coef = ent_coef.data() + size_t(l) * maxB * H * maxT;
      }
      T* pr = lay(probs, l, probs_per);
      T* at = lay(att, l, NC);
      attention_forward(at, pr, q, scale.data() + size_t(l) * H * maxT, maxT, B, Tn, C, H,
                        ent_on ? &ea : nullptr);
      ent_penalty[l] = ent_on ? ea.penalty : 0.0;
      T* xh = lay(xhat, l, NC);
      // x_hat = x + attn_proj(att): bias rows + copy of x, then one GEMM accumulating.
      {
        const T* pb = Ly.proj.b >= 0 ? P(Ly.proj.b) : nullptr;
#pragma omp parallel for if(n * C >= size_t(omp_min_work)) schedule(static)
        for (long r = 0; r < long(n); r++) {
          T* o = xh + size_t(r) * C;
          const T* xi = x + size_t(r) * C;
          if (pb)
            for (int i = 0; i < C; i++) o[i] = xi[i] + pb[i];
          else
            std::copy(xi, xi + C, o);
        }
        gemm<T>(false, true, int(n), C, C, T(1), at, C, Ly.proj.W, C, T(1), xh, C);
      }
      if (!Ly.ffn) {
        std::copy(xh, xh + n * C, out);
        continue;
      }
      T* f_src = cfg.parallel_residual ? x : xh;
      T* f_in = f_src;
      if (ln) {
        f_in = lay(ln2, l, NC);
        layernorm_forward(f_in, lay(ln2_mean, l, NM()), lay(ln2_rstd, l, NM()), f_src, P(Ly.ln2w),
                          P(Ly.ln2b), int(n), C);
      }
      T* fo = lay(ffn_out, l, NC);
      if (cfg.ffn_kind == FfnKind::standard) {
        T* pre = lay(fc_pre, l, NM() * F);
        linear_forward(pre, f_in, Ly.fc.W, Ly.fc.b >= 0 ? P(Ly.fc.b) : nullptr, int(n), C, F);
        T* act = pre;
        if (cfg.ffn_act != Activation::identity) {
          act = lay(fc_act, l, NM() * F);
          activation_forward(act, pre, n * F, act_of(cfg.ffn_act), slope_of(Ly));
        }
        linear_forward(fo, act, Ly.fproj.W, Ly.fproj.b >= 0 ? P(Ly.fproj.b) : nullptr, int(n), F, C);
      } else {
        linear_forward(fo, f_in, Ly.fused.W, Ly.fused.b >= 0 ? P(Ly.fused.b) : nullptr, int(n), C, C);
      }
      const T beta = Ly.beta >= 0 ? P(Ly.beta)[0] : T(1);
      const T inv_alpha = Ly.alpha >= 0 ? T(1) / P(Ly.alpha)[0] : T(1);
#pragma omp parallel for if(n * C >= size_t(omp_min_work)) schedule(static)
      for (long i = 0; i < long(n * C); i++) out[i] = beta * xh[i] + inv_alpha * fo[i];
    }
    T* h = res_at(L);
    if (cfg.final_norm) {
      layernorm_forward(lnf.data(), lnf_mean.data(), lnf_rstd.data(), h, P(lnfw), P(lnfb), int(n), C);
      h = lnf.data();
    }
    const T* Wout = lm_head >= 0 ? P(lm_head) : P(wte);
    gemm<T>(false, true, int(n), V, C, T(1), h, C, Wout, C, T(0), logits.data(), V);

    stats = ForwardStats{};
    count = 0;
    double ce_sum = crossentropy_forward(lse.data(), logits.data(), tgt, int(n), V, &count);
    if (tgt) stats.ce = count ? ce_sum / count : 0.0;
    if (ent_on) {
      double s = 0;
      for (int l = 0; l < L; l++) s += ent_penalty[l];
      s /= double(H) * L;
      if (cfg.entropy_reg.reduction == EntropyReduction::mean) s /= double(B) * Tn;
      stats.ent_reg = s;
    }
    stats.loss = stats.ce + (ent_on ? cfg.entropy_reg.lambda * stats.ent_reg : 0.0);
    return stats;
  }

  // ---------------------------------------------------------------- backward
  void backward() {
    AERO_CHECK(fwd_valid && has_targets, "model.backward: needs a forward with targets first");
    AERO_CHECK(!backward_done, "model.backward: called twice for one forward (logits were consumed)");
    backward_done = true;
    const size_t n = N(), NC = NM() * C;
    const bool ln = cfg.norm == Norm::layernorm;
    const bool ent_on = cfg.entropy_reg.enabled && training;
    for_linears([&](Linear& lin) {
      if (lin.wn || lin.sn) std::fill(lin.dw_eff.begin(), lin.dw_eff.end(), T(0));
    });

    crossentropy_backward(logits.data(), lse.data(), targets.data(), int(n), V,
                          count ? T(1.0 / count) : T(0));
    const T* hL = cfg.final_norm ? lnf.data() : res_at(L);
    const int wout = lm_head >= 0 ? lm_head : wte;
    T* dr = dres.data();
    T* dn = dx.data();
    if (cfg.final_norm) {
      linear_backward(dtmp.data(), G(wout), (T*)nullptr, logits.data(), hL, P(wout), int(n), C, V, false);
      std::fill(dr, dr + n * C, T(0));
      layernorm_backward(dr, G(lnfw), G(lnfb), dtmp.data(), res_at(L), P(lnfw), lnf_mean.data(),
                         lnf_rstd.data(), int(n), C);
    } else {
      linear_backward(dr, G(wout), (T*)nullptr, logits.data(), hL, P(wout), int(n), C, V, false);
    }

    const size_t probs_per = size_t(maxB) * H * maxT * maxT;
    for (int l = L - 1; l >= 0; l--) {
      Layer& Ly = layers[l];
      T* x = res_at(l);
      T* xh = lay(xhat, l, NC);
      T* dxh = dxhat.data();
      if (Ly.ffn) {
        const T* dffn_p = dr;
        if (Ly.alpha >= 0) {
          const T alpha = P(Ly.alpha)[0], beta = P(Ly.beta)[0];
          const T* fo = lay(ffn_out, l, NC);
          T db = 0, da = 0;
#pragma omp parallel for if(n * C >= size_t(omp_min_work)) reduction(+ : db, da) schedule(static)
          for (long i = 0; i < long(n * C); i++) {
            db += dr[i] * xh[i];
            da += dr[i] * fo[i];
            dxh[i] = beta * dr[i];
            dffn[i] = dr[i] / alpha;
          }
          G(Ly.beta)[0] += db;
          G(Ly.alpha)[0] += -da / (alpha * alpha);
          dffn_p = dffn.data();
        } else {
          std::copy(dr, dr + n * C, dxh);
        }
        if (cfg.parallel_residual) std::copy(dxh, dxh + n * C, dn);
        T* target = cfg.parallel_residual ? dn : dxh;
        T* f_src = cfg.parallel_residual ? x : xh;
        T* f_in = ln ? lay(ln2, l, NC) : f_src;
        T* dfin = ln ? dtmp.data() : target;
        if (cfg.ffn_kind == FfnKind::standard) {
          T* pre = lay(fc_pre, l, NM() * F);
          T* act = cfg.ffn_act != Activation::identity ? lay(fc_act, l, NM() * F) : pre;
          linear_backward(dfc.data(), Ly.fproj.dW, Ly.fproj.b >= 0 ? G(Ly.fproj.b) : nullptr, dffn_p,
                          act, Ly.fproj.W, int(n), F, C, false);
          if (cfg.ffn_act != Activation::identity) {
            T* dslope = nullptr;
            if (cfg.ffn_act == Activation::learnable_leaky_relu)
              dslope = Ly.slope >= 0 ? G(Ly.slope) : G(global_slope);
            activation_backward(dfc.data(), dfc.data(), pre, n * F, act_of(cfg.ffn_act), slope_of(Ly), dslope);
          }
          linear_backward(dfin, Ly.fc.dW, Ly.fc.b >= 0 ? G(Ly.fc.b) : nullptr, dfc.data(), f_in,
                          Ly.fc.W, int(n), C, F, !ln);
        } else {
          linear_backward(dfin, Ly.fused.dW, Ly.fused.b >= 0 ? G(Ly.fused.b) : nullptr, dffn_p, f_in,
                          Ly.fused.W, int(n), C, C, !ln);
        }
        if (ln)
          layernorm_backward(target, G(Ly.ln2w), G(Ly.ln2b), dtmp.data(), f_src, P(Ly.ln2w),
                             lay(ln2_mean, l, NM()), lay(ln2_rstd, l, NM()), int(n), C);
        if (!cfg.parallel_residual) std::copy(dxh, dxh + n * C, dn);
      } else {
        dxh = dr;
        std::copy(dr, dr + n * C, dn);
      }
      // Attention: x_hat = x + proj(att(LN1 x)); dn already holds the residual path.
      linear_backward(datt.data(), Ly.proj.dW, Ly.proj.b >= 0 ? G(Ly.proj.b) : nullptr, dxh,
                      lay(att, l, NC), Ly.proj.W, int(n), C, C, false);
      EntropyRegArgs<T> ea;
      if (ent_on) {
        ea.e_max = std::log(double(Tn));
        ea.coef = ent_coef.data() + size_t(l) * maxB * H * maxT;
      }
      T* q = lay(qkv, l, 3 * NC);
      const T* sc = scale.data() + size_t(l) * H * maxT;
      attention_backward(dqkv.data(), Ly.temp >= 0 ? dscale.data() : nullptr,
                         ent_on ? G(theta) + size_t(l) * H : nullptr, datt.data(), q,
                         lay(probs, l, probs_per), sc, maxT, B, Tn, C, H, ent_on ? &ea : nullptr);
      if (Ly.temp >= 0) {
        // scale = 1/(t sqrt D): d scale/d t = -scale/t; t = exp(s) -> dt/ds = t, else 1.
        const T* tt = temp_t.data() + size_t(l) * H * maxT;
        T* gs = G(Ly.temp);
        const bool ex = cfg.temperature_param == TemperatureParam::exp;
        for (int h = 0; h < H; h++)
          for (int i = 0; i < Tn; i++) {
            T acc = 0;
            for (int b = 0; b < B; b++) acc += dscale[(size_t(b) * H + h) * Tn + i];
            T tv = tt[size_t(h) * maxT + i], s = sc[size_t(h) * maxT + i];
            gs[size_t(h) * cfg.context + i] += acc * (-s / tv) * (ex ? tv : T(1));
          }
      }
      if (R > 0) rotary_apply(dqkv.data(), rot_cos.data(), rot_sin.data(), B, Tn, C, H, R, true);
      if (ln) {
        linear_backward(dtmp.data(), Ly.qkv.dW, Ly.qkv.b >= 0 ? G(Ly.qkv.b) : nullptr, dqkv.data(),
                        lay(ln1, l, NC), Ly.qkv.W, int(n), C, 3 * C, false);
        layernorm_backward(dn, G(Ly.ln1w), G(Ly.ln1b), dtmp.data(), x, P(Ly.ln1w),
                           lay(ln1_mean, l, NM()), lay(ln1_rstd, l, NM()), int(n), C);
      } else {
        linear_backward(dn, Ly.qkv.dW, Ly.qkv.b >= 0 ? G(Ly.qkv.b) : nullptr, dqkv.data(), x,
                        Ly.qkv.W, int(n), C, 3 * C, true);
      }
      std::swap(dr, dn);
    }
    embedding_backward(G(wte), wpe >= 0 ? G(wpe) : nullptr, dr, tokens.data(), B, Tn, C);
    for_linears([&](Linear& lin) { finish_linear_backward(lin); });
  }

  // ---------------------------------------------------------------- diagnostics
  std::string find_nonfinite() const {
    if (!fwd_valid) return "";
    auto* self = const_cast<Impl*>(this);
    const size_t n = N(), NC = NM() * C;
    const bool ln = cfg.norm == Norm::layernorm;
    std::ostringstream os;
    auto bad = [&](const T* p, size_t cnt) { return !all_finite(p, cnt); };
    if (bad(self->res_at(0), n * C)) return "embeddings (wte/wpe) output";
    const size_t probs_per = size_t(maxB) * H * maxT * maxT;
    for (int l = 0; l < L; l++) {
      const Layer& Ly = layers[l];
      std::string pre = "layer " + std::to_string(l);
      for (int h = 0; h < H; h++)
        for (int i = 0; i < Tn; i++)
          if (!std::isfinite(temp_t[(size_t(l) * H + h) * maxT + i]) ||
              !std::isfinite(scale[(size_t(l) * H + h) * maxT + i]))
            return pre + " head " + std::to_string(h) + ": softmax temperature (position " + std::to_string(i) + ")";
      if (ln && bad(ln1.data() + l * NC, n * C)) return pre + ": ln1 output";
      const T* q = qkv.data() + 3 * l * NC;
      for (int part = 0; part < 3; part++)
        for (int h = 0; h < H; h++) {
          bool ok = true;
          for (size_t r = 0; r < n && ok; r++) ok = all_finite(q + r * 3 * C + part * C + h * D, D);
          if (!ok)
            return pre + " head " + std::to_string(h) + ": attention " + (part == 0 ? "queries" : part == 1 ? "keys" : "values");
        }
      const T* pr = probs.data() + l * probs_per;
      for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
          if (bad(pr + (size_t(b) * H + h) * Tn * Tn, size_t(Tn) * Tn))
            return pre + " head " + std::to_string(h) + ": attention logits/probabilities (softmax overflow, batch row " + std::to_string(b) + ")";
      if (bad(att.data() + l * NC, n * C)) return pre + ": attention output";
      if (bad(xhat.data() + l * NC, n * C)) return pre + ": attention projection / residual (x_hat)";
      if (!Ly.ffn) continue;
      if (ln && bad(ln2.data() + l * NC, n * C)) return pre + ": ln2 output";
      if (cfg.ffn_kind == FfnKind::standard) {
        if (bad(fc_pre.data() + l * NM() * F, n * F)) return pre + ": FFN hidden pre-activation (fc)";
        if (!fc_act.empty() && bad(fc_act.data() + l * NM() * F, n * F)) return pre + ": FFN activation output";
      }
      if (bad(ffn_out.data() + l * NC, n * C)) return pre + ": FFN output";
      if (bad(res.data() + (l + 1) * NC, n * C)) return pre + ": block output (residual stream)";
    }
    if (cfg.final_norm && bad(lnf.data(), n * C)) return "final norm (ln_f) output";
    if (!backward_done && bad(logits.data(), n * V)) return "LM head logits";
    if (backward_done) {
      for (auto& p : params)
        if (p.grad && bad(p.grad, p.size)) return "gradient of " + p.name;
    }
    for (auto& p : params)
      if (bad(p.data, p.size)) return "parameter " + p.name;
    return "";
  }
};

template <typename T>
BasicModel<T>::BasicModel(const ModelConfig& cfg, int max_batch, int max_seq)
    : impl_(std::make_unique<Impl>(cfg, max_batch, max_seq)) {}
template <typename T>
BasicModel<T>::~BasicModel() = default;
template <typename T>
const ModelConfig& BasicModel<T>::config() const { return impl_->cfg; }
template <typename T>
std::vector<BasicParam<T>>& BasicModel<T>::params() { return impl_->params; }
template <typename T>
BasicParam<T>& BasicModel<T>::param(const std::string& name) {
  for (auto& p : impl_->params)
    if (p.name == name) return p;
  fail("model: no parameter named '", name, "' in this configuration");
}
template <typename T>
const BasicParam<T>* BasicModel<T>::find_param(const std::string& name) const {
  for (auto& p : impl_->params)
    if (p.name == name) return &p;
  return nullptr;
}
template <typename T>
size_t BasicModel<T>::num_parameters() const {
  size_t n = 0;
  for (auto& p : impl_->params)
    if (p.trainable) n += p.size;
  return n;
}

template <typename T>
void BasicModel<T>::init_weights(uint64_t seed) {
  auto& I = *impl_;
  Rng rng(seed);
  for (size_t k = 0; k < I.params.size(); k++) {
    auto& p = I.params[k];
    switch (I.init_kind[k]) {
      case Init::normal:
        for (size_t i = 0; i < p.size; i++) p.data[i] = T(rng.normal() * I.init_val[k]);
        break;
      case Init::zero: std::fill(p.data, p.data + p.size, T(0)); break;
      case Init::one: std::fill(p.data, p.data + p.size, T(1)); break;
      case Init::constant: std::fill(p.data, p.data + p.size, T(I.init_val[k])); break;
      case Init::wn_g: break;  // after its weight_v, below
      case Init::sn_u: {
        int rows = int(p.shape[0]), h = int(p.shape[1]);
        for (int r = 0; r < rows; r++) {
          double ss = 0;
          for (int i = 0; i < h; i++) {
            double v = rng.normal();
            p.data[size_t(r) * h + i] = T(v);
            ss += v * v;
          }
          T s = T(1.0 / std::max(std::sqrt(ss), 1e-12));
          for (int i = 0; i < h; i++) p.data[size_t(r) * h + i] *= s;
        }
        break;
      }
    }
  }
  // weight_g = ||weight_v|| per row, so that the initial effective weight equals v.
  I.for_linears([&](typename Impl::Linear& lin) {
    if (!lin.wn) return;
    for (int o = 0; o < lin.out; o++) {
      const T* v = I.P(lin.w) + size_t(o) * lin.in;
      double ss = 0;
      for (int i = 0; i < lin.in; i++) ss += double(v[i]) * v[i];
      I.P(lin.g)[o] = T(std::sqrt(ss));
    }
  });
  zero_grad();
}

template <typename T>
ForwardStats BasicModel<T>::forward(const int32_t* tokens, const int32_t* targets, int B, int Tn,
                                    bool training) {
  return impl_->forward(tokens, targets, B, Tn, training);
}
template <typename T>
void BasicModel<T>::backward() { impl_->backward(); }
template <typename T>
void BasicModel<T>::zero_grad() {
  std::fill(impl_->grad_arena.begin(), impl_->grad_arena.end(), T(0));
}
template <typename T>
const T* BasicModel<T>::logits() const { return impl_->logits.data(); }
template <typename T>
const T* BasicModel<T>::attn_probs(int layer) const {
  AERO_CHECK(layer >= 0 && layer < impl_->L, "model.attn_probs: layer ", layer, " outside [0, ", impl_->L, ")");
  return impl_->probs.data() + size_t(layer) * impl_->maxB * impl_->H * impl_->maxT * impl_->maxT;
}
template <typename T>
std::vector<std::vector<double>> BasicModel<T>::head_entropy() const {
  auto& I = *impl_;
  std::vector<std::vector<double>> out(I.L, std::vector<double>(I.H, 0.0));
  if (!I.fwd_valid) return out;
  const int B = I.B, Tn = I.Tn, H = I.H;
  for (int l = 0; l < I.L; l++) {
    const T* pr = attn_probs(l);
    std::vector<double> acc(size_t(B) * H, 0.0);
#pragma omp parallel for if(size_t(B) * H * Tn * Tn >= size_t(omp_min_work)) schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
      double s = 0;
      for (int i = 0; i < Tn; i++) {
        const T* row = pr + (size_t(bh) * Tn + i) * Tn;
        for (int j = 0; j <= i; j++) s -= double(row[j]) * std::log(double(row[j]) + 1e-9);
      }
      acc[bh] = s;
    }
    for (int bh = 0; bh < B * H; bh++) out[l][bh % H] += acc[bh] / (double(B) * Tn);
  }
  return out;
}
template <typename T>
std::string BasicModel<T>::find_nonfinite() const { return impl_->find_nonfinite(); }
template <typename T>
int BasicModel<T>::max_batch() const { return impl_->maxB; }
template <typename T>
int BasicModel<T>::max_seq() const { return impl_->maxT; }
template <typename T>
int BasicModel<T>::last_batch() const { return impl_->B; }
template <typename T>
int BasicModel<T>::last_seq() const { return impl_->Tn; }
template <typename T>
void BasicModel<T>::set_spectral_norm_frozen(bool f) { impl_->sn_frozen = f; }

template <typename T>
std::vector<T> BasicModel<T>::effective_weight(const std::string& name) const {
  auto& I = *impl_;
  for (auto& Ly : I.layers)
    for (auto* lin : {&Ly.qkv, &Ly.proj, &Ly.fc, &Ly.fproj, &Ly.fused}) {
      if (lin->w < 0 || lin->name != name) continue;
      size_t n = size_t(lin->out) * lin->in;
      std::vector<T> w(n);
      const T* src = I.params[lin->w].data;
      if (lin->wn) {
        std::vector<T> norms(lin->out);
        weight_norm_forward(w.data(), norms.data(), I.params[lin->g].data, src, lin->out, lin->in,
                            lin->wn_r0, lin->wn_r1);
      } else {
        std::copy(src, src + n, w.data());
        if (lin->sn)
          for (int s = 0; s < lin->n_subs; s++) {
            if (!lin->sn_on[s]) continue;
            size_t off = size_t(s) * lin->sub_h * lin->in;
            std::vector<T> u(I.params[lin->u].data + size_t(s) * lin->sub_h,
                             I.params[lin->u].data + size_t(s + 1) * lin->sub_h);
            std::vector<T> v(lin->in);
            spectral_norm_forward(w.data() + off, u.data(), v.data(), src + off, lin->sub_h, lin->in, false);
          }
      }
      return w;
    }
  fail("model.effective_weight: no linear layer named '", name, "'");
}

template <typename T>
std::vector<T> BasicModel<T>::temperature(int layer) const {
  auto& I = *impl_;
  AERO_CHECK(layer >= 0 && layer < I.L, "model.temperature: layer ", layer, " outside [0, ", I.L, ")");
  const int ctx = I.cfg.context;
  std::vector<T> t(size_t(I.H) * ctx, T(1));
  int idx = I.layers[layer].temp;
  if (idx < 0) return t;
  const T* s = I.params[idx].data;
  for (size_t i = 0; i < t.size(); i++)
    t[i] = I.cfg.temperature_param == TemperatureParam::exp ? std::exp(s[i])
           : I.cfg.temperature_param == TemperatureParam::direct ? s[i] : T(1) + s[i];
  return t;
}

template class BasicModel<float>;
template class BasicModel<double>;

}  // namespace aero::model
