// 2PC executor (see secure_exec.h): dealer side and party side of each operator next to
// each other, one code path, bit-exact with FixedExec.
#include "pi/secure_exec.h"

#include "core/error.h"
#include "mpc/compare.h"
#include "mpc/linear.h"
#include "mpc/lut.h"
#include "mpc/truncation.h"

namespace aero::pi {
using mpc::u64;
constexpr int W = SecureExec::kWidth;

SecureExec::SecureExec(mpc::Dealer* dealer, mpc::Party* party, const FxSpec& spec, mpc::Block model_seed)
    : d_(dealer),
      p_(party),
      s_(spec),
      seed_(model_seed),
      gelu_(spec),
      exp_(spec),
      inv_(-1.0, spec.exp_frac(), spec.inv_frac(), spec.inv_mantissa),
      rsqrt_(-0.5, 2 * spec.f, spec.rsqrt_out_frac, spec.inv_mantissa) {
  AERO_CHECK((d_ != nullptr) != (p_ != nullptr), "SecureExec: exactly one of dealer / party");
}

std::vector<u64> SecureExec::constant(size_t n, int64_t c) const {
  return std::vector<u64>(n, dealer() ? 0 : mpc::mod_w(u64(c), W));
}

SWire SecureExec::input_client(const std::vector<double>& x, int rows, int cols) {
  size_t n = size_t(rows) * cols;
  SWire y{rows, cols, {}};
  if (dealer()) {
    y.v = mpc::input_deal(*d_, mpc::kClient, n, W);
  } else {
    std::vector<u64> enc(n, 0);
    if (p_->id == mpc::kClient)
      for (size_t k = 0; k < n; ++k) enc[k] = mpc::mod_w(u64(encode(x[k], s_.f)), W);
    y.v = mpc::input_eval(*p_, mpc::kClient, enc, n, W);
  }
  return y;
}

std::vector<double> SecureExec::output_client(const SWire& y) {
  if (dealer()) {
    mpc::output_deal(*d_, mpc::kClient, y.v, W);
    return {};
  }
  auto v = mpc::output_eval(*p_, mpc::kClient, y.v, W);
  if (p_->id != mpc::kClient) return {};
  std::vector<double> r(v.size());
  for (size_t k = 0; k < v.size(); ++k) r[k] = decode(mpc::to_signed(v[k], W), s_.f);
  return r;
}

std::vector<u64> SecureExec::trunc(const V& x, int shift, int in_w, int out_w) {
  mpc::TruncSpec t{in_w, shift, out_w, true};
  return dealer() ? mpc::trunc_deal(*d_, t, x) : mpc::trunc_eval(*p_, t, x);
}

std::vector<u64> SecureExec::drelu(const V& x, int w) {
  mpc::CompareSpec c{w, w};
  return dealer() ? mpc::drelu_deal(*d_, c, x) : mpc::drelu_eval(*p_, c, x);
}

std::vector<u64> SecureExec::select(const V& b, const V& x, const V& y, int w) {
  return dealer() ? mpc::select_deal(*d_, b, x, y, w) : mpc::select_eval(*p_, b, x, y, w);
}

std::vector<u64> SecureExec::mul(const V& a, const V& b, int w) {
  return dealer() ? mpc::mul_deal(*d_, a, b, w) : mpc::mul_eval(*p_, a, b, w);
}

std::vector<u64> SecureExec::lut(const V& idx, int in_bits, int out_bits, const std::vector<int64_t>& table) {
  mpc::LutSpec ls;
  ls.in_bits = in_bits;
  ls.out_bits = out_bits;
  ls.table.resize(table.size());
  for (size_t k = 0; k < table.size(); ++k) ls.table[k] = mpc::mod_w(u64(table[k]), out_bits);
  V i(idx.size());
  for (size_t k = 0; k < i.size(); ++k) i[k] = mpc::mod_w(idx[k], in_bits);
  return dealer() ? mpc::lut_deal(*d_, ls, i) : mpc::lut_eval(*p_, ls, i);
}

std::vector<u64> SecureExec::plus_const(const V& x, int64_t c, int w) const {
  V o = x;
  if (!dealer())
    for (auto& e : o) e = mpc::mod_w(e + u64(c), w);
  return o;
}

// Normalized LUT (fixed_point.h InvPowLut) on a positive 64-bit wire: b_e = [v >= 2^e],
// one-hot of the MSB e* = sum b_e - 1, u = sum_e onehot_e v 2^(63-e) (MSB moved to bit 63),
// j = floor(u / 2^(63-M)) - 2^M, table[(e* 2^M + j) mod 2^14].
std::vector<u64> SecureExec::invpow(const V& v, const InvPowLut& L, int out_w) {
  const size_t n = v.size();
  const int E = 63, M = L.mantissa, IB = 6 + M;
  V cmp(n * E);
  for (int e = 0; e < E; ++e) {
    auto t = plus_const(v, -(int64_t(1) << e), 64);
    std::copy(t.begin(), t.end(), cmp.begin() + size_t(e) * n);
  }
  auto b = drelu(cmp, 64);
  V onehot(n * E), shifted(n * E), ecount(n, 0);
  for (int e = 0; e < E; ++e)
    for (size_t k = 0; k < n; ++k) {
      u64 be = b[size_t(e) * n + k], bn = e + 1 < E ? b[size_t(e + 1) * n + k] : 0;
      onehot[size_t(e) * n + k] = be - bn;
      shifted[size_t(e) * n + k] = v[k] << (63 - e);
      ecount[k] += be;
    }
  auto prod = mul(onehot, shifted, 64);
  V u(n, 0);
  for (int e = 0; e < E; ++e)
    for (size_t k = 0; k < n; ++k) u[k] += prod[size_t(e) * n + k];
  auto t = trunc(u, 63 - M, 64, IB);  // signed: (u >> 55) - 2^9
  V idx(n);
  for (size_t k = 0; k < n; ++k) {
    // index = (e* << M) + j, e* = ecount - 1, j = t + 2^(M+1) - 2^M = t + 2^M
    u64 ep = dealer() ? ecount[k] : ecount[k] - 1;
    u64 j = dealer() ? t[k] : t[k] + (u64(1) << M);
    idx[k] = mpc::mod_w((ep << M) + j, IB);
  }
  return lut(idx, IB, out_w, L.table());
}

std::vector<u64> SecureExec::matmul_server(const V& x, size_t M, size_t K, size_t N, const std::vector<int64_t>& w_kn,
                                           int w) {
  const uint64_t id = tensor_id_++;
  auto r_w = mpc::weight_mask(seed_, id, K * N, w);
  mpc::MatShape shape{M, K, N};
  if (dealer()) return mpc::matmul_w_deal(*d_, shape, x, r_w, w);
  std::vector<u64> w_plain, w_hat(K * N);
  {  // model setup: the masked weights go to the client once (reusable across queries)
    mpc::OpScope scope(p_->peer, "weights");
    if (p_->id == mpc::kServer) {
      w_plain.resize(K * N);
      for (size_t k = 0; k < K * N; ++k) w_plain[k] = mpc::mod_w(u64(w_kn[k]), w);
      w_hat = mpc::mask_weights(w_plain, r_w, w);
      p_->peer.send_ring(w_hat, w);
    } else {
      p_->peer.recv_ring(w_hat, w);
    }
  }
  return mpc::matmul_w_eval(*p_, shape, x, w_hat, w_plain, w);
}

// Linear: X' = [X | 1] times W' = [W^T ; round(b 2^2f)] by matmul_w (the bias is a weight
// row), then faithful truncation by f. The server sends W'^ = W' + R_W to the client once
// (tag "weights": model setup, reusable across queries).
SWire SecureExec::linear(const SWire& x, const PiLinear& L, const char* tag) {
  AERO_CHECK(x.cols == L.in, "secure linear ", tag, ": input width ", x.cols, " != ", L.in);
  const size_t K = size_t(L.in) + 1, N = size_t(L.out), M = size_t(x.rows);
  V xp(M * K);
  for (size_t t = 0; t < M; ++t) {
    for (size_t i = 0; i + 1 < K; ++i) xp[t * K + i] = x.v[t * L.in + i];
    xp[t * K + K - 1] = dealer() ? 0 : 1;  // public constant 1: mask 0
  }
  std::vector<int64_t> wk;
  if (!dealer() && p_->id == mpc::kServer) {
    wk.assign(K * N, 0);
    for (size_t i = 0; i + 1 < K; ++i)
      for (size_t o = 0; o < N; ++o) wk[i * N + o] = encode(L.w[o * L.in + i], s_.f);
    for (size_t o = 0; o < N; ++o) wk[(K - 1) * N + o] = L.b.empty() ? 0 : encode(L.b[o], 2 * s_.f);
  }
  SWire acc{x.rows, L.out, matmul_server(xp, M, K, N, wk, W)};
  acc.v = trunc(acc.v, s_.f);
  return acc;
}

SWire SecureExec::activation(const SWire& x, model::Activation act, double slope) {
  SWire y{x.rows, x.cols, {}};
  const size_t n = x.v.size();
  const mpc::CompareSpec cs{W, W};
  switch (act) {
    case model::Activation::identity: return x;
    case model::Activation::relu:
      y.v = dealer() ? mpc::relu_deal(*d_, cs, x.v) : mpc::relu_eval(*p_, cs, x.v);
      return y;
    case model::Activation::gelu: {
      // relu(x) - T[clamp(x >> (f-6), -256, 255) + 256]  (FixedExec / GeluLut::eval)
      auto r = dealer() ? mpc::relu_deal(*d_, cs, x.v) : mpc::relu_eval(*p_, cs, x.v);
      auto u = trunc(x.v, s_.f - s_.gelu_lut_frac);
      const int64_t half = int64_t(gelu_.table.size()) / 2;
      auto shifted = [&](const std::vector<u64>& v, int64_t c) {  // v + c (public): x^ only
        std::vector<u64> o = v;
        if (!dealer())
          for (auto& e : o) e = mpc::mod_w(e + u64(c), W);
        return o;
      };
      auto lo = drelu(shifted(u, half));       // u >= -half
      auto hi = drelu(shifted(u, -half));      // u >= half
      auto v1 = select(lo, u, constant(n, -half));
      auto idx = select(hi, constant(n, half - 1), v1);
      const int b = s_.gelu_lut_bits;
      std::vector<u64> i9(n);
      for (size_t k = 0; k < n; ++k) i9[k] = mpc::mod_w(dealer() ? idx[k] : idx[k] + u64(half), b);
      mpc::LutSpec ls;
      ls.in_bits = b;
      ls.out_bits = W;
      ls.table.resize(gelu_.table.size());
      for (size_t k = 0; k < ls.table.size(); ++k) ls.table[k] = mpc::mod_w(u64(gelu_.table[k]), W);
      auto delta = dealer() ? mpc::lut_deal(*d_, ls, i9) : mpc::lut_eval(*p_, ls, i9);
      y.v.resize(n);
      for (size_t k = 0; k < n; ++k) y.v[k] = mpc::mod_w(r[k] - delta[k], W);
      return y;
    }
    case model::Activation::leaky_relu:
    case model::Activation::learnable_leaky_relu: {
      const int64_t sl = encode(slope, s_.f);
      auto b = drelu(x.v);
      std::vector<u64> xs(n);
      for (size_t k = 0; k < n; ++k) xs[k] = mpc::mod_w(x.v[k] * u64(sl), W);
      auto neg = trunc(xs, s_.f);
      y.v = select(b, x.v, neg);
      return y;
    }
  }
  return x;
}

SWire SecureExec::add(const SWire& a, const SWire& b, const char*) {
  SWire y = a;
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = mpc::mod_w(a.v[k] + b.v[k], W);
  return y;
}

SWire SecureExec::residual(const SWire& xh, const SWire& f, double beta, double inv_alpha) {
  if (beta == 1.0 && inv_alpha == 1.0) return add(xh, f, "residual");
  const u64 b = u64(encode(beta, s_.f)), a = u64(encode(inv_alpha, s_.f));
  SWire y = xh;
  for (size_t k = 0; k < y.v.size(); ++k) y.v[k] = mpc::mod_w(xh.v[k] * b + f.v[k] * a, W);
  y.v = trunc(y.v, s_.f);
  return y;
}

SWire SecureExec::rotary(const SWire& qkv, const PiModel& m) {
  const int d = m.cfg.d_model, H = m.cfg.n_head, dk = d / H, half = m.cfg.rotary_dims() / 2;
  SWire y = qkv;
  V lin;
  std::vector<size_t> pos;
  for (int t = 0; t < qkv.rows; ++t)
    for (int part = 0; part < 2; ++part)
      for (int h = 0; h < H; ++h) {
        size_t base = size_t(t) * qkv.cols + size_t(part) * d + size_t(h) * dk;
        for (int i = 0; i < half; ++i) {
          u64 c = u64(encode(m.rot_cos[size_t(t) * half + i], s_.rot_frac));
          u64 sn = u64(encode(m.rot_sin[size_t(t) * half + i], s_.rot_frac));
          u64 x1 = qkv.v[base + i], x2 = qkv.v[base + i + half];
          lin.push_back(mpc::mod_w(x1 * c - x2 * sn, W));
          pos.push_back(base + i);
          lin.push_back(mpc::mod_w(x2 * c + x1 * sn, W));
          pos.push_back(base + i + half);
        }
      }
  auto r = trunc(lin, s_.rot_frac);
  for (size_t k = 0; k < pos.size(); ++k) y.v[pos[k]] = r[k];
  return y;
}

// z = floor(q.k * round(c[h,i] 2^c_frac) / 2^(f + c_frac)), all T x T entries (the upper
// triangle is computed and ignored).
SWire SecureExec::attn_logits(const SWire& qkv, const PiBlock& b, int H) {
  const size_t T = qkv.rows, d = qkv.cols / 3, dk = d / H, Tc = b.score_const.size() / H;
  V s_all(H * T * T);
  for (int h = 0; h < H; ++h) {
    V q(T * dk), kt(dk * T);
    for (size_t t = 0; t < T; ++t)
      for (size_t e = 0; e < dk; ++e) {
        q[t * dk + e] = qkv.v[t * qkv.cols + h * dk + e];
        kt[e * T + t] = qkv.v[t * qkv.cols + d + h * dk + e];
      }
    mpc::MatShape sh{T, dk, T};
    auto s = dealer() ? mpc::matmul_ss_deal(*d_, sh, q, kt, W) : mpc::matmul_ss_eval(*p_, sh, q, kt, W);
    std::copy(s.begin(), s.end(), s_all.begin() + size_t(h) * T * T);
  }
  auto wide = trunc(s_all, 0, W, 64);
  for (int h = 0; h < H; ++h)
    for (size_t i = 0; i < T; ++i) {
      u64 c = u64(encode(b.score_const[size_t(h) * Tc + i], s_.c_frac));
      for (size_t j = 0; j < T; ++j) wide[(size_t(h) * T + i) * T + j] *= c;
    }
  return SWire{int(H * T), int(T), trunc(wide, s_.f + s_.c_frac, 64, W)};
}

SWire SecureExec::attn_softmax_v(const SWire& z, const SWire& qkv, int H) {
  const size_t T = qkv.rows, d = qkv.cols / 3, dk = d / H, R = size_t(H) * T;
  auto at = [&](size_t r, size_t j) { return z.v[r * T + j]; };
  // Reference per row: the exact maximum (tournament) or the public clip_hi.
  V ref(R);
  if (s_.softmax == SoftmaxVariant::exact_max) {
    std::vector<V> cur(R);
    for (size_t r = 0; r < R; ++r)
      for (size_t j = 0; j <= r % T; ++j) cur[r].push_back(at(r, j));
    while (true) {
      V a, bb;
      for (auto& c : cur)
        for (size_t k = 0; k + 1 < c.size(); k += 2) a.push_back(c[k]), bb.push_back(c[k + 1]);
      if (a.empty()) break;
      V diff(a.size());
      for (size_t k = 0; k < a.size(); ++k) diff[k] = mpc::mod_w(a[k] - bb[k], W);
      auto ge = drelu(diff);
      auto mx = select(ge, a, bb);
      size_t q = 0;
      for (auto& c : cur) {
        V next;
        for (size_t k = 0; k + 1 < c.size(); k += 2) next.push_back(mx[q++]);
        if (c.size() % 2) next.push_back(c.back());
        c = std::move(next);
      }
    }
    for (size_t r = 0; r < R; ++r) ref[r] = cur[r][0];
  } else {
    ref = std::vector<u64>(R, dealer() ? 0 : mpc::mod_w(u64(encode(s_.clip_hi, s_.f)), W));
  }
  // Exp index: clamp((ref - z) >> (f - 6), 0, last) over the causal entries.
  V dd;
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j <= r % T; ++j) dd.push_back(mpc::mod_w(ref[r] - at(r, j), W));
  const int64_t last = int64_t(exp_.table.size()) - 1;
  const size_t n = dd.size();
  auto u = trunc(dd, s_.f - s_.exp_lut_frac);
  if (s_.softmax == SoftmaxVariant::clipped) u = select(drelu(u), u, std::vector<u64>(n, 0));
  auto hi = drelu(plus_const(u, -last, W));
  auto idx = select(hi, std::vector<u64>(n, dealer() ? 0 : u64(last)), u);
  auto e = lut(idx, s_.exp_bits(), 64, exp_.table);
  // E (causal, zeros above the diagonal: public), row sums, 1/sum.
  V E(R * T, 0), sum(R, 0);
  size_t q = 0;
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0; j <= r % T; ++j) {
      E[r * T + j] = e[q];
      sum[r] += e[q++];
    }
  auto inv = invpow(sum, inv_, 64);
  auto v64 = trunc(qkv.v, 0, W, 64);
  V ev(T * d), invb(T * d);
  for (int h = 0; h < H; ++h) {
    V Eh(E.begin() + size_t(h) * T * T, E.begin() + size_t(h + 1) * T * T), vh(T * dk);
    for (size_t t = 0; t < T; ++t)
      for (size_t c = 0; c < dk; ++c) vh[t * dk + c] = v64[t * qkv.cols + 2 * d + h * dk + c];
    mpc::MatShape sh{T, T, dk};
    auto o = dealer() ? mpc::matmul_ss_deal(*d_, sh, Eh, vh, 64) : mpc::matmul_ss_eval(*p_, sh, Eh, vh, 64);
    for (size_t t = 0; t < T; ++t)
      for (size_t c = 0; c < dk; ++c) {
        ev[t * d + h * dk + c] = o[t * dk + c];
        invb[t * d + h * dk + c] = inv[size_t(h) * T + t];
      }
  }
  auto p = mul(ev, invb, 64);
  return SWire{int(T), int(d), trunc(p, s_.exp_frac() + s_.inv_frac(), 64, W)};
}

SWire SecureExec::layernorm(const SWire& x, const PiNorm& nrm, const char*) {
  const size_t R = x.rows, d = x.cols;
  auto x64 = trunc(x.v, 0, W, 64);
  V sx(R, 0);
  for (size_t t = 0; t < R; ++t)
    for (size_t i = 0; i < d; ++i) sx[t] += x64[t * d + i];
  V a = x64, b = x64;  // x^2 elementwise and (sum x)^2 per row in one mul
  a.insert(a.end(), sx.begin(), sx.end());
  b.insert(b.end(), sx.begin(), sx.end());
  auto sq = mul(a, b, 64);
  const int64_t eps = encode(double(d) * d * s_.ln_eps, 2 * s_.f);
  V D(R, 0);
  for (size_t t = 0; t < R; ++t) {
    u64 s2 = 0;
    for (size_t i = 0; i < d; ++i) s2 += sq[t * d + i];
    D[t] = u64(d) * s2 - sq[R * d + t] + (dealer() ? 0 : u64(eps));
  }
  auto r = invpow(D, rsqrt_, 64);
  V c(R * d), rb(R * d);
  for (size_t t = 0; t < R; ++t)
    for (size_t i = 0; i < d; ++i) c[t * d + i] = u64(d) * x64[t * d + i] - sx[t], rb[t * d + i] = r[t];
  auto cr = mul(c, rb, 64);
  for (size_t t = 0; t < R; ++t)
    for (size_t i = 0; i < d; ++i) cr[t * d + i] *= u64(encode(nrm.g[i], s_.f));
  auto y = trunc(cr, s_.f + s_.rsqrt_out_frac, 64, W);
  if (!dealer())
    for (size_t t = 0; t < R; ++t)
      for (size_t i = 0; i < d; ++i) y[t * d + i] = mpc::mod_w(y[t * d + i] + u64(encode(nrm.b[i], s_.f)), W);
  return SWire{int(R), int(d), y};
}

// Embedding: the client inputs its one-hot rows (T x V, width W), a matmul_w with the table
// at scale f (no truncation), plus the server's positions table input as a masked wire.
SWire SecureExec::embed(const std::vector<int32_t>& ids, const PiModel& m) {
  const size_t T = ids.size(), Vv = m.cfg.vocab_size, d = m.cfg.d_model;
  V oh(T * Vv, 0);
  if (!dealer() && p_->id == mpc::kClient)
    for (size_t t = 0; t < T; ++t) oh[t * Vv + size_t(ids[t])] = 1;
  auto x1 = dealer() ? mpc::input_deal(*d_, mpc::kClient, T * Vv, W) : mpc::input_eval(*p_, mpc::kClient, oh, T * Vv, W);
  std::vector<int64_t> wk;
  if (!dealer() && p_->id == mpc::kServer) {
    wk.resize(Vv * d);
    for (size_t k = 0; k < Vv * d; ++k) wk[k] = encode(m.wte[k], s_.f);
  }
  SWire x{int(T), int(d), matmul_server(x1, T, Vv, d, wk, W)};
  if (!m.wpe.empty()) {
    V pe(T * d, 0);
    if (!dealer() && p_->id == mpc::kServer)
      for (size_t k = 0; k < T * d; ++k) pe[k] = mpc::mod_w(u64(encode(m.wpe[k], s_.f)), W);
    auto pw = dealer() ? mpc::input_deal(*d_, mpc::kServer, T * d, W) : mpc::input_eval(*p_, mpc::kServer, pe, T * d, W);
    for (size_t k = 0; k < T * d; ++k) x.v[k] = mpc::mod_w(x.v[k] + pw[k], W);
  }
  return x;
}

SWire SecureExec::last_row(const SWire& x) {
  return SWire{1, x.cols, V(x.v.end() - x.cols, x.v.end())};
}

SWire SecureExec::lm_head(const SWire& x, const PiModel& m) {
  const size_t Vv = m.cfg.vocab_size, d = m.cfg.d_model;
  std::vector<int64_t> wk;
  if (!dealer() && p_->id == mpc::kServer) {
    const auto& w = m.head_weight();
    wk.resize(d * Vv);
    for (size_t v = 0; v < Vv; ++v)
      for (size_t i = 0; i < d; ++i) wk[i * Vv + v] = encode(w[v * d + i], s_.f);
  }
  SWire y{x.rows, int(Vv), matmul_server(x.v, x.rows, d, Vv, wk, W)};
  y.v = trunc(y.v, s_.f);
  return y;
}

SWire SecureExec::argmax(const SWire& lg) {
  AERO_CHECK(lg.rows == 1, "secure argmax: one row expected, got ", lg.rows);
  V val = lg.v, idx(val.size());
  for (size_t k = 0; k < idx.size(); ++k) idx[k] = dealer() ? 0 : u64(k);  // public indices
  while (val.size() > 1) {
    size_t pairs = val.size() / 2;
    V diff(pairs), g2(2 * pairs), a2(2 * pairs), b2(2 * pairs);
    for (size_t k = 0; k < pairs; ++k) diff[k] = mpc::mod_w(val[2 * k] - val[2 * k + 1], W);
    auto ge = drelu(diff);
    for (size_t k = 0; k < pairs; ++k) {
      g2[k] = g2[pairs + k] = ge[k];
      a2[k] = val[2 * k], b2[k] = val[2 * k + 1];
      a2[pairs + k] = idx[2 * k], b2[pairs + k] = idx[2 * k + 1];
    }
    auto sel = select(g2, a2, b2);
    V nv(sel.begin(), sel.begin() + pairs), ni(sel.begin() + pairs, sel.end());
    if (val.size() % 2) nv.push_back(val.back()), ni.push_back(idx.back());
    val = std::move(nv);
    idx = std::move(ni);
  }
  return SWire{1, 1, idx};
}

}  // namespace aero::pi
