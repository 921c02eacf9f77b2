// Float and fixed-point executors of the private-inference graph (graph.h).
//
// FixedExec is the specification of the secure arithmetic: every operator below is written as
// the integer function the 2PC gate computes (same scales, floor truncations, table indices,
// tables), so a secure run reproduces it exactly. Accuracy against FloatExec is stated in
// docs/private_inference.md and checked by tests/pi.
#pragma once
#include <map>
#include <memory>

#include "pi/fixed_point.h"
#include "pi/graph.h"

namespace aero::pi {

class FloatExec {
 public:
  using T = Mat<double>;
  T input(const std::vector<double>& x, int rows, int cols) const;
  T embed(const std::vector<int32_t>& ids, const PiModel& m);
  T layernorm(const T& x, const PiNorm& n, const char* tag);
  T linear(const T& x, const PiLinear& L, const char* tag);
  T activation(const T& x, model::Activation act, double slope);
  T rotary(const T& qkv, const PiModel& m);
  T attn_logits(const T& qkv, const PiBlock& b, int H);   // [H*T, T], causal (j <= i)
  T attn_softmax_v(const T& z, const T& qkv, const PiBlock& b, int H);  // [T, d]
  T add(const T& a, const T& b, const char* tag);
  T residual(const T& xh, const T& f, double beta, double inv_alpha);
  T last_row(const T& x);
  T lm_head(const T& x, const PiModel& m);                // [rows, V]
};

class FixedExec {
 public:
  using T = Mat<int64_t>;
  explicit FixedExec(const FxSpec& spec = {});
  const FxSpec& spec() const { return s_; }
  T input(const std::vector<double>& x, int rows, int cols) const;  // encode at scale f
  std::vector<double> output(const T& x) const;                    // decode
  T embed(const std::vector<int32_t>& ids, const PiModel& m);
  T layernorm(const T& x, const PiNorm& n, const char* tag);
  T linear(const T& x, const PiLinear& L, const char* tag);
  T activation(const T& x, model::Activation act, double slope);
  T rotary(const T& qkv, const PiModel& m);
  T attn_logits(const T& qkv, const PiBlock& b, int H);
  T attn_softmax_v(const T& z, const T& qkv, const PiBlock& b, int H);
  T add(const T& a, const T& b, const char* tag);
  T residual(const T& xh, const T& f, double beta, double inv_alpha);
  T last_row(const T& x);
  T lm_head(const T& x, const PiModel& m);
  // Largest |value| seen on any wire, in bits (two's complement width incl. sign): the
  // per-tensor widths the secure run needs; checked against the ring by tests.
  int max_bits() const { return max_bits_; }
  // Width of one named wire (0 if never seen), for the engine's narrower rings
  // (docs/private_inference.md, "width plan"): "<linear tag>.acc" the accumulator x W^T + b
  // of that linear (scale 2f), "attn.scores.acc" the scaled logits q.k round(c 2^c_frac)
  // (scale 2f + c_frac), "attn.logits" the logits z (scale f), "ln.D" LayerNorm's
  // d sum x^2 - (sum x)^2 + eps' (scale 2f; the engine needs it below 2^63).
  int max_bits(const std::string& what) const {
    auto it = bits_.find(what);
    return it == bits_.end() ? 0 : it->second;
  }

 private:
  struct EncLinear {
    std::vector<int64_t> w, b;  // w at scale f, b at scale 2f
  };
  const EncLinear& enc(const PiLinear& L);
  // Truncation by s of element `idx` of this operator call: floor, or floor + a stochastic
  // carry with the secure run's distribution (spec().stochastic_trunc).
  int64_t tr(__int128 v, int s, uint64_t idx, int site = 0) const;
  // The rounding of a stochastic product inside a lookup (mpc::lut_vec's local share
  // truncation by s): floor((v + 2^(s-1)) / 2^s) + c1 - c, c1 the carry of a uniform mask's low
  // bits, c that of a uniform share's (drawn by hash, as tr): unbiased, |error| < 1.5 ulp.
  int64_t lsr(__int128 v, int s, uint64_t idx, int site = 0) const;
  uint64_t call_ = 0;  // operator call counter (stochastic carries)
  const std::vector<int64_t>& enc_vec(const std::vector<double>& v, int scale);
  void track(const T& x);
  FxSpec s_;
  GeluLut gelu_;
  ExpLut exp_;
  InvPowLut inv_, rsqrt_;
  InvFold inv_fold_;
  std::map<const void*, EncLinear> lin_cache_;
  std::map<std::pair<const void*, int>, std::vector<int64_t>> vec_cache_;
  int max_bits_ = 0;
  std::map<std::string, int> bits_;
  void note(const std::string& what, __int128 max_abs);  // max_abs: max over v of (v < 0 ? -(v + 1) : v)
};

// Index of the largest value of each row (ties: first), any executor's tensor.
template <class V>
std::vector<int> argmax_rows(const Mat<V>& x) {
  std::vector<int> r(x.rows);
  for (int i = 0; i < x.rows; ++i) {
    int best = 0;
    for (int j = 1; j < x.cols; ++j)
      if (x.at(i, j) > x.at(i, best)) best = j;
    r[i] = best;
  }
  return r;
}

}  // namespace aero::pi
