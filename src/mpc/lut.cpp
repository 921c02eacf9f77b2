#include "mpc/lut.h"

#include <algorithm>

#include "mpc/dpf.h"

namespace aero::mpc {

void LutSpec::check() const {
  AERO_CHECK(in_bits >= 1 && in_bits <= 24, "lookup table input width ", in_bits,
             " is outside 1..24 (truncate-reduce first)");
  check_width(out_bits, "lookup table output");
  AERO_CHECK(table.size() == (size_t(1) << in_bits), "lookup table has ", table.size(),
             " entries, expected 2^", in_bits);
}

std::vector<u64> lut_deal(Dealer& d, const LutSpec& s, std::span<const u64> r_in) {
  s.check();
  const size_t n = r_in.size();
  d.begin("lut", n);
  std::vector<u64> r_out = d.random(n, s.out_bits), alpha(n), beta(n, 1);
  for (size_t i = 0; i < n; ++i) alpha[i] = mod_w(r_in[i], s.in_bits);
  d.share(r_out, s.out_bits);
  dpf_deal(d, {s.in_bits, s.out_bits, false, s.leaf_bits}, alpha, beta);
  return r_out;
}

std::vector<u64> lut_eval(Party& p, const LutSpec& s, std::span<const u64> x_hat) {
  OpScope scope(p.peer, "lut");
  return open(p, lut_shares(p, s, x_hat), s.out_bits);
}

std::vector<u64> lut_shares(Party& p, const LutSpec& s, std::span<const u64> x_hat) {
  s.check();
  const size_t n = x_hat.size();
  p.keys.begin("lut", n);
  std::vector<u64> y(n);
  p.keys.share(y, s.out_bits);
  DpfKeys k = dpf_read(p.keys, {s.in_bits, s.out_bits, false, s.leaf_bits}, n);
  const size_t dom = size_t(1) << s.in_bits;
  const u64 dm = dom - 1;
  const LutSupport sup = lut_support(s.table);
  if (sup.len == 0) return y;  // T = 0
  if (sup.len < dom) {  // window: j = x^ - i for i = start + len - 1 - t, t < len
    std::vector<u64> trev(sup.len);
    for (size_t t = 0; t < sup.len; ++t) trev[t] = s.table[(sup.start + sup.len - 1 - t) & dm];
#pragma omp parallel
    {
      std::vector<u64> e(sup.len);
#pragma omp for schedule(static)
      for (size_t i = 0; i < n; ++i) {
        dpf_eval_range(p.id, k, i, x_hat[i] - sup.start - sup.len + 1, e);
        u64 acc = 0;
        for (size_t t = 0; t < sup.len; ++t) acc += trev[t] * e[t];
        y[i] = mod_w(y[i] + acc, s.out_bits);
      }
    }
    return y;
  }
#pragma omp parallel
  {
    std::vector<u64> e(dom);
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      dpf_eval_all(p.id, k, i, e);
      const u64 xh = mod_w(x_hat[i], s.in_bits);
      u64 acc = 0;
      // sum_j T[(x^ - j) mod 2^n] e[j], split so the table index runs without a mask.
      for (u64 j = 0; j <= xh; ++j) acc += s.table[xh - j] * e[j];
      for (u64 j = xh + 1; j < dom; ++j) acc += s.table[(xh - j) & dm] * e[j];
      y[i] = mod_w(y[i] + acc, s.out_bits);
    }
  }
  return y;
}

size_t lut_key_bytes(int in_bits, int out_bits, size_t n, int party, int leaf_bits) {
  return 8 + (party ? packed_bytes(n, out_bits) : 0) + dpf_key_bytes({in_bits, out_bits, false, leaf_bits}, n, party);
}

LutSupport lut_support(std::span<const u64> table) {
  const size_t dom = table.size();
  size_t best = 0, best_end = 0, run = 0;
  for (size_t q = 0; q < 2 * dom; ++q) {  // twice around: runs that wrap
    run = table[q % dom] == 0 ? std::min(run + 1, dom) : 0;
    if (run > best) best = run, best_end = q + 1;
  }
  if (best == dom) return {0, 0};
  return {best_end % dom, dom - best};
}

double lut_aes_per_element(const LutSpec& s) {
  const DpfParams p{s.in_bits, s.out_bits, false, s.leaf_bits};
  const size_t len = lut_support(s.table).len;
  return len < (size_t(1) << s.in_bits) ? (len ? dpf_eval_range_aes(p, len) : 0.0) : dpf_eval_all_aes(p);
}

double lut_key_bytes_per_element(const LutSpec& s, int party) {
  const size_t n = 1 << 12;
  double b = 16 + double(dpf_key_bytes({s.in_bits, s.out_bits, false, s.leaf_bits}, n, party)) +
             (party ? double(packed_bytes(n, s.out_bits)) : 0);
  return b / double(n);
}

void LutSelSpec::check() const {
  AERO_CHECK(in_bits >= 1 && in_bits <= 20, "selected lookup input width ", in_bits, " is outside 1..20");
  check_width(out_bits, "selected lookup output");
  AERO_CHECK(terms >= 1 && tables.size() == terms, "selected lookup: ", tables.size(), " tables for ", terms,
             " terms");
  for (const auto& t : tables)
    AERO_CHECK(t.size() == (size_t(1) << in_bits), "selected lookup table has ", t.size(), " entries, expected 2^",
               in_bits);
}

std::vector<u64> lut_sel_deal(Dealer& d, const LutSelSpec& s, std::span<const u64> r_x, std::span<const u64> r_s) {
  s.check();
  AERO_CHECK(r_x.size() == r_s.size() && r_x.size() % s.terms == 0, "lut_sel_deal: ", r_x.size(), " indices, ",
             r_s.size(), " selectors, ", s.terms, " terms");
  const size_t nk = r_x.size(), n = nk / s.terms;
  d.begin("lut_sel", n);
  std::vector<u64> r_out = d.random(n, s.out_bits), alpha(nk), one(nk, 1), beta(nk);
  for (size_t i = 0; i < nk; ++i) alpha[i] = mod_w(r_x[i], s.in_bits), beta[i] = r_s[i] & 1;
  d.share(r_out, s.out_bits);
  dpf_deal(d, {s.in_bits, s.out_bits, true}, alpha, one, beta);
  return r_out;
}

std::vector<u64> lut_sel_shares(Party& p, const LutSelSpec& s, std::span<const u64> x_hat,
                                std::span<const u64> s_hat) {
  s.check();
  AERO_CHECK(x_hat.size() == s_hat.size() && x_hat.size() % s.terms == 0, "lut_sel: ", x_hat.size(), " indices, ",
             s_hat.size(), " selectors, ", s.terms, " terms");
  const size_t nk = x_hat.size(), n = nk / s.terms;
  p.keys.begin("lut_sel", n);
  std::vector<u64> y(n);
  p.keys.share(y, s.out_bits);
  DpfKeys k1 = dpf_read(p.keys, {s.in_bits, s.out_bits, true}, nk);
  const size_t dom = size_t(1) << s.in_bits;
  const u64 dm = dom - 1;
#pragma omp parallel
  {
    std::vector<u64> e(dom), er(dom);
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      u64 acc = 0;
      for (size_t t = 0; t < s.terms; ++t) {
        const size_t q = t * n + i;
        dpf_eval_all(p.id, k1, q, e, er);
        const u64 xh = mod_w(x_hat[q], s.in_bits), sb = s_hat[q] & 1, neg = 1 - 2 * sb;
        const auto& T = s.tables[t];
        // sum_j T[(x^ - j) mod 2^n] (s^ e_j + (1 - 2 s^) e'_j)
        for (u64 j = 0; j < dom; ++j) acc += T[(xh - j) & dm] * (sb * e[j] + neg * er[j]);
      }
      y[i] = mod_w(y[i] + acc, s.out_bits);
    }
  }
  return y;
}

std::vector<u64> lut_sel_eval(Party& p, const LutSelSpec& s, std::span<const u64> x_hat, std::span<const u64> s_hat) {
  OpScope scope(p.peer, "lut_sel");
  return open(p, lut_sel_shares(p, s, x_hat, s_hat), s.out_bits);
}

size_t lut_sel_key_bytes(int in_bits, int out_bits, size_t terms, size_t n, int party) {
  return 8 + (party ? packed_bytes(n, out_bits) : 0) + dpf_key_bytes({in_bits, out_bits, true}, terms * n, party);
}

void LutVecSpec::check(bool with_tables) const {
  AERO_CHECK(in_bits >= 1 && in_bits <= 20, "vector lookup: index width ", in_bits, " is outside 1..20");
  check_width(out_bits, "vector lookup output");
  check_width(vec_bits, "vector lookup input");
  AERO_CHECK(terms >= 1 && width >= 1, "vector lookup: ", terms, " terms of width ", width);
  AERO_CHECK(shift.empty() || shift.size() == terms, "vector lookup: ", shift.size(), " shifts for ", terms, " terms");
  for (size_t k = 0; k < terms; ++k) {
    AERO_CHECK(term_shift(k) >= 0 && term_ring(k) >= 3, "vector lookup: shift ", term_shift(k), " of a ", vec_bits,
               "-bit vector");
    AERO_CHECK(term_lift(k) <= 16, "vector lookup: sign extension from ", term_ring(k), " to ", out_bits,
               " bits (at most 16 bits in the payload)");
  }
  AERO_CHECK(open_shift >= 0 && open_shift < out_bits, "vector lookup: open shift ", open_shift, " of ", out_bits,
             " bits");
  if (!with_tables) return;
  AERO_CHECK(tables.size() == terms, "vector lookup: ", tables.size(), " tables for ", terms, " terms");
  for (const auto& t : tables)
    AERO_CHECK(t.size() == (size_t(1) << in_bits), "vector lookup table has ", t.size(), " entries, expected 2^",
               in_bits);
}

DpfVecParams LutVecSpec::dpf(size_t k) const {
  const int l = term_lift(k);
  return {in_bits + 1, out_bits, width + 1, l ? width : 0, l ? l : 16};
}

std::vector<u64> lut_vec_deal(Dealer& d, const LutVecSpec& s, std::span<const u64> r_x, std::span<const u64> r_s,
                              std::span<const u64> r_z) {
  s.check(false);
  const size_t K = s.terms, m = s.width, n = r_z.size() / m;
  AERO_CHECK(r_z.size() == n * m && r_x.size() == K * n && r_s.size() == K * n, "lut_vec_deal: ", r_z.size(),
             " vector masks, ", r_x.size(), " indices and ", r_s.size(), " selectors for ", K, " terms of width ", m);
  d.begin("lut_vec", n);
  std::vector<u64> r_out = d.random(n * m, s.out_bits);
  d.share(r_out, s.out_bits);
  for (size_t k = 0; k < K; ++k) {
    const DpfVecParams P = s.dpf(k);
    const int sh = s.term_shift(k), ring = s.term_ring(k);
    std::vector<u64> alpha(n), beta(n * P.wide), beta_n(n * P.narrow);
    for (size_t i = 0; i < n; ++i) {
      alpha[i] = ((r_s[k * n + i] & 1) << s.in_bits) | mod_w(r_x[k * n + i], s.in_bits);
      beta[i * P.wide] = 1;
      for (size_t c = 0; c < m; ++c) {
        const u64 R = mod_w(r_z[i * m + c], s.vec_bits) >> sh;  // R' = R_z >> shift, on `ring` bits
        beta[i * P.wide + 1 + c] = mod_w(R, s.out_bits);
        if (P.narrow) beta_n[i * m + c] = (R >> (ring - 1)) & 1;  // t = msb(R')
      }
    }
    dpf_vec_deal(d, P, alpha, beta, beta_n);
  }
  if (s.open_shift)
    for (auto& e : r_out) e >>= s.open_shift;
  return r_out;
}

std::vector<u64> lut_vec_shares(Party& p, const LutVecSpec& s, std::span<const u64> x_hat,
                                std::span<const u64> s_hat, std::span<const u64> z_hat) {
  s.check();
  const size_t K = s.terms, m = s.width, n = z_hat.size() / m;
  AERO_CHECK(z_hat.size() == n * m && x_hat.size() == K * n && s_hat.size() == K * n, "lut_vec: ", z_hat.size(),
             " vector entries, ", x_hat.size(), " indices and ", s_hat.size(), " selectors for ", K,
             " terms of width ", m);
  p.keys.begin("lut_vec", n);
  std::vector<u64> y(n * m);
  p.keys.share(y, s.out_bits);
  std::vector<DpfVecKeys> keys;
  for (size_t k = 0; k < K; ++k) keys.push_back(dpf_vec_read(p.keys, s.dpf(k), n));
  const size_t dom = size_t(1) << s.in_bits;
  const u64 dm = dom - 1, om = ring_mask(s.out_bits);
  const u64 half = s.open_shift && p.id == 0 ? u64(1) << (s.open_shift - 1) : 0;
#pragma omp parallel
  {
    std::vector<u64> w(dom), acc(m), ow(m + 1), on(m);
#pragma omp for schedule(dynamic)
    for (size_t i = 0; i < n; ++i) {
      std::fill(acc.begin(), acc.end(), 0);
      for (size_t k = 0; k < K; ++k) {
        const size_t q = k * n + i;
        const u64 xh = mod_w(x_hat[q], s.in_bits);
        const auto& T = s.tables[k];
        // Weights of the evaluated half: T'[(s^ xor 1, x^ - j)] = T[x^ - j].
        for (u64 j = 0; j < dom; ++j) w[j] = T[(xh - j) & dm];
        const DpfVecParams& P = keys[k].p;
        dpf_vec_inner(p.id, keys[k], i, int(1 - (s_hat[q] & 1)), w, {ow.data(), P.wide}, {on.data(), P.narrow});
        const int sh = s.term_shift(k), ring = s.term_ring(k);
        for (size_t c = 0; c < m; ++c) {
          const u64 zh = mod_w(z_hat[i * m + c], s.vec_bits) >> sh;
          if (P.narrow) {  // bounded sign extension: z' = Y^ - 2^(ring-2) - R' + 2^ring t (1 - msb(Y^))
            const u64 Y = mod_w(zh + (u64(1) << (ring - 2)), ring);
            const u64 A = Y - (u64(1) << (ring - 2));
            acc[c] += A * ow[0] - ow[1 + c] + ((Y >> (ring - 1)) ? 0 : on[c] << ring);
          } else {
            acc[c] += zh * ow[0] - ow[1 + c];
          }
        }
      }
      for (size_t c = 0; c < m; ++c) {
        const u64 v = (y[i * m + c] + acc[c] + half) & om;
        y[i * m + c] = v >> s.open_shift;
      }
    }
  }
  return y;
}

std::vector<u64> lut_vec_eval(Party& p, const LutVecSpec& s, std::span<const u64> x_hat, std::span<const u64> s_hat,
                              std::span<const u64> z_hat) {
  OpScope scope(p.peer, "lut_vec");
  return open(p, lut_vec_shares(p, s, x_hat, s_hat, z_hat), s.open_bits());
}

size_t lut_vec_key_bytes(const LutVecSpec& s, size_t n, int party) {
  size_t b = 8 + (party ? packed_bytes(n * s.width, s.out_bits) : 0);
  for (size_t k = 0; k < s.terms; ++k) b += dpf_vec_key_bytes(s.dpf(k), n, party);
  return b;
}

LutVecWork lut_vec_work(const LutVecSpec& s, size_t n) {
  LutVecWork w;
  const double leaves = double(size_t(1) << s.in_bits);
  for (size_t k = 0; k < s.terms; ++k) {
    const DpfVecParams P = s.dpf(k);
    const double live =
        k < s.tables.size() ? leaves - double(std::count(s.tables[k].begin(), s.tables[k].end(), u64(0))) : leaves;
    w.aes_blocks += double(n) * (2.0 * leaves + live * double(P.blocks()));
    w.macs += double(n) * live * (double(P.wide) + double(P.narrow) / 4);
  }
  return w;
}

}  // namespace aero::mpc
