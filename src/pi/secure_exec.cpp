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
    : d_(dealer), p_(party), s_(spec), seed_(model_seed), gelu_(spec) {
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

std::vector<u64> SecureExec::trunc(const std::vector<u64>& x, int shift) {
  mpc::TruncSpec t{W, shift, W, true};
  return dealer() ? mpc::trunc_deal(*d_, t, x) : mpc::trunc_eval(*p_, t, x);
}

std::vector<u64> SecureExec::drelu(const std::vector<u64>& x) {
  mpc::CompareSpec c{W, W};
  return dealer() ? mpc::drelu_deal(*d_, c, x) : mpc::drelu_eval(*p_, c, x);
}

std::vector<u64> SecureExec::select(const std::vector<u64>& b, const std::vector<u64>& x, const std::vector<u64>& y) {
  return dealer() ? mpc::select_deal(*d_, b, x, y, W) : mpc::select_eval(*p_, b, x, y, W);
}

// Linear: X' = [X | 1] times W' = [W^T ; round(b 2^2f)] by matmul_w (the bias is a weight
// row), then faithful truncation by f. The server sends W'^ = W' + R_W to the client once
// (tag "weights": model setup, reusable across queries).
SWire SecureExec::linear(const SWire& x, const PiLinear& L, const char* tag) {
  AERO_CHECK(x.cols == L.in, "secure linear ", tag, ": input width ", x.cols, " != ", L.in);
  const size_t K = size_t(L.in) + 1, N = size_t(L.out), M = size_t(x.rows);
  std::vector<u64> xp(M * K);
  for (size_t t = 0; t < M; ++t) {
    for (size_t i = 0; i + 1 < K; ++i) xp[t * K + i] = x.v[t * L.in + i];
    xp[t * K + K - 1] = dealer() ? 0 : 1;  // public constant 1: mask 0
  }
  const uint64_t id = tensor_id_++;
  auto r_w = mpc::weight_mask(seed_, id, K * N, W);
  mpc::MatShape shape{M, K, N};
  SWire acc{x.rows, L.out, {}};
  if (dealer()) {
    acc.v = mpc::matmul_w_deal(*d_, shape, xp, r_w, W);
  } else {
    std::vector<u64> w_plain, w_hat(K * N);
    if (p_->id == mpc::kServer) {
      w_plain.resize(K * N);
      for (size_t i = 0; i + 1 < K; ++i)
        for (size_t o = 0; o < N; ++o) w_plain[i * N + o] = mpc::mod_w(u64(encode(L.w[o * L.in + i], s_.f)), W);
      for (size_t o = 0; o < N; ++o)
        w_plain[(K - 1) * N + o] = L.b.empty() ? 0 : mpc::mod_w(u64(encode(L.b[o], 2 * s_.f)), W);
      w_hat = mpc::mask_weights(w_plain, r_w, W);
      mpc::OpScope scope(p_->peer, "weights");
      p_->peer.send_ring(w_hat, W);
    } else {
      mpc::OpScope scope(p_->peer, "weights");
      p_->peer.recv_ring(w_hat, W);
    }
    acc.v = mpc::matmul_w_eval(*p_, shape, xp, w_hat, w_plain, W);
  }
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

}  // namespace aero::pi
