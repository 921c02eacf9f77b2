// Float reference and fixed-point simulation of the private-inference graph.
#include "pi/executors.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace aero::pi {

const char* to_string(Scope s) { return s == Scope::blocks ? "blocks" : "full"; }
Scope scope_from_string(const std::string& s) {
  if (s == "blocks") return Scope::blocks;
  if (s == "full") return Scope::full;
  fail("scope '", s, "': expected blocks or full");
}

// ----------------------------------------------------------------------------------------
// FloatExec

namespace {
double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
}  // namespace

FloatExec::T FloatExec::input(const std::vector<double>& x, int rows, int cols) const {
  T t(rows, cols, false);
  t.v = x;
  return t;
}

FloatExec::T FloatExec::embed(const std::vector<int32_t>& ids, const PiModel& m) {
  const int d = m.cfg.d_model;
  T x(int(ids.size()), d);
  for (int t = 0; t < x.rows; ++t)
    for (int i = 0; i < d; ++i)
      x.at(t, i) = m.wte[size_t(ids[t]) * d + i] + (m.wpe.empty() ? 0.0 : m.wpe[size_t(t) * d + i]);
  return x;
}

FloatExec::T FloatExec::layernorm(const T& x, const PiNorm& n, const char*) {
  T y(x.rows, x.cols);
  for (int t = 0; t < x.rows; ++t) {
    const double* r = x.row(t);
    double mu = 0, var = 0;
    for (int i = 0; i < x.cols; ++i) mu += r[i];
    mu /= x.cols;
    for (int i = 0; i < x.cols; ++i) var += (r[i] - mu) * (r[i] - mu);
    var /= x.cols;
    double k = 1.0 / std::sqrt(var + 1e-5);
    if (n.affine())
      for (int i = 0; i < x.cols; ++i) y.at(t, i) = (r[i] - mu) * k * n.g[i] + n.b[i];
    else  // folded: the gain and bias live in the next linear's weights
      for (int i = 0; i < x.cols; ++i) y.at(t, i) = (r[i] - mu) * k;
  }
  return y;
}

FloatExec::T FloatExec::linear(const T& x, const PiLinear& L, const char*) {
  T y(x.rows, L.out);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < L.out; ++o) {
    const double* w = L.w.data() + size_t(o) * L.in;
    for (int t = 0; t < x.rows; ++t) {
      const double* r = x.row(t);
      double s = L.b.empty() ? 0.0 : L.b[o];
      for (int i = 0; i < L.in; ++i) s += r[i] * w[i];
      y.at(t, o) = s;
    }
  }
  return y;
}

FloatExec::T FloatExec::activation(const T& x, model::Activation act, double slope) {
  T y = x;
  for (auto& v : y.v) {
    switch (act) {
      case model::Activation::gelu: v = gelu_tanh(v); break;
      case model::Activation::relu: v = std::max(v, 0.0); break;
      case model::Activation::leaky_relu:
      case model::Activation::learnable_leaky_relu: v = v >= 0 ? v : slope * v; break;
      case model::Activation::identity: break;
    }
  }
  return y;
}

FloatExec::T FloatExec::rotary(const T& qkv, const PiModel& m) {
  T y = qkv;
  const int d = m.cfg.d_model, H = m.cfg.n_head, dk = d / H, half = m.cfg.rotary_dims() / 2;
  for (int t = 0; t < y.rows; ++t)
    for (int part = 0; part < 2; ++part)
      for (int h = 0; h < H; ++h) {
        double* p = y.row(t) + part * d + h * dk;
        for (int i = 0; i < half; ++i) {
          double c = m.rot_cos[size_t(t) * half + i], s = m.rot_sin[size_t(t) * half + i];
          double x1 = p[i], x2 = p[i + half];
          p[i] = x1 * c - x2 * s;
          p[i + half] = x2 * c + x1 * s;
        }
      }
  return y;
}

FloatExec::T FloatExec::attn_logits(const T& qkv, const PiBlock& b, int H) {
  const int Tn = qkv.rows, d = qkv.cols / 3, dk = d / H, Tc = int(b.score_const.size()) / H;
  T z(H * Tn, Tn);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < Tn; ++i)
      for (int j = 0; j <= i; ++j) {
        const double* q = qkv.row(i) + h * dk;
        const double* k = qkv.row(j) + d + h * dk;
        double s = 0;
        for (int e = 0; e < dk; ++e) s += q[e] * k[e];
        z.at(h * Tn + i, j) = s * b.score_const[size_t(h) * Tc + i];
      }
  return z;
}

FloatExec::T FloatExec::attn_softmax_v(const T& z, const T& qkv, const PiBlock&, int H) {
  const int Tn = qkv.rows, d = qkv.cols / 3, dk = d / H;
  T o(Tn, d);
  std::vector<double> p(Tn);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < Tn; ++i) {
      const double* zr = z.row(h * Tn + i);
      double mx = zr[0];
      for (int j = 1; j <= i; ++j) mx = std::max(mx, zr[j]);
      double sum = 0;
      for (int j = 0; j <= i; ++j) sum += (p[j] = std::exp(zr[j] - mx));
      for (int e = 0; e < dk; ++e) {
        double acc = 0;
        for (int j = 0; j <= i; ++j) acc += p[j] * qkv.at(j, 2 * d + h * dk + e);
        o.at(i, h * dk + e) = acc / sum;
      }
    }
  return o;
}

FloatExec::T FloatExec::add(const T& a, const T& b, const char*) {
  T y = a;
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] += b.v[k];
  return y;
}

FloatExec::T FloatExec::residual(const T& xh, const T& f, double beta, double inv_alpha) {
  T y = xh;
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = beta * xh.v[k] + inv_alpha * f.v[k];
  return y;
}

FloatExec::T FloatExec::last_row(const T& x) {
  T y(1, x.cols);
  std::copy(x.row(x.rows - 1), x.row(x.rows - 1) + x.cols, y.v.begin());
  return y;
}

FloatExec::T FloatExec::lm_head(const T& x, const PiModel& m) {
  const int V = m.cfg.vocab_size, d = m.cfg.d_model;
  const auto& w = m.head_weight();
  T y(x.rows, V);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < V; ++o)
    for (int t = 0; t < x.rows; ++t) {
      double s = m.lm_head_bias.empty() ? 0.0 : m.lm_head_bias[o];
      for (int i = 0; i < d; ++i) s += x.at(t, i) * w[size_t(o) * d + i];
      y.at(t, o) = s;
    }
  return y;
}

// ----------------------------------------------------------------------------------------
// FixedExec: each operator is the integer function of its 2PC gate.

FixedExec::FixedExec(const FxSpec& spec)
    : s_(spec),
      gelu_(spec),
      exp_(spec),
      inv_(-1.0, spec.exp_frac(), spec.inv_frac(), spec.inv_mantissa),
      rsqrt_(-0.5, 2 * spec.f, spec.rsqrt_out_frac, spec.inv_mantissa),
      inv_fold_(spec) {}

void FixedExec::track(const T& x) {
  int64_t mx = 0;
  for (auto v : x.v) mx = std::max(mx, v < 0 ? -(v + 1) : v);
  int bits = 1 + (mx ? 64 - __builtin_clzll(uint64_t(mx)) : 0);
  max_bits_ = std::max(max_bits_, bits);
}

void FixedExec::note(const std::string& what, __int128 mx) {
  int bits = 1;
  while (mx > 0) ++bits, mx >>= 1;
  int& b = bits_[what];
  b = std::max(b, bits);
}

FixedExec::T FixedExec::input(const std::vector<double>& x, int rows, int cols) const {
  T t(rows, cols, false);
  t.v.resize(x.size());
  for (size_t k = 0; k < x.size(); ++k) t.v[k] = encode(x[k], s_.f);
  return t;
}

std::vector<double> FixedExec::output(const T& x) const {
  std::vector<double> r(x.v.size());
  for (size_t k = 0; k < r.size(); ++k) r[k] = decode(x.v[k], s_.f);
  return r;
}

const FixedExec::EncLinear& FixedExec::enc(const PiLinear& L) {
  auto it = lin_cache_.find(&L.w);
  if (it != lin_cache_.end()) return it->second;
  EncLinear e;
  e.w.resize(L.w.size());
  for (size_t k = 0; k < L.w.size(); ++k) e.w[k] = encode(L.w[k], s_.f);
  e.b.resize(L.b.size());
  for (size_t k = 0; k < L.b.size(); ++k) e.b[k] = encode(L.b[k], 2 * s_.f);
  return lin_cache_[&L.w] = std::move(e);
}

const std::vector<int64_t>& FixedExec::enc_vec(const std::vector<double>& v, int scale) {
  auto key = std::make_pair(static_cast<const void*>(&v), scale);
  auto it = vec_cache_.find(key);
  if (it != vec_cache_.end()) return it->second;
  std::vector<int64_t> e(v.size());
  for (size_t k = 0; k < v.size(); ++k) e[k] = encode(v[k], scale);
  return vec_cache_[key] = std::move(e);
}

FixedExec::T FixedExec::embed(const std::vector<int32_t>& ids, const PiModel& m) {
  const int d = m.cfg.d_model;
  const auto& wte = enc_vec(m.wte, s_.f);
  T x(int(ids.size()), d);
  for (int t = 0; t < x.rows; ++t) {
    AERO_CHECK(ids[t] >= 0 && ids[t] < m.cfg.vocab_size, "token id ", ids[t], " out of range");
    for (int i = 0; i < d; ++i) x.at(t, i) = wte[size_t(ids[t]) * d + i];
  }
  if (!m.wpe.empty()) {
    const auto& wpe = enc_vec(m.wpe, s_.f);
    for (int t = 0; t < x.rows; ++t)
      for (int i = 0; i < d; ++i) x.at(t, i) += wpe[size_t(t) * d + i];
  }
  return x;
}

namespace {
// splitmix64's finalizer: the hashed draws standing for the secure run's uniform mask bits.
uint64_t mix64(uint64_t h) {
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}
}  // namespace

int64_t FixedExec::tr(__int128 v, int s, uint64_t idx, int site) const {
  const int64_t f = trunc_floor128(v, s);
  if (!s_.stochastic_trunc || s == 0) return f;
  const uint64_t h = mix64(((call_ * 4 + uint64_t(site)) * 0x9E3779B97F4A7C15ull) ^ (idx + 0x632BE59BD9B4E019ull));
  const uint64_t m = (uint64_t(1) << s) - 1;
  return f + int64_t(((uint64_t(v) & m) + (h & m)) >> s);  // carry of x_low + r_low
}

int64_t FixedExec::lsr(__int128 v, int s, uint64_t idx, int site) const {
  AERO_CHECK(s >= 1 && s <= 32, "lsr: shift ", s, " outside 1..32");
  const uint64_t h = mix64(((call_ * 4 + uint64_t(site)) * 0xD1B54A32D192ED03ull) ^ (idx + 0x8CB92BA72F3D8DD7ull));
  const uint64_t m = (uint64_t(1) << s) - 1, r = h & m, y0 = (h >> 32) & m;  // mask's and share's low bits
  const __int128 q = v + (__int128(1) << (s - 1));
  const uint64_t ql = uint64_t(q) & m;
  const int64_t c1 = int64_t((ql + r) >> s), c = y0 > ((ql + r) & m) ? 1 : 0;
  return trunc_floor128(q, s) + c1 - c;
}

// LayerNorm without a separate mean (every step is degree <= 2 in the masked input, so the
// secure run opens one value per row before the rsqrt gate):
//   sx = sum x, D = d sum x^2 - sx^2 + round(d^2 eps 2^2f)   (= d^2 (var + eps) at scale 2f),
//   r = D^(-1/2) by the normalized LUT at scale rsqrt_out_frac (= 1 / (d sqrt(var + eps))),
//   y = floor((d x - sx) * r * round(g 2^f) / 2^(f + rsqrt_out_frac)) + round(b 2^f);
// folded (no affine: PiModel::fold_norms): y = floor((d x - sx) * r / 2^rsqrt_out_frac); with
// stochastic truncation and the product inside the rsqrt lookup (FxSpec::lut_products) the
// lookup's local share truncation lsr instead of tr.
FixedExec::T FixedExec::layernorm(const T& x, const PiNorm& n, const char*) {
  ++call_;
  const int d = x.cols;
  const bool aff = n.affine();
  const auto& g = enc_vec(n.g, s_.f);
  const auto& bb = enc_vec(n.b, s_.f);
  const int shift = (aff ? s_.f : 0) + s_.rsqrt_out_frac;
  const int64_t eps = encode(double(d) * d * s_.ln_eps, 2 * s_.f);
  const bool in_lookup = s_.products_in_lookups() && s_.stochastic_trunc;  // rounded by the lookup's lsr
  T y(x.rows, d);
  for (int t = 0; t < x.rows; ++t) {
    const int64_t* r = x.row(t);
    __int128 sx = 0, sq = 0;
    for (int i = 0; i < d; ++i) sx += r[i], sq += __int128(r[i]) * r[i];
    __int128 D = __int128(d) * sq - sx * sx + eps;
    note("ln.D", D);  // the engine opens D on 64 bits: D < 2^63 (MSB candidates lo_msb(eps)..62)
    int64_t rs = rsqrt_.eval(D > INT64_MAX ? INT64_MAX : int64_t(D));
    for (int i = 0; i < d; ++i) {
      __int128 c = __int128(d) * r[i] - sx;
      const uint64_t at = uint64_t(t) * d + i;
      if (aff) y.at(t, i) = tr(c * rs * g[i], shift, at) + bb[i];
      else y.at(t, i) = in_lookup ? lsr(c * rs, shift, at) : tr(c * rs, shift, at);
    }
  }
  track(y);
  return y;
}

// Linear: y = floor((x W^T + b 2^2f) / 2^f): the masked matrix product, then truncation.
FixedExec::T FixedExec::linear(const T& x, const PiLinear& L, const char* tag) {
  ++call_;
  AERO_CHECK(x.cols == L.in, "linear: input width ", x.cols, " != ", L.in);
  const auto& e = enc(L);
  T y(x.rows, L.out);
  int64_t amax = 0;
#pragma omp parallel for schedule(static) reduction(max : amax)
  for (int o = 0; o < L.out; ++o) {
    const int64_t* w = e.w.data() + size_t(o) * L.in;
    for (int t = 0; t < x.rows; ++t) {
      const int64_t* r = x.row(t);
      int64_t s = e.b.empty() ? 0 : e.b[o];
      for (int i = 0; i < L.in; ++i) s += r[i] * w[i];
      amax = std::max(amax, s < 0 ? -(s + 1) : s);
      y.at(t, o) = tr(s, s_.f, uint64_t(t) * L.out + o);
    }
  }
  note(std::string(tag) + ".acc", amax);
  track(y);
  return y;
}

// GELU: ReLU(x) - LUT(min(|x| >> (f-6), 255)); ReLU: x [x >= 0];
// leaky: x [x >= 0] + floor(x round(slope 2^f) / 2^f) [x < 0].
FixedExec::T FixedExec::activation(const T& x, model::Activation act, double slope) {
  ++call_;
  T y = x;
  const int64_t sl = encode(slope, s_.f);
  const int sh = s_.f - s_.gelu_lut_frac;
  const int64_t half = int64_t(gelu_.table.size()) / 2, edge = half << sh;
  for (size_t k = 0; k < y.v.size(); ++k) {
    int64_t& v = y.v[k];
    switch (act) {
      case model::Activation::gelu: {  // = GeluLut::eval (table indices are always floors)
        const int64_t idx = v < -edge ? 0 : v >= edge ? 2 * half - 1 : (trunc_floor(v, sh) + half) & (2 * half - 1);
        v = (v > 0 ? v : 0) - gelu_.table[size_t(idx)];
        break;
      }
      case model::Activation::relu: v = v > 0 ? v : 0; break;
      case model::Activation::leaky_relu:
      case model::Activation::learnable_leaky_relu: v = v >= 0 ? v : tr(v * sl, s_.f, k); break;
      case model::Activation::identity: break;
    }
  }
  return y;
}

// Rotary: public cos/sin at scale rot_frac, one truncation.
FixedExec::T FixedExec::rotary(const T& qkv, const PiModel& m) {
  ++call_;
  T y = qkv;
  const int d = m.cfg.d_model, H = m.cfg.n_head, dk = d / H, half = m.cfg.rotary_dims() / 2;
  const auto& C = enc_vec(m.rot_cos, s_.rot_frac);
  const auto& S = enc_vec(m.rot_sin, s_.rot_frac);
  for (int t = 0; t < y.rows; ++t)
    for (int part = 0; part < 2; ++part)
      for (int h = 0; h < H; ++h) {
        int64_t* p = y.row(t) + part * d + h * dk;
        for (int i = 0; i < half; ++i) {
          int64_t c = C[size_t(t) * half + i], s = S[size_t(t) * half + i];
          int64_t x1 = p[i], x2 = p[i + half];
          const uint64_t at = uint64_t(p - y.v.data()) + i;
          p[i] = tr(x1 * c - x2 * s, s_.rot_frac, at);
          p[i + half] = tr(x2 * c + x1 * s, s_.rot_frac, at + half);
        }
      }
  return y;
}

// Logits z = floor(q.k * round(c[h,i] 2^c_frac) / 2^(f + c_frac)) at scale f, causal rows:
// the product of two masked matrices, then the public per-row constant, one truncation.
FixedExec::T FixedExec::attn_logits(const T& qkv, const PiBlock& b, int H) {
  ++call_;
  const int Tn = qkv.rows, d = qkv.cols / 3, dk = d / H, Tc = int(b.score_const.size()) / H;
  const auto& cst = enc_vec(b.score_const, s_.c_frac);
  T z(H * Tn, Tn);
  int64_t smax = 0, zmax = 0;
#pragma omp parallel for schedule(dynamic) reduction(max : smax, zmax)
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < Tn; ++i)
      for (int j = 0; j <= i; ++j) {
        const int64_t* q = qkv.row(i) + h * dk;
        const int64_t* k = qkv.row(j) + d + h * dk;
        int64_t s = 0;
        for (int e = 0; e < dk; ++e) s += q[e] * k[e];
        const __int128 sc = __int128(s) * cst[size_t(h) * Tc + i];
        const __int128 sa = sc < 0 ? -(sc + 1) : sc;
        smax = std::max(smax, sa > INT64_MAX ? INT64_MAX : int64_t(sa));
        const int64_t zz = z.at(h * Tn + i, j) = tr(sc, s_.f + s_.c_frac, (uint64_t(h) * Tn + i) * Tn + j);
        zmax = std::max(zmax, zz < 0 ? -(zz + 1) : zz);
      }
  note("attn.scores.acc", smax);
  note("attn.logits", zmax);
  track(z);
  return z;
}

// Softmax fused with the value product, normalized after (out = (E V) / sum E):
//  exact_max: e = ExpLUT[min((max_j z - z) >> (f-6), 1023)], exp(0) = 1 exactly;
//  clipped:   e = ExpLUT[min(max(H - z, 0) >> (f-6), 4095)], H = the head's clip constant
//             (PiBlock::clip_hi; no max);
//  one-round exp (FxSpec::exp_one_round(), stochastic): i = (ref - z) >> (f-6) + carry mod
//             2^exp_index_bits() (the free truncate-reduce of the secure run), e =
//             ExpLUT.one_round[i], and (clipped) E[0] = 2^exp_frac where i is negative;
//  out = floor((sum_j e_j v_j) * InvLUT(sum_j e_j) / 2^(exp_frac + inv_frac));
//  stochastic with the product inside the 1/sum lookup (FxSpec::lut_products): with e, j the
//  sum's InvPowLut bucket, out = lsr((floor(sum_j e_j v_j / 2^shift[e]) + carry) InvFold[e][j],
//  kGuard) (InvFold, fixed_point.h).
FixedExec::T FixedExec::attn_softmax_v(const T& z, const T& qkv, const PiBlock& b, int H) {
  ++call_;
  const int Tn = qkv.rows, d = qkv.cols / 3, dk = d / H;
  const int shift = s_.f - s_.exp_lut_frac;
  const int64_t last = int64_t(exp_.table.size()) - 1;
  const bool one = s_.exp_one_round();
  const int64_t imask = one ? int64_t(exp_.one_round.size()) - 1 : 0;
  const bool clip = s_.softmax == SoftmaxVariant::clipped;
  const int out_shift = s_.exp_frac() + s_.inv_frac();
  for (int h = 0; h < H && one && clip; ++h)
    AERO_CHECK(s_.clip_in_range(b.clip_hi(h, s_.clip_hi)), "one-round exp: clip constant ", b.clip_hi(h, s_.clip_hi),
               " outside the logits' range");
  T o(Tn, d);
#pragma omp parallel for schedule(dynamic)
  for (int hi_ = 0; hi_ < H * Tn; ++hi_) {
    int h = hi_ / Tn, i = hi_ % Tn;
    std::vector<int64_t> e(i + 1);
    const int64_t* zr = z.row(h * Tn + i);
    int64_t ref = encode(b.clip_hi(h, s_.clip_hi), s_.f);
    if (s_.softmax == SoftmaxVariant::exact_max) {
      ref = zr[0];
      for (int j = 1; j <= i; ++j) ref = std::max(ref, zr[j]);
    }
    int64_t sum = 0;
    for (int j = 0; j <= i; ++j) {
      int64_t dd = ref - zr[j];
      if (one) {  // site 2: the index's carry, independent of the output's (site 1)
        const int64_t u = tr(dd, shift, uint64_t(hi_) * Tn + j, 2) & imask;
        sum += (e[j] = clip && u > imask / 2 ? exp_.one_round[0] : exp_.one_round[size_t(u)]);
        continue;
      }
      if (dd < 0) dd = 0;
      const int64_t idx = std::min(dd >> shift, last);
      sum += (e[j] = exp_.table[idx]);
    }
    const bool fold = s_.products_in_lookups() && s_.stochastic_trunc;
    const auto [me, mj] = InvPowLut::index(sum, s_.inv_mantissa);
    const int64_t inv = fold ? inv_fold_.table[me][mj] : inv_.eval(sum);
    for (int c = 0; c < dk; ++c) {
      int64_t acc = 0;
      for (int j = 0; j <= i; ++j) acc += e[j] * qkv.at(j, 2 * d + h * dk + c);
      const uint64_t at = uint64_t(i) * d + h * dk + c;
      o.at(i, h * dk + c) = fold ? lsr(__int128(tr(acc, inv_fold_.shift[me], at, 1)) * inv, InvFold::kGuard, at, 2)
                                 : tr(__int128(acc) * inv, out_shift, at, 1);
    }
  }
  track(o);
  return o;
}

FixedExec::T FixedExec::add(const T& a, const T& b, const char*) {
  T y = a;
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] += b.v[k];
  track(y);
  return y;
}

// FFN scaling: floor((x_hat round(beta 2^f) + f round(2^f / alpha)) / 2^f); exact add when
// beta = 1/alpha = 1 (the constants are public: no interaction but the truncation).
FixedExec::T FixedExec::residual(const T& xh, const T& f, double beta, double inv_alpha) {
  ++call_;
  if (beta == 1.0 && inv_alpha == 1.0) return add(xh, f, "residual");
  const int64_t b = encode(beta, s_.f), a = encode(inv_alpha, s_.f);
  T y = xh;
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = tr(xh.v[k] * b + f.v[k] * a, s_.f, k);
  track(y);
  return y;
}

FixedExec::T FixedExec::last_row(const T& x) {
  T y(1, x.cols);
  std::copy(x.row(x.rows - 1), x.row(x.rows - 1) + x.cols, y.v.begin());
  return y;
}

FixedExec::T FixedExec::lm_head(const T& x, const PiModel& m) {
  ++call_;
  const int V = m.cfg.vocab_size, d = m.cfg.d_model;
  const auto& w = enc_vec(m.head_weight(), s_.f);
  const auto& hb = enc_vec(m.lm_head_bias, 2 * s_.f);  // folded final norm's bias (scale 2f)
  T y(x.rows, V);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < V; ++o) {
    const int64_t* wr = w.data() + size_t(o) * d;
    for (int t = 0; t < x.rows; ++t) {
      const int64_t* r = x.row(t);
      int64_t s = hb.empty() ? 0 : hb[o];
      for (int i = 0; i < d; ++i) s += r[i] * wr[i];
      y.at(t, o) = tr(s, s_.f, uint64_t(t) * V + o);
    }
  }
  return y;
}

}  // namespace aero::pi
