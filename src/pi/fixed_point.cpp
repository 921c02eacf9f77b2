// Fixed-point gates shared by the simulation and the secure executor (see fixed_point.h).
#include "pi/fixed_point.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace aero::pi {

const char* to_string(SoftmaxVariant v) { return v == SoftmaxVariant::exact_max ? "exact_max" : "clipped"; }
SoftmaxVariant softmax_variant_from_string(const std::string& s) {
  if (s == "exact_max" || s == "max") return SoftmaxVariant::exact_max;
  if (s == "clipped" || s == "max_free") return SoftmaxVariant::clipped;
  fail("softmax variant '", s, "': expected exact_max or clipped");
}

const char* to_string(LutProducts v) {
  return v == LutProducts::on ? "on" : v == LutProducts::off ? "off" : "auto";
}

FxSpec engine_spec(const std::string& softmax, const std::string& trunc, int qk_bits, const std::string& lut_products,
                   int exp_rounds) {
  FxSpec s;
  s.softmax = softmax_variant_from_string(softmax);
  AERO_CHECK(trunc == "faithful" || trunc == "stochastic", "--trunc '", trunc, "': expected faithful or stochastic");
  s.stochastic_trunc = trunc == "stochastic";
  AERO_CHECK(qk_bits >= 48 && qk_bits <= 64, "--qk-bits ", qk_bits, ": expected 48..64");
  s.qk_bits = qk_bits;
  AERO_CHECK(lut_products == "on" || lut_products == "off" || lut_products == "auto", "--lut-products '", lut_products,
             "': expected on, off or auto");
  s.lut_products = lut_products == "on" ? LutProducts::on : lut_products == "off" ? LutProducts::off : LutProducts::auto_;
  AERO_CHECK(exp_rounds >= 0 && exp_rounds <= 2, "--exp-rounds ", exp_rounds, ": expected 1, 2 or 0 (auto)");
  s.exp_rounds = exp_rounds;
  AERO_CHECK(exp_rounds != 1 || s.exp_one_round_valid(), "--exp-rounds 1 needs --trunc stochastic and an exp index of <= ",
             FxSpec::kOneRoundExpMaxBits, " bits (--qk-bits <= ", FxSpec::kOneRoundExpMaxBits + qk_bits - s.exp_index_bits(), "); qk_bits ", qk_bits,
             " gives ", s.exp_index_bits());
  return s;
}

int64_t encode(double x, int s) { return int64_t(std::llround(x * std::ldexp(1.0, s))); }

static double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

GeluLut::GeluLut(const FxSpec& s) {
  // Signed index i in [-2^(bits-1), 2^(bits-1)), stored at i + 2^(bits-1); midpoint of the
  // bucket [i, i+1) * 2^-frac; the two end buckets (|x| >= 4) get delta = 0.
  int n = 1 << s.gelu_lut_bits, half = n / 2;
  table.resize(n);
  for (int k = 0; k < n; ++k) {
    int i = k - half;
    double x = (i + 0.5) * std::ldexp(1.0, -s.gelu_lut_frac);
    table[k] = (k == 0 || k == n - 1) ? 0 : encode(std::max(x, 0.0) - gelu_tanh(x), s.f);
  }
}

int64_t GeluLut::eval(int64_t x, const FxSpec& s) const {
  const int64_t half = int64_t(table.size()) / 2;
  int64_t idx = x >> (s.f - s.gelu_lut_frac);
  idx = std::clamp(idx, -half, half - 1);
  return (x > 0 ? x : 0) - table[idx + half];
}

ExpLut::ExpLut(const FxSpec& s) {
  int n = 1 << s.exp_bits();
  table.resize(n);
  for (int i = 0; i < n; ++i) {
    double d = (i + 0.5) * std::ldexp(1.0, -s.exp_lut_frac);
    table[i] = i == n - 1 ? 0 : encode(std::exp(-d), s.exp_frac());
  }
  // d in the first bucket is in [0, 2^-6): exp(0) must stay exactly 1 so that the row's
  // maximum contributes 1 (the sum is then >= 1 and 1/sum is in range).
  if (s.softmax == SoftmaxVariant::exact_max) table[0] = encode(1.0, s.exp_frac());
  if (!s.exp_one_round()) return;
  const int nb = s.exp_index_bits();
  AERO_CHECK(nb >= 2 && nb <= FxSpec::kOneRoundExpMaxBits, "one-round exp: index of ", nb, " bits");
  one_round.assign(size_t(1) << (nb - 1), 0);
  for (size_t i = 0; i < one_round.size(); ++i) {
    one_round[i] = encode(std::exp(-std::ldexp(double(i), -s.exp_lut_frac)), s.exp_frac());
    if (one_round[i] == 0) break;  // exp underflows the output scale: 0 from here on
  }
  one_round.resize(size_t(1) << nb, 0);
}

InvPowLut::InvPowLut(double p_, int in_frac_, int out_frac_, int mantissa_)
    : p(p_), in_frac(in_frac_), out_frac(out_frac_), mantissa(mantissa_) {
  int m = 1 << mantissa;
  table_.assign(size_t(64) * m, 0);
  for (int e = 0; e < 63; ++e)
    for (int j = 0; j < m; ++j) table_[size_t(e) * m + j] = entry(p, in_frac, out_frac, mantissa, e, j);
}

int64_t InvPowLut::entry(double p, int in_frac, int out_frac, int mantissa, int e, int j) {
  double v;
  if (e < mantissa) {
    // The input is exact below 2^mantissa: index = the value itself.
    int64_t val = (int64_t(1) << e) + (int64_t(j) >> (mantissa - e));
    if (j & ((1 << (mantissa - e)) - 1)) return 0;  // unreachable entries
    v = double(val);
  } else {
    v = (double((1 << mantissa) + j) + 0.5) * std::ldexp(1.0, e - mantissa);
  }
  double real = v * std::ldexp(1.0, -in_frac);
  double out = std::pow(real, p) * std::ldexp(1.0, out_frac);
  return out > 9.2e18 ? INT64_MAX : int64_t(std::llround(out));
}

std::pair<int, int64_t> InvPowLut::index(int64_t v, int mantissa) {
  if (v <= 0) v = 1;
  int e = 63 - __builtin_clzll(uint64_t(v));
  int m = 1 << mantissa;
  int64_t j = e >= mantissa ? (v >> (e - mantissa)) - m : (v - (int64_t(1) << e)) << (mantissa - e);
  return {e, j};
}

int64_t InvPowLut::eval(int64_t v) const {
  auto [e, j] = index(v, mantissa);
  return table_[size_t(e) * (size_t(1) << mantissa) + size_t(j)];
}

InvFold::InvFold(const FxSpec& s) : shift(64), table(64) {
  const int m = 1 << s.inv_mantissa;
  for (int e = 0; e < 64; ++e) {
    shift[e] = std::clamp(e - 8, 0, 16);
    table[e].assign(size_t(m), 0);
    if (e == 63) {  // no positive 64-bit sum has MSB 63: the slot holds the v <= 0 case (v = 1) at
      shift[e] = 0;   // its public index 0 (as SecureExec's split())
      table[e][0] = table[0][0];
      continue;
    }
    for (int j = 0; j < m; ++j)
      table[e][j] = InvPowLut::entry(-1.0, s.exp_frac(), kGuard - s.exp_frac() + shift[e], s.inv_mantissa, e, j);
  }
}

}  // namespace aero::pi
