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
  OpScope scope(p.peer, "matmul_w");
  return open(p, matmul_w_shares(p, s, x_hat, w_hat, w_plain, w), w);
}

std::vector<u64> matmul_w_shares(Party& p, const MatShape& s, std::span<const u64> x_hat,
                                 std::span<const u64> w_hat, std::span<const u64> w_plain, int w) {
  check_sizes("matmul_w_eval", x_hat.size(), s.m * s.k, "masked input");
  check_sizes("matmul_w_eval", w_hat.size(), s.k * s.n, "masked weights");
  if (p.id == kServer) check_sizes("matmul_w_eval", w_plain.size(), s.k * s.n, "server weights");
  p.keys.begin("matmul_w", s.m * s.n);
  std::vector<u64> rx(s.m * s.k), y(s.m * s.n);
  p.keys.share(rx, w);
  p.keys.share(y, w);
  gemm_acc(s, rx.data(), w_hat.data(), y.data(), /*subtract=*/true);
  if (p.id == kServer) gemm_acc(s, x_hat.data(), w_plain.data(), y.data());
  reduce(y, w);
  return y;
}

std::vector<u64> matmul_ss_deal(Dealer& d, const MatShape& s, std::span<const u64> r_a,
                                std::span<const u64> r_b, int w) {
  return matmul_ss_batch_deal(d, BatchMatShape{s}, r_a, r_b, w);
}

std::vector<u64> matmul_ss_eval(Party& p, const MatShape& s, std::span<const u64> a_hat,
                                std::span<const u64> b_hat, int w) {
  return matmul_ss_batch_eval(p, BatchMatShape{s}, a_hat, b_hat, w);
}

void BatchMatShape::check() const {
  AERO_CHECK(!tri_a || mat.m == mat.k, "matmul_ss_batch: tri_a needs a square left factor (", mat.m, " x ", mat.k, ")");
  AERO_CHECK(!tri_out || mat.m == mat.n, "matmul_ss_batch: tri_out needs a square product (", mat.m, " x ", mat.n, ")");
}

namespace {
// The lower-triangular entries (j <= i) of a square row-major matrix, or all entries.
std::vector<u64> tri_pack(std::span<const u64> full, size_t m, size_t n, bool tri) {
  if (!tri) return {full.begin(), full.end()};
  std::vector<u64> out;
  out.reserve(m * (m + 1) / 2);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j <= i; ++j) out.push_back(full[i * n + j]);
  return out;
}
std::vector<u64> tri_unpack(std::span<const u64> packed, size_t m, size_t n, bool tri) {
  if (!tri) return {packed.begin(), packed.end()};
  std::vector<u64> full(m * n, 0);
  size_t q = 0;
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j <= i; ++j) full[i * n + j] = packed[q++];
  return full;
}
// Per batch entry: the A part (triangular entries when tri_a) of r_a, all of r_b, and C.
struct BatchParts {
  size_t a, b, c, a_shared, c_kept;
};
BatchParts parts(const BatchMatShape& s) {
  const auto& m = s.mat;
  return {m.m * m.k, m.k * m.n, m.m * m.n, s.tri_a ? m.m * (m.m + 1) / 2 : m.m * m.k,
          s.tri_out ? m.m * (m.m + 1) / 2 : m.m * m.n};
}
}  // namespace

std::vector<u64> matmul_ss_batch_deal(Dealer& d, const BatchMatShape& s, std::span<const u64> r_a,
                                      std::span<const u64> r_b, int w) {
  s.check();
  const BatchParts z = parts(s);
  check_sizes("matmul_ss_batch_deal", r_a.size(), s.batch * z.a, "left mask");
  check_sizes("matmul_ss_batch_deal", r_b.size(), s.batch * z.b, "right mask");
  d.begin("matmul_ss_batch", s.out_count());
  std::vector<u64> r_c = d.random(s.out_count(), w), sa, corr;
  sa.reserve(s.batch * z.a_shared);
  corr.reserve(s.out_count());
  for (size_t b = 0; b < s.batch; ++b) {
    auto ta = tri_pack(r_a.subspan(b * z.a, z.a), s.mat.m, s.mat.k, s.tri_a);
    if (s.tri_a)  // the masks of the public zeros above the diagonal must be 0
      AERO_CHECK(tri_unpack(ta, s.mat.m, s.mat.k, true) ==
                     std::vector<u64>(r_a.begin() + b * z.a, r_a.begin() + (b + 1) * z.a),
                 "matmul_ss_batch: tri_a with a nonzero mask above the diagonal");
    sa.insert(sa.end(), ta.begin(), ta.end());
    std::vector<u64> full(z.c, 0);
    gemm_acc(s.mat, r_a.data() + b * z.a, r_b.data() + b * z.b, full.data());
    auto kept = tri_pack(full, s.mat.m, s.mat.n, s.tri_out);
    for (size_t i = 0; i < kept.size(); ++i) corr.push_back(mod_w(kept[i] + r_c[b * z.c_kept + i], w));
  }
  d.share(sa, w);
  d.share(r_b, w);
  d.share(corr, w);
  return r_c;
}

std::vector<u64> matmul_ss_batch_shares(Party& p, const BatchMatShape& s, std::span<const u64> a_hat,
                                        std::span<const u64> b_hat, int w) {
  s.check();
  const BatchParts z = parts(s);
  check_sizes("matmul_ss_batch", a_hat.size(), s.batch * z.a, "left input");
  check_sizes("matmul_ss_batch", b_hat.size(), s.batch * z.b, "right input");
  p.keys.begin("matmul_ss_batch", s.out_count());
  std::vector<u64> sa(s.batch * z.a_shared), rb(s.batch * z.b), c(s.out_count());
  p.keys.share(sa, w);
  p.keys.share(rb, w);
  p.keys.share(c, w);
  for (size_t b = 0; b < s.batch; ++b) {
    auto ra = tri_unpack(std::span<const u64>(sa).subspan(b * z.a_shared, z.a_shared), s.mat.m, s.mat.k, s.tri_a);
    std::vector<u64> full(z.c, 0);
    const u64* ah = a_hat.data() + b * z.a;
    const u64* bh = b_hat.data() + b * z.b;
    gemm_acc(s.mat, ah, rb.data() + b * z.b, full.data(), true);
    gemm_acc(s.mat, ra.data(), bh, full.data(), true);
    if (p.id == kServer) gemm_acc(s.mat, ah, bh, full.data());
    auto kept = tri_pack(full, s.mat.m, s.mat.n, s.tri_out);
    for (size_t i = 0; i < kept.size(); ++i) c[b * z.c_kept + i] = mod_w(c[b * z.c_kept + i] + kept[i], w);
  }
  return c;
}

std::vector<u64> matmul_ss_batch_eval(Party& p, const BatchMatShape& s, std::span<const u64> a_hat,
                                      std::span<const u64> b_hat, int w) {
  OpScope scope(p.peer, "matmul_ss");
  return open(p, matmul_ss_batch_shares(p, s, a_hat, b_hat, w), w);
}

std::vector<u64> quad_rows_deal(Dealer& d, size_t rows, size_t cols, u64 a, u64 b, std::span<const u64> r_x, int w) {
  check_sizes("quad_rows_deal", r_x.size(), rows * cols, "input mask");
  d.begin("quad_rows", rows);
  std::vector<u64> r_y = d.random(rows, w), corr(rows);
  for (size_t t = 0; t < rows; ++t) {
    u64 sq = 0, rs = 0;
    for (size_t i = 0; i < cols; ++i) sq += r_x[t * cols + i] * r_x[t * cols + i], rs += r_x[t * cols + i];
    corr[t] = mod_w(a * sq - b * rs * rs + r_y[t], w);
  }
  d.share(r_x, w);
  d.share(corr, w);
  return r_y;
}

std::vector<u64> quad_rows_eval(Party& p, size_t rows, size_t cols, u64 a, u64 b, std::span<const u64> x_hat, int w) {
  check_sizes("quad_rows_eval", x_hat.size(), rows * cols, "masked input");
  OpScope scope(p.peer, "quad_rows");
  p.keys.begin("quad_rows", rows);
  std::vector<u64> r(rows * cols), y(rows);
  p.keys.share(r, w);
  p.keys.share(y, w);
  for (size_t t = 0; t < rows; ++t) {
    // a sum (x^2 - 2 x^ r + r^2) - b (s^2 - 2 s^ r_s + r_s^2): the r^2 terms are in y already.
    u64 xr = 0, rs = 0, sq = 0, sh = 0;
    for (size_t i = 0; i < cols; ++i) {
      const u64 xh = x_hat[t * cols + i];
      xr += xh * r[t * cols + i], rs += r[t * cols + i], sq += xh * xh, sh += xh;
    }
    u64 v = y[t] - 2 * a * xr + 2 * b * sh * rs;
    if (p.id == kServer) v += a * sq - b * sh * sh;
    y[t] = mod_w(v, w);
  }
  return open(p, y, w);
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
  OpScope scope(p.peer, tag);
  return open(p, mul_shares(p, a_hat, b_hat, w), w);
}

std::vector<u64> mul_shares(Party& p, std::span<const u64> a_hat, std::span<const u64> b_hat, int w) {
  check_sizes("mul_eval", b_hat.size(), a_hat.size(), "right input");
  const size_t n = a_hat.size();
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
  return c;
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

size_t matmul_w_key_bytes(const MatShape& s, int w, int party) {
  return 8 + (party ? packed_bytes(s.m * s.k, w) + packed_bytes(s.m * s.n, w) : 0);
}

size_t matmul_ss_batch_key_bytes(const BatchMatShape& s, int w, int party) {
  const BatchParts z = parts(s);
  return 8 + (party ? packed_bytes(s.batch * z.a_shared, w) + packed_bytes(s.batch * z.b, w) +
                          packed_bytes(s.out_count(), w)
                    : 0);
}

size_t quad_rows_key_bytes(size_t rows, size_t cols, int w, int party) {
  return 8 + (party ? packed_bytes(rows * cols, w) + packed_bytes(rows, w) : 0);
}

size_t mul_key_bytes(size_t n, int w, int party) { return 8 + (party ? 3 * packed_bytes(n, w) : 0); }

}  // namespace aero::mpc
