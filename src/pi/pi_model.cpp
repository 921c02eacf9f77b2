// Folding a trained model into private-inference constants (see pi_model.h).
#include "pi/pi_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"

namespace aero::pi {
using model::ModelConfig;

namespace {

std::vector<double> get(const SafeTensors& st, const std::string& name, size_t expect) {
  auto v = st.at(name).to_f64(name);
  AERO_CHECK(v.size() == expect, "tensor '", name, "': expected ", expect, " elements, got ", v.size());
  return v;
}

// Effective weight of one linear: plain, weight-normalized (g v / ||v|| per output row) or
// spectrally normalized (W / sigma per sub-matrix of `parts` row blocks, sigma from the saved
// power-iteration vector u: v = W^T u / ||W^T u||, sigma = u . W v, as PyTorch's eval mode).
PiLinear load_linear(const SafeTensors& st, const std::string& base, int out, int in, bool bias,
                     bool wn, bool sn, int parts, const std::vector<bool>& part_normed) {
  PiLinear L;
  L.out = out;
  L.in = in;
  size_t n = size_t(out) * in;
  if (wn && st.has(base + ".weight_v")) {
    auto g = get(st, base + ".weight_g", out);
    L.w = get(st, base + ".weight_v", n);
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int i = 0; i < in; ++i) s += L.w[size_t(o) * in + i] * L.w[size_t(o) * in + i];
      double k = g[o] / std::sqrt(s);
      for (int i = 0; i < in; ++i) L.w[size_t(o) * in + i] *= k;
    }
  } else {
    L.w = get(st, base + ".weight", n);
  }
  if (sn && st.has(base + ".sn_u")) {
    int rows = out / parts;
    auto u = st.at(base + ".sn_u").to_f64(base + ".sn_u");
    AERO_CHECK(u.size() == size_t(out), "tensor '", base, ".sn_u': expected ", out, " elements");
    for (int p = 0; p < parts; ++p) {
      if (!part_normed[p]) continue;
      double* W = L.w.data() + size_t(p) * rows * in;
      const double* up = u.data() + size_t(p) * rows;
      std::vector<double> v(in, 0.0);
      for (int r = 0; r < rows; ++r)
        for (int i = 0; i < in; ++i) v[i] += W[size_t(r) * in + i] * up[r];
      double nv = 0;
      for (double x : v) nv += x * x;
      nv = std::sqrt(nv) + 1e-12;
      for (double& x : v) x /= nv;
      double sigma = 0;
      for (int r = 0; r < rows; ++r) {
        double wv = 0;
        for (int i = 0; i < in; ++i) wv += W[size_t(r) * in + i] * v[i];
        sigma += up[r] * wv;
      }
      for (size_t k = 0; k < size_t(rows) * in; ++k) W[k] /= sigma;
    }
  }
  if (bias) L.b = get(st, base + ".bias", out);
  return L;
}

void rotary_tables(PiModel& m) {
  const auto& c = m.cfg;
  int r = c.rotary_dims();
  if (r == 0) return;
  int half = r / 2;
  m.rot_cos.resize(size_t(c.context) * half);
  m.rot_sin.resize(size_t(c.context) * half);
  for (int t = 0; t < c.context; ++t)
    for (int i = 0; i < half; ++i) {
      double inv = std::pow(c.rotary_base, -2.0 * i / r);
      m.rot_cos[size_t(t) * half + i] = std::cos(t * inv);
      m.rot_sin[size_t(t) * half + i] = std::sin(t * inv);
    }
}

double temperature_value(const ModelConfig& c, double s) {
  switch (c.temperature_param) {
    case model::TemperatureParam::exp: return std::exp(s);
    case model::TemperatureParam::direct: return s;
    case model::TemperatureParam::offset: return 1.0 + s;
  }
  return 1.0;
}

}  // namespace

PiModel PiModel::from_tensors(const ModelConfig& c, const SafeTensors& st, bool fold) {
  PiModel m;
  m.cfg = c;
  const int d = c.d_model, V = c.vocab_size, T = c.context, H = c.n_head;
  m.wte = get(st, "wte", size_t(V) * d);
  if (c.has_positions()) m.wpe = get(st, "wpe", size_t(T) * d);
  if (!c.tie_embeddings) m.lm_head = get(st, "lm_head.weight", size_t(V) * d);
  if (c.final_norm) {
    m.ln_f.g = get(st, "ln_f.weight", d);
    m.ln_f.b = get(st, "ln_f.bias", d);
  }
  double global_slope = c.leaky_slope;
  if (c.ffn_act == model::Activation::learnable_leaky_relu && c.slope_scope == model::SlopeScope::global)
    global_slope = get(st, "ffn_slope", 1)[0];
  const auto& wn = c.weight_norm;
  const auto& sn = c.spectral_norm;
  for (int l = 0; l < c.n_layer; ++l) {
    std::string p = "blocks." + std::to_string(l) + ".";
    PiBlock b;
    if (c.norm == model::Norm::layernorm) {
      b.ln1 = {get(st, p + "ln1.weight", d), get(st, p + "ln1.bias", d)};
      b.ln2 = {get(st, p + "ln2.weight", d), get(st, p + "ln2.bias", d)};
    }
    b.qkv = load_linear(st, p + "attn.qkv", 3 * d, d, c.bias, wn.qk || wn.v, sn.qk || sn.v, 3,
                        {sn.qk, sn.qk, sn.v});
    if (wn.qk != wn.v && (wn.qk || wn.v))
      fail("weight_norm on only part of attn.qkv is not supported by private inference");
    b.proj = load_linear(st, p + "attn.proj", d, d, c.bias, wn.o, sn.o, 1, {true});
    b.has_ffn = c.has_ffn(l);
    if (b.has_ffn) {
      if (c.ffn_kind == model::FfnKind::fused) {
        b.fused = load_linear(st, p + "ffn.fused", d, d, c.bias, wn.ffn, sn.ffn, 1, {true});
      } else {
        b.fc = load_linear(st, p + "ffn.fc", c.d_ff, d, c.bias, wn.ffn, sn.ffn, 1, {true});
        b.fc_proj = load_linear(st, p + "ffn.proj", d, c.d_ff, c.bias, wn.ffn, sn.ffn, 1, {true});
      }
      if (c.ffn_scaling) {
        b.inv_alpha = 1.0 / get(st, p + "ffn_scale.alpha", 1)[0];
        b.beta = get(st, p + "ffn_scale.beta", 1)[0];
      }
    }
    b.slope = global_slope;
    if (c.ffn_act == model::Activation::learnable_leaky_relu && c.slope_scope == model::SlopeScope::per_layer &&
        b.has_ffn)
      b.slope = get(st, p + "ffn.slope", 1)[0];
    b.score_const.assign(size_t(H) * T, 1.0 / std::sqrt(double(c.d_head())));
    if (c.temperature) {
      auto s = get(st, p + "attn.temp", size_t(H) * T);
      for (size_t k = 0; k < s.size(); ++k) b.score_const[k] /= temperature_value(c, s[k]);
    }
    m.blocks.push_back(std::move(b));
  }
  rotary_tables(m);
  if (auto it = st.metadata.find(kSoftmaxClipKey); it != st.metadata.end()) {
    const auto clip = nlohmann::json::parse(it->second).at("clip");
    AERO_CHECK(clip.is_array() && clip.size() == size_t(c.n_layer), kSoftmaxClipKey, ": expected ", c.n_layer, " layers");
    for (int l = 0; l < c.n_layer; ++l) {
      m.blocks[l].softmax_clip = clip[size_t(l)].get<std::vector<double>>();
      AERO_CHECK(m.blocks[l].softmax_clip.size() == size_t(H), kSoftmaxClipKey, ": layer ", l, " needs ", H, " heads");
    }
  }
  if (fold) m.fold_norms();
  return m;
}

namespace {
// (x_hat g + beta) W^T + b = x_hat (W diag(g))^T + (b + W beta): W [out, in] row-major.
void fold_into(PiNorm& n, std::vector<double>& w, std::vector<double>& bias, int out, int in) {
  AERO_CHECK(n.g.size() == size_t(in) && n.b.size() == size_t(in), "fold_norms: norm width != linear input width");
  AERO_CHECK(w.size() == size_t(out) * in, "fold_norms: weight shape");
  if (bias.empty()) bias.assign(size_t(out), 0.0);
  for (int o = 0; o < out; ++o) {
    double* r = w.data() + size_t(o) * in;
    double s = 0;
    for (int i = 0; i < in; ++i) s += r[i] * n.b[i];
    bias[o] += s;
    for (int i = 0; i < in; ++i) r[i] *= n.g[i];
  }
  n = PiNorm{};
}
}  // namespace

void PiModel::fold_norms() {
  if (norms_folded) return;
  norms_folded = true;
  if (shapes_only) return;
  const auto& c = cfg;
  const int d = c.d_model;
  if (c.norm == model::Norm::layernorm)
    for (auto& b : blocks) {
      // graph.h: ln1's output is read only by attn.qkv (rotary acts on qkv's output).
      fold_into(b.ln1, b.qkv.w, b.qkv.b, b.qkv.out, b.qkv.in);
      if (b.has_ffn) {  // ln2 feeds only the FFN's first linear (FFN scaling reads x_hat, not ln2)
        PiLinear& L = c.ffn_kind == model::FfnKind::fused ? b.fused : b.fc;
        fold_into(b.ln2, L.w, L.b, L.out, L.in);
      } else {
        b.ln2 = PiNorm{};  // pruned FFN: ln2 is never computed
      }
    }
  if (c.final_norm && ln_f.affine()) {
    std::vector<double> w = head_weight();  // tied: the head becomes its own private matrix
    fold_into(ln_f, w, lm_head_bias, c.vocab_size, d);
    lm_head = std::move(w);
  }
}

std::vector<std::pair<std::string, std::vector<double>>> PiModel::public_constants() const {
  std::vector<std::pair<std::string, std::vector<double>>> r;
  auto norm = [&](const std::string& n, const PiNorm& p) {
    if (!p.affine()) return;
    r.emplace_back(n + ".weight", p.g);
    r.emplace_back(n + ".bias", p.b);
  };
  for (size_t l = 0; l < blocks.size(); ++l) {
    const auto& b = blocks[l];
    const std::string p = "blocks." + std::to_string(l) + ".";
    norm(p + "ln1", b.ln1);
    norm(p + "ln2", b.ln2);
    r.emplace_back(p + "score_const", b.score_const);
    if (!b.softmax_clip.empty()) r.emplace_back(p + "softmax_clip", b.softmax_clip);
    r.emplace_back(p + "ffn_scale", std::vector<double>{b.beta, b.inv_alpha});
    r.emplace_back(p + "slope", std::vector<double>{b.slope});
  }
  norm("ln_f", ln_f);
  r.emplace_back("rot_cos", rot_cos);
  r.emplace_back("rot_sin", rot_sin);
  return r;
}

PiModel PiModel::load(const std::string& path) {
  auto st = SafeTensors::load(path);
  auto it = st.metadata.find("aero_config");
  AERO_CHECK(it != st.metadata.end(), path, ": no __metadata__.aero_config (not an aero checkpoint?)");
  auto j = nlohmann::json::parse(it->second);
  auto cfg = model::model_config_from_json(j.contains("model") ? j["model"] : j, path);
  return from_tensors(cfg, st);
}

PiModel PiModel::shapes(const ModelConfig& c) {
  PiModel m;
  m.cfg = c;
  m.shapes_only = true;
  m.blocks.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    auto& b = m.blocks[l];
    b.has_ffn = c.has_ffn(l);
    b.qkv = {3 * c.d_model, c.d_model, {}, {}};
    b.proj = {c.d_model, c.d_model, {}, {}};
    b.fc = {c.d_ff, c.d_model, {}, {}};
    b.fc_proj = {c.d_model, c.d_ff, {}, {}};
    b.fused = {c.d_model, c.d_model, {}, {}};
    if (c.ffn_scaling) b.beta = 0.9, b.inv_alpha = 0.5;  // non-trivial: counts the scaling gate
  }
  // As folded (fold_norms): the final norm's bias becomes the LM head's bias row.
  if (c.final_norm) m.lm_head_bias.assign(size_t(c.vocab_size), 0.0);
  m.norms_folded = true;
  return m;
}

PiModel PiModel::random(const ModelConfig& c, uint64_t seed, bool fold) {
  return from_tensors(c, random_tensors(c, seed), fold);
}

// LayerNorm gains/biases are not public: fold_norms moves them into secret weights.
bool PiModel::is_public_tensor(const std::string& n) {
  auto ends = [&](const char* suf) {
    std::string s(suf);
    return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
  };
  return ends("attn.temp") || ends("ffn_scale.alpha") || ends("ffn_scale.beta") || ends("ffn.slope") ||
         n == "ffn_slope";
}

SafeTensors PiModel::public_tensors(const SafeTensors& st) {
  SafeTensors pub;
  if (st.metadata.count("aero_config")) pub.metadata["aero_config"] = st.metadata.at("aero_config");
  if (st.metadata.count(kSoftmaxClipKey)) pub.metadata[kSoftmaxClipKey] = st.metadata.at(kSoftmaxClipKey);
  pub.metadata["format"] = "aero-pi-public-2";  // 2: without LayerNorm parameters (folded)
  for (auto& [n, t] : st.tensors)
    if (is_public_tensor(n)) pub.tensors[n] = t;
  return pub;
}

void PiModel::export_public(const std::string& checkpoint, const std::string& out_path) {
  auto st = SafeTensors::load(checkpoint);
  AERO_CHECK(st.metadata.count("aero_config"), checkpoint, ": no __metadata__.aero_config");
  public_tensors(st).save(out_path);
}

PiModel PiModel::public_model(const std::string& path) {
  auto pub = SafeTensors::load(path);
  auto it = pub.metadata.find("aero_config");
  AERO_CHECK(it != pub.metadata.end(), path, ": no __metadata__.aero_config");
  auto j = nlohmann::json::parse(it->second);
  return public_model(model::model_config_from_json(j.contains("model") ? j["model"] : j, path), pub);
}

PiModel PiModel::public_model(const ModelConfig& cfg, const SafeTensors& pub) {
  const std::string path = "public model";
  auto st = random_tensors(cfg, 0);
  if (pub.metadata.count(kSoftmaxClipKey)) st.metadata[kSoftmaxClipKey] = pub.metadata.at(kSoftmaxClipKey);
  for (auto& [n, t] : st.tensors) {
    if (is_public_tensor(n)) {
      AERO_CHECK(pub.has(n), path, ": public tensor '", n, "' missing");
      t = pub.at(n);
    } else {
      std::fill(t.bytes.begin(), t.bytes.end(), uint8_t(0));
      if (n.size() > 9 && n.compare(n.size() - 9, 9, ".weight_g") == 0) {  // keep g/||v|| finite
        std::vector<double> one(t.numel(), 1.0);
        t = StTensor::from_f64(one.data(), t.shape);
      }
    }
  }
  // Weight-normalized zero v would divide by zero: use ones (secret anyway, never used by
  // the client or the dealer).
  for (auto& [n, t] : st.tensors)
    if (n.size() > 9 && n.compare(n.size() - 9, 9, ".weight_v") == 0) {
      std::vector<double> one(t.numel(), 1.0);
      t = StTensor::from_f64(one.data(), t.shape);
    }
  return from_tensors(cfg, st);
}

SafeTensors PiModel::random_tensors(const ModelConfig& c, uint64_t seed) {
  Rng rng(seed);
  SafeTensors st;
  auto put = [&](const std::string& name, std::vector<int64_t> shape, double mean, double stdv) {
    size_t n = 1;
    for (auto s : shape) n *= size_t(s);
    std::vector<double> v(n);
    for (auto& x : v) x = mean + stdv * rng.normal();
    st.tensors[name] = StTensor::from_f64(v.data(), shape);
  };
  const int d = c.d_model, V = c.vocab_size, T = c.context, H = c.n_head;
  put("wte", {V, d}, 0, 1.0);
  if (c.has_positions()) put("wpe", {T, d}, 0, 0.3);
  if (!c.tie_embeddings) put("lm_head.weight", {V, d}, 0, 1.0 / std::sqrt(d));
  if (c.final_norm) {
    put("ln_f.weight", {d}, 1, 0.1);
    put("ln_f.bias", {d}, 0, 0.1);
  }
  auto linear = [&](const std::string& base, int out, int in, bool wn, bool sn, int parts, double gain) {
    double sd = gain / std::sqrt(double(in));
    if (wn) {
      put(base + ".weight_v", {out, in}, 0, sd);
      put(base + ".weight_g", {out}, std::sqrt(double(in)) * sd, 0.05);
    } else {
      put(base + ".weight", {out, in}, 0, sd);
    }
    if (sn) put(base + ".sn_u", {parts, out / parts}, 0, 1.0);
    if (c.bias) put(base + ".bias", {out}, 0, 0.1);
  };
  const auto& wn = c.weight_norm;
  const auto& sn = c.spectral_norm;
  for (int l = 0; l < c.n_layer; ++l) {
    std::string p = "blocks." + std::to_string(l) + ".";
    if (c.norm == model::Norm::layernorm) {
      put(p + "ln1.weight", {d}, 1, 0.1);
      put(p + "ln1.bias", {d}, 0, 0.1);
      put(p + "ln2.weight", {d}, 1, 0.1);
      put(p + "ln2.bias", {d}, 0, 0.1);
    }
    // Attention logits of a few units (|z| up to ~8), as in trained models.
    linear(p + "attn.qkv", 3 * d, d, wn.qk || wn.v, sn.qk || sn.v, 3, 1.0);
    linear(p + "attn.proj", d, d, wn.o, sn.o, 1, 0.7);
    if (c.has_ffn(l)) {
      if (c.ffn_kind == model::FfnKind::fused) {
        linear(p + "ffn.fused", d, d, wn.ffn, sn.ffn, 1, 0.7);
      } else {
        linear(p + "ffn.fc", c.d_ff, d, wn.ffn, sn.ffn, 1, 1.5);
        linear(p + "ffn.proj", d, c.d_ff, wn.ffn, sn.ffn, 1, 0.7);
      }
      if (c.ffn_scaling) {
        put(p + "ffn_scale.alpha", {1}, 1.5, 0.2);
        put(p + "ffn_scale.beta", {1}, 0.8, 0.1);
      }
      if (c.ffn_act == model::Activation::learnable_leaky_relu && c.slope_scope == model::SlopeScope::per_layer)
        put(p + "ffn.slope", {1}, 0.05, 0.01);
    }
    if (c.temperature) {
      // Raw parameter s such that t is around 1 (0.6 .. 1.6) in every parameterization.
      std::vector<double> s(size_t(H) * T);
      for (auto& x : s) {
        double t = std::exp(0.25 * rng.normal());
        x = c.temperature_param == model::TemperatureParam::exp      ? std::log(t)
            : c.temperature_param == model::TemperatureParam::direct ? t
                                                                     : t - 1.0;
      }
      st.tensors[p + "attn.temp"] = StTensor::from_f64(s.data(), {H, T});
    }
  }
  if (c.ffn_act == model::Activation::learnable_leaky_relu && c.slope_scope == model::SlopeScope::global)
    put("ffn_slope", {1}, 0.05, 0.01);
  return st;
}

}  // namespace aero::pi
