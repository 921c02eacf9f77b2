#include "mpc/compare.h"

#include "mpc/dcf.h"

namespace aero::mpc {

void CompareSpec::check(bool relu) const {
  check_width(in_bits, "comparison input");
  check_width(out_bits, "comparison output");
  if (relu)
    AERO_CHECK(out_bits <= in_bits, "ReLU output width ", out_bits, " exceeds its input width ",
               in_bits, " (widen afterwards with a truncation gate of shift 0)");
}

namespace {
u64 msb(u64 x, int n) { return (x >> (n - 1)) & 1; }

// Shared by DReLU and ReLU: DCF on the low n-1 bits with the given payload columns.
void deal_dcf(Dealer& d, const CompareSpec& s, std::span<const u64> r_in, int payload,
              const std::vector<u64>& beta) {
  if (s.in_bits == 1) return;  // no low bits: the borrow is always 0
  std::vector<u64> alpha(r_in.size());
  for (size_t i = 0; i < alpha.size(); ++i) alpha[i] = mod_w(r_in[i], s.in_bits - 1);
  dcf_deal(d, {s.in_bits - 1, s.out_bits, payload}, alpha, beta);
}

std::vector<u64> eval_dcf(Party& p, const CompareSpec& s, const std::vector<u64>& yh,
                          int payload) {
  std::vector<u64> out(yh.size() * payload, 0);
  if (s.in_bits == 1) return out;
  DcfKeys k = dcf_read(p.keys, {s.in_bits - 1, s.out_bits, payload}, yh.size());
  std::vector<u64> lo(yh.size());
  for (size_t i = 0; i < lo.size(); ++i) lo[i] = mod_w(yh[i], s.in_bits - 1);
  dcf_eval(p.id, k, lo, out);
  return out;
}

std::vector<u64> offset_input(const CompareSpec& s, std::span<const u64> x_hat) {
  std::vector<u64> yh(x_hat.size());
  const u64 half = u64(1) << (s.in_bits - 1);
  for (size_t i = 0; i < yh.size(); ++i) yh[i] = mod_w(x_hat[i] + half, s.in_bits);
  return yh;
}
}  // namespace

std::vector<u64> drelu_deal(Dealer& d, const CompareSpec& s, std::span<const u64> r_in) {
  s.check(false);
  const size_t n = r_in.size();
  d.begin("drelu", n);
  std::vector<u64> r_out = d.random(n, s.out_bits), t(n), beta(n);
  for (size_t i = 0; i < n; ++i) {
    t[i] = msb(r_in[i], s.in_bits);
    beta[i] = mod_w(1 - 2 * t[i], s.out_bits);
  }
  d.share(t, s.out_bits);
  d.share(r_out, s.out_bits);
  deal_dcf(d, s, r_in, 1, beta);
  return r_out;
}

std::vector<u64> drelu_eval(Party& p, const CompareSpec& s, std::span<const u64> x_hat) {
  OpScope scope(p.peer, "drelu");
  return open(p, drelu_shares(p, s, x_hat), s.out_bits);
}

std::vector<u64> drelu_shares(Party& p, const CompareSpec& s, std::span<const u64> x_hat) {
  s.check(false);
  const size_t n = x_hat.size();
  p.keys.begin("drelu", n);
  std::vector<u64> u(n), ro(n);
  p.keys.share(u, s.out_bits);
  p.keys.share(ro, s.out_bits);
  const std::vector<u64> yh = offset_input(s, x_hat);
  const std::vector<u64> c = eval_dcf(p, s, yh, 1);
  for (size_t i = 0; i < n; ++i) {
    const u64 pb = msb(yh[i], s.in_bits);
    u64 v = (1 - 2 * pb) * (u[i] + c[i]) + ro[i];
    if (p.id == kServer) v += pb;
    u[i] = mod_w(v, s.out_bits);
  }
  return u;
}

std::vector<u64> relu_deal(Dealer& d, const CompareSpec& s, std::span<const u64> r_in) {
  s.check(true);
  const size_t n = r_in.size();
  d.begin("relu", n);
  std::vector<u64> r_out = d.random(n, s.out_bits), t(n), r(n), rt(n), beta(2 * n);
  for (size_t i = 0; i < n; ++i) {
    t[i] = msb(r_in[i], s.in_bits);
    r[i] = mod_w(r_in[i], s.out_bits);
    rt[i] = r[i] * t[i];
    beta[2 * i] = mod_w(1 - 2 * t[i], s.out_bits);
    beta[2 * i + 1] = mod_w(r[i] * (1 - 2 * t[i]), s.out_bits);
  }
  d.share(t, s.out_bits);
  d.share(r, s.out_bits);
  d.share(rt, s.out_bits);
  d.share(r_out, s.out_bits);
  deal_dcf(d, s, r_in, 2, beta);
  return r_out;
}

std::vector<u64> relu_eval(Party& p, const CompareSpec& s, std::span<const u64> x_hat) {
  OpScope scope(p.peer, "relu");
  return open(p, relu_shares(p, s, x_hat), s.out_bits);
}

namespace {
// The party side of ReLU; `keep` (optional) receives msb(r)'s shares and the DCF key so that
// relu_cmp can evaluate the same key at more points.
struct ReluKeep {
  std::vector<u64> t;
  DcfKeys k;
};
std::vector<u64> relu_shares_keep(Party& p, const CompareSpec& s, std::span<const u64> x_hat, ReluKeep* keep) {
  s.check(true);
  const size_t n = x_hat.size();
  p.keys.begin("relu", n);
  std::vector<u64> t(n), r(n), rt(n), ro(n), c(2 * n, 0);
  p.keys.share(t, s.out_bits);
  p.keys.share(r, s.out_bits);
  p.keys.share(rt, s.out_bits);
  p.keys.share(ro, s.out_bits);
  const std::vector<u64> yh = offset_input(s, x_hat);
  DcfKeys k;
  if (s.in_bits > 1) {
    k = dcf_read(p.keys, {s.in_bits - 1, s.out_bits, 2}, n);
    std::vector<u64> lo(n);
    for (size_t i = 0; i < n; ++i) lo[i] = mod_w(yh[i], s.in_bits - 1);
    dcf_eval(p.id, k, lo, c);
  }
  for (size_t i = 0; i < n; ++i) {
    const u64 pb = msb(yh[i], s.in_bits), q = 1 - 2 * pb, xh = x_hat[i];
    const u64 u = t[i] + c[2 * i], ru = rt[i] + c[2 * i + 1];
    u64 v = xh * q * u - pb * r[i] - q * ru + ro[i];
    if (p.id == kServer) v += xh * pb;
    ro[i] = mod_w(v, s.out_bits);
  }
  if (keep) keep->t = std::move(t), keep->k = std::move(k);
  return ro;
}
}  // namespace

std::vector<u64> relu_shares(Party& p, const CompareSpec& s, std::span<const u64> x_hat) {
  return relu_shares_keep(p, s, x_hat, nullptr);
}

void ReluCmpSpec::check() const {
  CompareSpec{in_bits, relu_bits}.check(true);
  AERO_CHECK(cmp_bits >= 1 && cmp_bits <= relu_bits, "relu_cmp: comparison width ", cmp_bits,
             " outside 1..", relu_bits);
  AERO_CHECK(in_bits > 1, "relu_cmp: input of at least 2 bits");
}

std::vector<u64> relu_cmp_deal(Dealer& d, const ReluCmpSpec& s, std::span<const u64> r_in) {
  s.check();
  const size_t n = r_in.size(), K = s.offsets.size();
  auto r_relu = relu_deal(d, {s.in_bits, s.relu_bits}, r_in);
  d.begin("relu_cmp", n * K);
  std::vector<u64> r_cmp = d.random(n * K, s.cmp_bits);
  d.share(r_cmp, s.cmp_bits);
  r_relu.insert(r_relu.end(), r_cmp.begin(), r_cmp.end());
  return r_relu;
}

std::pair<std::vector<u64>, std::vector<u64>> relu_cmp_shares(Party& p, const ReluCmpSpec& s,
                                                              std::span<const u64> x_hat) {
  s.check();
  const size_t n = x_hat.size(), K = s.offsets.size();
  const CompareSpec cs{s.in_bits, s.relu_bits};
  ReluKeep kp;
  std::vector<u64> relu = relu_shares_keep(p, cs, x_hat, &kp);
  const std::vector<u64>& t = kp.t;
  p.keys.begin("relu_cmp", n * K);
  std::vector<u64> cmp(n * K);
  p.keys.share(cmp, s.cmp_bits);
  for (size_t j = 0; j < K; ++j) {
    std::vector<u64> xs(n);
    for (size_t i = 0; i < n; ++i) xs[i] = x_hat[i] - s.offsets[j];
    const std::vector<u64> yj = offset_input(cs, xs);
    std::vector<u64> lo(n), cj(2 * n);
    for (size_t i = 0; i < n; ++i) lo[i] = mod_w(yj[i], s.in_bits - 1);
    dcf_eval(p.id, kp.k, lo, cj);
    for (size_t i = 0; i < n; ++i) {  // as drelu_shares, with the ReLU key's payload column 0
      const u64 pb = msb(yj[i], s.in_bits);
      u64 v = (1 - 2 * pb) * (t[i] + cj[2 * i]) + cmp[j * n + i];
      if (p.id == kServer) v += pb;
      cmp[j * n + i] = mod_w(v, s.cmp_bits);
    }
  }
  return {relu, cmp};
}

void ReluTruncSpec::check() const {
  check_width(in_bits, "relu_trunc input");
  check_width(out_bits, "relu_trunc output");
  AERO_CHECK(out_bits <= 42, "relu_trunc: output width ", out_bits, " above 42 (3-element DCF payload)");
  AERO_CHECK(in_bits >= 3 && shift >= 0 && shift <= in_bits - 2, "relu_trunc: shift ", shift, " of a ", in_bits,
             "-bit value");
  AERO_CHECK(!leaky || (slope_frac >= 0 && slope_frac <= in_bits - shift && slope_frac < 62 &&
                            slope > -(int64_t(1) << 20) && slope < (int64_t(1) << 20)),
             "relu_trunc: slope ", slope, " at scale 2^", slope_frac, " on ", in_bits - shift, " bits");
}

namespace {
// floor(a / 2^s) for a signed 128-bit a.
__int128 floor_shift(__int128 a, int s) { return a >> s; }
u64 pow2(int e) { return e >= 64 ? 0 : u64(1) << e; }  // 2^e mod 2^64
// K = 2^(n-s) - slope 2^(n-s-sf) (see compare.h), mod 2^64.
u64 relu_trunc_k(const ReluTruncSpec& s) {
  const int e = s.in_bits - s.shift;
  return s.leaky ? pow2(e) - u64(s.slope) * pow2(e - s.slope_frac) : pow2(e);
}
}  // namespace

namespace {
// Dealer side of relu_trunc's payload (compare.h): msb(r) t, D0, t D0, -floor(slope R / 2^sf)
// and the DCF's three payload columns, at s.out_bits.
struct ReluTruncDeal {
  std::vector<u64> t, d0, td0, dn0, beta;
};
ReluTruncDeal relu_trunc_payload(const ReluTruncSpec& s, std::span<const u64> r_in) {
  const size_t n = r_in.size();
  const int ob = s.out_bits;
  ReluTruncDeal o{std::vector<u64>(n), std::vector<u64>(n), std::vector<u64>(n), std::vector<u64>(n),
                  std::vector<u64>(3 * n)};
  const u64 K = relu_trunc_k(s);
  for (size_t i = 0; i < n; ++i) {
    o.t[i] = msb(r_in[i], s.in_bits);
    const u64 R = mod_w(r_in[i], s.in_bits) >> s.shift;
    const u64 fl = s.leaky ? u64(floor_shift(__int128(s.slope) * __int128(R), s.slope_frac)) : 0;
    o.d0[i] = mod_w(fl - R, ob);
    o.td0[i] = o.t[i] * o.d0[i];
    o.dn0[i] = mod_w(u64(0) - fl, ob);
    o.beta[3 * i] = mod_w(1 - 2 * o.t[i], ob);
    o.beta[3 * i + 1] = mod_w((1 - 2 * o.t[i]) * o.d0[i], ob);
    o.beta[3 * i + 2] = mod_w(u64(0) - o.t[i] * K, ob);
  }
  return o;
}

// Party side of relu_trunc: this party's share of y (plus its share ro of the output mask,
// zeros when unmasked) from the key shares and the DCF's outputs c (3 per element) at x^.
std::vector<u64> relu_trunc_combine(int id, const ReluTruncSpec& s, std::span<const u64> x_hat,
                                    const std::vector<u64>& yh, const std::vector<u64>& c, const std::vector<u64>& t,
                                    const std::vector<u64>& d0, const std::vector<u64>& td0,
                                    const std::vector<u64>& dn0, std::vector<u64> ro) {
  const size_t n = x_hat.size();
  const int nb = s.in_bits, ob = s.out_bits;
  const u64 quarter = u64(1) << (nb - 2);
  const u64 K = relu_trunc_k(s);
  const u64 kn = s.leaky ? u64(s.slope) * pow2(nb - s.shift - s.slope_frac) : 0;  // N's wrap coefficient
  const bool srv = id == kServer;
  for (size_t i = 0; i < n; ++i) {
    const u64 pb = msb(yh[i], nb), q = 1 - 2 * pb;
    const u64 zh = mod_w(x_hat[i] + quarter, nb), nm = 1 - msb(zh, nb);  // 1 - m
    const int64_t A = int64_t(zh >> s.shift) - int64_t(quarter >> s.shift);
    const u64 FA = s.leaky ? u64(floor_shift(__int128(s.slope) * A, s.slope_frac)) : 0;
    const u64 P = u64(A) - FA;
    const u64 u = t[i] + c[3 * i], d1 = K * t[i];
    const u64 bD0 = pb * d0[i] + q * (td0[i] + c[3 * i + 1]);
    const u64 bD1 = pb * d1 + q * (d1 + c[3 * i + 2]);
    u64 v = P * q * u + bD0 + nm * bD1 + dn0[i] + nm * kn * t[i] + ro[i];
    if (srv) v += P * pb + FA;
    ro[i] = mod_w(v, ob);
  }
  return ro;
}
}  // namespace

std::vector<u64> relu_trunc_deal(Dealer& d, const ReluTruncSpec& s, std::span<const u64> r_in) {
  s.check();
  const size_t n = r_in.size();
  const int ob = s.out_bits;
  d.begin("relu_trunc", n);
  std::vector<u64> r_out = d.random(n, ob);
  const ReluTruncDeal o = relu_trunc_payload(s, r_in);
  d.share(o.t, ob);
  d.share(o.d0, ob);
  d.share(o.td0, ob);
  if (s.leaky) d.share(o.dn0, ob);
  d.share(r_out, ob);
  deal_dcf(d, {s.in_bits, ob}, r_in, 3, o.beta);
  return r_out;
}

std::vector<u64> relu_trunc_eval(Party& p, const ReluTruncSpec& s, std::span<const u64> x_hat) {
  OpScope scope(p.peer, "relu_trunc");
  return open(p, relu_trunc_shares(p, s, x_hat), s.out_bits);
}

std::vector<u64> relu_trunc_shares(Party& p, const ReluTruncSpec& s, std::span<const u64> x_hat) {
  s.check();
  const size_t n = x_hat.size();
  const int nb = s.in_bits, ob = s.out_bits;
  p.keys.begin("relu_trunc", n);
  std::vector<u64> t(n), d0(n), td0(n), dn0(n, 0), ro(n);
  p.keys.share(t, ob);
  p.keys.share(d0, ob);
  p.keys.share(td0, ob);
  if (s.leaky) p.keys.share(dn0, ob);
  p.keys.share(ro, ob);
  const CompareSpec cs{nb, ob};
  const std::vector<u64> yh = offset_input(cs, x_hat), c = eval_dcf(p, cs, yh, 3);
  return relu_trunc_combine(p.id, s, x_hat, yh, c, t, d0, td0, dn0, std::move(ro));
}

size_t relu_trunc_key_bytes(const ReluTruncSpec& s, size_t n, int party) {
  return 8 + (party ? (s.leaky ? 5 : 4) * packed_bytes(n, s.out_bits) : 0) +
         dcf_key_bytes({s.in_bits - 1, s.out_bits, 3}, n, party);
}

void ReluSplitSpec::check() const {
  ReluTruncSpec{in_bits, 0, relu_bits}.check();
  AERO_CHECK(cmp_bits >= 1 && cmp_bits <= relu_bits, "relu_split: comparison width ", cmp_bits, " outside 1..",
             relu_bits);
}

std::vector<u64> relu_split_deal(Dealer& d, const ReluSplitSpec& s, std::span<const u64> r_in) {
  s.check();
  const size_t n = r_in.size(), K = s.offsets.size();
  const int ob = s.relu_bits;
  d.begin("relu_split", n);
  const ReluTruncDeal o = relu_trunc_payload({s.in_bits, 0, ob}, r_in);
  std::vector<u64> r_cmp = d.random(n * K, s.cmp_bits);
  d.share(o.t, ob);
  d.share(o.d0, ob);
  d.share(o.td0, ob);
  d.share(r_cmp, s.cmp_bits);
  deal_dcf(d, {s.in_bits, ob}, r_in, 3, o.beta);
  return r_cmp;
}

ReluSplitKey relu_split_read(Party& p, const ReluSplitSpec& s, size_t n) {
  s.check();
  const int ob = s.relu_bits;
  ReluSplitKey k{s, n, std::vector<u64>(n), std::vector<u64>(n), std::vector<u64>(n),
                 std::vector<u64>(n * s.offsets.size()), {}};
  p.keys.begin("relu_split", n);
  p.keys.share(k.t, ob);
  p.keys.share(k.d0, ob);
  p.keys.share(k.td0, ob);
  p.keys.share(k.cmp_mask, s.cmp_bits);
  k.k = dcf_read(p.keys, {s.in_bits - 1, ob, 3}, n);
  return k;
}

std::vector<u64> relu_split_cmp_shares(Party& p, const ReluSplitKey& k, std::span<const u64> x_hat) {
  const ReluSplitSpec& s = k.s;
  const size_t n = k.n, K = s.offsets.size();
  AERO_CHECK(x_hat.size() == n, "relu_split: ", x_hat.size(), " inputs for a key of ", n);
  const CompareSpec cs{s.in_bits, s.relu_bits};
  std::vector<u64> cmp = k.cmp_mask, lo(n), c(3 * n);
  for (size_t j = 0; j < K; ++j) {
    std::vector<u64> xs(n);
    for (size_t i = 0; i < n; ++i) xs[i] = x_hat[i] - s.offsets[j];
    const std::vector<u64> yj = offset_input(cs, xs);
    for (size_t i = 0; i < n; ++i) lo[i] = mod_w(yj[i], s.in_bits - 1);
    dcf_eval(p.id, k.k, lo, c);
    for (size_t i = 0; i < n; ++i) {  // as drelu_shares, with payload column 0 (1 - 2 msb(r))
      const u64 pb = msb(yj[i], s.in_bits);
      u64 v = (1 - 2 * pb) * (k.t[i] + c[3 * i]) + cmp[j * n + i];
      if (p.id == kServer) v += pb;
      cmp[j * n + i] = mod_w(v, s.cmp_bits);
    }
  }
  return cmp;
}

std::vector<u64> relu_split_relu_shares(Party& p, const ReluSplitKey& k, std::span<const u64> x_hat) {
  const ReluSplitSpec& s = k.s;
  const size_t n = k.n;
  AERO_CHECK(x_hat.size() == n, "relu_split: ", x_hat.size(), " inputs for a key of ", n);
  const CompareSpec cs{s.in_bits, s.relu_bits};
  const std::vector<u64> yh = offset_input(cs, x_hat);
  std::vector<u64> lo(n), c(3 * n);
  for (size_t i = 0; i < n; ++i) lo[i] = mod_w(yh[i], s.in_bits - 1);
  dcf_eval(p.id, k.k, lo, c);
  const std::vector<u64> zero(n, 0);
  return relu_trunc_combine(p.id, {s.in_bits, 0, s.relu_bits}, x_hat, yh, c, k.t, k.d0, k.td0, zero, zero);
}

size_t relu_split_key_bytes(const ReluSplitSpec& s, size_t n, int party) {
  return 8 + (party ? 3 * packed_bytes(n, s.relu_bits) + packed_bytes(n * s.offsets.size(), s.cmp_bits) : 0) +
         dcf_key_bytes({s.in_bits - 1, s.relu_bits, 3}, n, party);
}

size_t drelu_key_bytes(const CompareSpec& s, size_t n, int party) {
  size_t b = 8 + (party ? 2 * packed_bytes(n, s.out_bits) : 0);
  if (s.in_bits > 1) b += dcf_key_bytes({s.in_bits - 1, s.out_bits, 1}, n, party);
  return b;
}

size_t relu_key_bytes(const CompareSpec& s, size_t n, int party) {
  size_t b = 8 + (party ? 4 * packed_bytes(n, s.out_bits) : 0);
  if (s.in_bits > 1) b += dcf_key_bytes({s.in_bits - 1, s.out_bits, 2}, n, party);
  return b;
}

size_t relu_cmp_key_bytes(const ReluCmpSpec& s, size_t n, int party) {
  return relu_key_bytes({s.in_bits, s.relu_bits}, n, party) + 8 +
         (party ? packed_bytes(n * s.offsets.size(), s.cmp_bits) : 0);
}

double drelu_key_bytes_per_element(const CompareSpec& s, int party) {
  const size_t n = 1 << 16;
  return double(drelu_key_bytes(s, n, party)) / double(n);
}

double relu_key_bytes_per_element(const CompareSpec& s, int party) {
  const size_t n = 1 << 16;
  return double(relu_key_bytes(s, n, party)) / double(n);
}

}  // namespace aero::mpc
