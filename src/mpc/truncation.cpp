#include "mpc/truncation.h"

#include "mpc/dcf.h"

namespace aero::mpc {

std::vector<u64> trunc_free_mask(std::span<const u64> r, int in_bits, int shift) {
  AERO_CHECK(shift >= 0 && shift < in_bits, "truncation by ", shift, " bits of a ", in_bits,
             "-bit value");
  std::vector<u64> out(r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = mod_w(r[i], in_bits) >> shift;
  return out;
}

std::vector<u64> trunc_free_eval(std::span<const u64> x_hat, int in_bits, int shift) {
  return trunc_free_mask(x_hat, in_bits, shift);  // the same map on the masked value
}

void TruncSpec::check() const {
  check_width(in_bits, "truncation input");
  check_width(out_bits, "truncation output");
  AERO_CHECK(shift >= 0 && shift < in_bits, "truncation by ", shift, " bits of a ", in_bits,
             "-bit value");
  AERO_CHECK(!bounded || (in_bits >= 2 && shift <= in_bits - 2), "bounded truncation by ", shift, " of a ",
             in_bits, "-bit value");
}

namespace {
bool need_low(const TruncSpec& s) { return s.faithful && s.shift > 0; }
bool need_high(const TruncSpec& s) { return s.out_bits > s.in_bits - s.shift; }
}  // namespace

std::vector<u64> trunc_deal(Dealer& d, const TruncSpec& s, std::span<const u64> r_in) {
  s.check();
  if (s.is_free()) return trunc_free_mask(r_in, s.in_bits, s.shift);
  const size_t n = r_in.size();
  d.begin("trunc", n);
  std::vector<u64> r_out = d.random(n, s.out_bits), c(n), alpha(n), beta(n);
  for (size_t i = 0; i < n; ++i)
    c[i] = mod_w(r_out[i] - (mod_w(r_in[i], s.in_bits) >> s.shift), s.out_bits);
  d.share(c, s.out_bits);
  if (need_low(s)) {
    for (size_t i = 0; i < n; ++i) {
      alpha[i] = mod_w(r_in[i], s.shift);
      beta[i] = 1;
    }
    dcf_deal(d, {s.shift, s.out_bits, 1}, alpha, beta);
  }
  if (need_high(s) && s.bounded) {  // rho = msb(r) 2^(n-s), see truncation.h
    const u64 b = mod_w(u64(1) << (s.in_bits - s.shift), s.out_bits);
    for (size_t i = 0; i < n; ++i) beta[i] = ((mod_w(r_in[i], s.in_bits) >> (s.in_bits - 1)) & 1) ? b : 0;
    d.share(beta, s.out_bits);
  } else if (need_high(s)) {
    // out_bits <= 64 and out_bits > in_bits - shift, so the shift is below 64.
    const u64 b = mod_w(u64(1) << (s.in_bits - s.shift), s.out_bits);
    for (size_t i = 0; i < n; ++i) {
      alpha[i] = mod_w(r_in[i], s.in_bits);
      beta[i] = b;
    }
    dcf_deal(d, {s.in_bits, s.out_bits, 1}, alpha, beta);
  }
  return r_out;
}

std::vector<u64> trunc_eval(Party& p, const TruncSpec& s, std::span<const u64> x_hat) {
  s.check();
  if (s.is_free()) return trunc_free_eval(x_hat, s.in_bits, s.shift);
  OpScope scope(p.peer, "trunc");
  return open(p, trunc_shares(p, s, x_hat), s.out_bits);
}

std::vector<u64> trunc_shares(Party& p, const TruncSpec& s, std::span<const u64> x_hat) {
  s.check();
  AERO_CHECK(!s.is_free(), "trunc_shares: a free truncation has no opening");
  const size_t n = x_hat.size();
  p.keys.begin("trunc", n);
  std::vector<u64> y(n), yh(n), tmp(n);
  p.keys.share(y, s.out_bits);
  const u64 half = u64(1) << (s.in_bits - (s.bounded ? 2 : 1));
  for (size_t i = 0; i < n; ++i) yh[i] = mod_w(x_hat[i] + half, s.in_bits);
  if (need_low(s)) {
    DcfKeys k = dcf_read(p.keys, {s.shift, s.out_bits, 1}, n);
    std::vector<u64> lo(n);
    for (size_t i = 0; i < n; ++i) lo[i] = mod_w(yh[i], s.shift);
    dcf_eval(p.id, k, lo, tmp);
    for (size_t i = 0; i < n; ++i) y[i] -= tmp[i];
  }
  if (need_high(s) && s.bounded) {
    p.keys.share(tmp, s.out_bits);
    for (size_t i = 0; i < n; ++i)
      if (((yh[i] >> (s.in_bits - 1)) & 1) == 0) y[i] += tmp[i];
  } else if (need_high(s)) {
    DcfKeys k = dcf_read(p.keys, {s.in_bits, s.out_bits, 1}, n);
    dcf_eval(p.id, k, yh, tmp);
    for (size_t i = 0; i < n; ++i) y[i] += tmp[i];
  }
  const u64 off = half >> s.shift;
  for (size_t i = 0; i < n; ++i) {
    if (p.id == kServer) y[i] += (yh[i] >> s.shift) - off;
    y[i] = mod_w(y[i], s.out_bits);
  }
  return y;
}

size_t trunc_key_bytes(const TruncSpec& s, size_t n, int party) {
  if (s.is_free()) return 0;
  size_t b = 8 + (party ? packed_bytes(n, s.out_bits) : 0);
  if (need_low(s)) b += dcf_key_bytes({s.shift, s.out_bits, 1}, n, party);
  if (need_high(s) && s.bounded) b += party ? packed_bytes(n, s.out_bits) : 0;
  else if (need_high(s)) b += dcf_key_bytes({s.in_bits, s.out_bits, 1}, n, party);
  return b;
}

double trunc_key_bytes_per_element(const TruncSpec& s, int party) {
  const size_t n = 1 << 16;
  return double(trunc_key_bytes(s, n, party)) / double(n);
}

}  // namespace aero::mpc
