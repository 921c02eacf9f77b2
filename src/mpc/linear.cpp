#include "mpc/linear.h"

namespace aero::mpc {

void gemm_acc(const MatShape& s, const u64* a, const u64* b, u64* c, bool subtract) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < s.m; ++i) {
    u64* crow = c + i * s.n;
    for (size_t kk = 0; kk < s.k; ++kk) {
      const u64 av = subtract ? u64(0) - a[i * s.k + kk] : a[i * s.k + kk];
      if (av == 0) continue;
      const u64* brow = b + kk * s.n;
      for (size_t j = 0; j < s.n; ++j) crow[j] += av * brow[j];
    }
  }
}

namespace {
void check_sizes(const char* op, size_t got, size_t want, const char* what) {
  AERO_CHECK(got == want, op, ": ", what, " has ", got, " elements, expected ", want);
}
void reduce(std::vector<u64>& v, int w) {
  for (auto& x : v) x = mod_w(x, w);
}
}  // namespace

std::vector<u64> weight_mask(Block model_seed, u64 tensor_id, size_t n, int w) {
  std::vector<u64> r(n);
  Prg(model_seed, tensor_id + 1000).fill(r, w);
  return r;
}

std::vector<u64> mask_weights(std::span<const u64> w_plain, std::span<const u64> r_w, int w) {
  check_sizes("mask_weights", r_w.size(), w_plain.size(), "mask");
  std::vector<u64> out(w_plain.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = mod_w(w_plain[i] + r_w[i], w);
  return out;
}

std::vector<u64> matmul_w_deal(Dealer& d, const MatShape& s, std::span<const u64> r_x,
                               std::span<const u64> r_w, int w) {
  check_sizes("matmul_w_deal", r_x.size(), s.m * s.k, "input mask");
  check_sizes("matmul_w_deal", r_w.size(), s.k * s.n, "weight mask");
  d.begin("matmul_w", s.m * s.n);
  std::vector<u64> r_y = d.random(s.m * s.n, w);
  std::vector<u64> corr = r_y;
  gemm_acc(s, r_x.data(), r_w.data(), corr.data());
  reduce(corr, w);
  d.share(r_x, w);
  d.share(corr, w);
  return r_y;
}

std::vector<u64> matmul_w_eval(Party& p, const MatShape& s, std::span<const u64> x_hat,
                               std::span<const u64> w_hat, std::span<const u64> w_plain, int w) {
  check_sizes("matmul_w_eval", x_hat.size(), s.m * s.k, "masked input");
  check_sizes("matmul_w_eval", w_hat.size(), s.k * s.n, "masked weights");
  if (p.id == kServer) check_sizes("matmul_w_eval", w_plain.size(), s.k * s.n, "server weights");
  OpScope scope(p.peer, "matmul_w");
  p.keys.begin("matmul_w", s.m * s.n);
  std::vector<u64> rx(s.m * s.k), y(s.m * s.n);
  p.keys.share(rx, w);
  p.keys.share(y, w);
  gemm_acc(s, rx.data(), w_hat.data(), y.data(), /*subtract=*/true);
  if (p.id == kServer) gemm_acc(s, x_hat.data(), w_plain.data(), y.data());
  reduce(y, w);
  return open(p, y, w);
}

std::vector<u64> matmul_ss_deal(Dealer& d, const MatShape& s, std::span<const u64> r_a,
                                std::span<const u64> r_b, int w) {
  check_sizes("matmul_ss_deal", r_a.size(), s.m * s.k, "left mask");
  check_sizes("matmul_ss_deal", r_b.size(), s.k * s.n, "right mask");
  d.begin("matmul_ss", s.m * s.n);
  std::vector<u64> r_c = d.random(s.m * s.n, w);
  std::vector<u64> corr = r_c;
  gemm_acc(s, r_a.data(), r_b.data(), corr.data());
  reduce(corr, w);
  d.share(r_a, w);
  d.share(r_b, w);
  d.share(corr, w);
  return r_c;
}

std::vector<u64> matmul_ss_eval(Party& p, const MatShape& s, std::span<const u64> a_hat,
                                std::span<const u64> b_hat, int w) {
  check_sizes("matmul_ss_eval", a_hat.size(), s.m * s.k, "left input");
  check_sizes("matmul_ss_eval", b_hat.size(), s.k * s.n, "right input");
  OpScope scope(p.peer, "matmul_ss");
  p.keys.begin("matmul_ss", s.m * s.n);
  std::vector<u64> ra(s.m * s.k), rb(s.k * s.n), c(s.m * s.n);
  p.keys.share(ra, w);
  p.keys.share(rb, w);
  p.keys.share(c, w);
  gemm_acc(s, a_hat.data(), rb.data(), c.data(), true);
  gemm_acc(s, ra.data(), b_hat.data(), c.data(), true);
  if (p.id == kServer) gemm_acc(s, a_hat.data(), b_hat.data(), c.data());
  reduce(c, w);
  return open(p, c, w);
}

std::vector<u64> mul_deal(Dealer& d, std::span<const u64> r_a, std::span<const u64> r_b, int w) {
  check_sizes("mul_deal", r_b.size(), r_a.size(), "right mask");
  const size_t n = r_a.size();
  d.begin("mul", n);
  std::vector<u64> r_c = d.random(n, w), corr(n);
  for (size_t i = 0; i < n; ++i) corr[i] = mod_w(r_a[i] * r_b[i] + r_c[i], w);
  d.share(r_a, w);
  d.share(r_b, w);
  d.share(corr, w);
  return r_c;
}

std::vector<u64> mul_eval(Party& p, std::span<const u64> a_hat, std::span<const u64> b_hat, int w,
                          const char* tag) {
  check_sizes("mul_eval", b_hat.size(), a_hat.size(), "right input");
  const size_t n = a_hat.size();
  OpScope scope(p.peer, tag);
  p.keys.begin("mul", n);
  std::vector<u64> ra(n), rb(n), c(n);
  p.keys.share(ra, w);
  p.keys.share(rb, w);
  p.keys.share(c, w);
  for (size_t i = 0; i < n; ++i) {
    u64 v = c[i] - a_hat[i] * rb[i] - ra[i] * b_hat[i];
    if (p.id == kServer) v += a_hat[i] * b_hat[i];
    c[i] = mod_w(v, w);
  }
  return open(p, c, w);
}

std::vector<u64> select_deal(Dealer& d, std::span<const u64> r_b, std::span<const u64> r_x,
                             std::span<const u64> r_y, int w) {
  check_sizes("select_deal", r_x.size(), r_b.size(), "x mask");
  check_sizes("select_deal", r_y.size(), r_b.size(), "y mask");
  std::vector<u64> r_d(r_x.size());
  for (size_t i = 0; i < r_d.size(); ++i) r_d[i] = mod_w(r_x[i] - r_y[i], w);
  std::vector<u64> r_z = mul_deal(d, r_b, r_d, w);
  for (size_t i = 0; i < r_z.size(); ++i) r_z[i] = mod_w(r_z[i] + r_y[i], w);
  return r_z;
}

std::vector<u64> select_eval(Party& p, std::span<const u64> b_hat, std::span<const u64> x_hat,
                             std::span<const u64> y_hat, int w) {
  check_sizes("select_eval", x_hat.size(), b_hat.size(), "x");
  check_sizes("select_eval", y_hat.size(), b_hat.size(), "y");
  std::vector<u64> d_hat(x_hat.size());
  for (size_t i = 0; i < d_hat.size(); ++i) d_hat[i] = mod_w(x_hat[i] - y_hat[i], w);
  std::vector<u64> z = mul_eval(p, b_hat, d_hat, w, "select");
  for (size_t i = 0; i < z.size(); ++i) z[i] = mod_w(z[i] + y_hat[i], w);
  return z;
}

}  // namespace aero::mpc
