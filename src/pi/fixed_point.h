// Fixed-point arithmetic of private inference: the scales, lookup tables and integer gates
// that the fixed-point simulation and the 2PC executor share bit for bit.
//
// Every wire is a signed integer (two's complement in Z_2^64) at a power-of-two scale.
// Activations use scale 2^f (f = 12, as SIGMA), weights 2^f, biases 2^(2f). Each nonlinear
// operator is defined here as an integer function of its integer input (floor truncations,
// clipped lookup-table indices, tables built from bucket midpoints), so that the secure
// protocol (an FSS gate on the masked input: DCF for comparisons / truncation carries, DPF
// lookup tables after truncate-reduce; SIGMA PoPETs 2024, Boyle et al. Eurocrypt 2021,
// Grotto CCS 2023) reproduces it exactly. Accuracy of each gate against the real function is
// stated next to it and in docs/private_inference.md.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace aero::pi {

enum class SoftmaxVariant { exact_max, clipped };
const char* to_string(SoftmaxVariant v);
SoftmaxVariant softmax_variant_from_string(const std::string& s);
// FxSpec::lut_products: off, on, or (auto, the default) on exactly with stochastic truncation.
enum class LutProducts { off, on, auto_ };
const char* to_string(LutProducts v);

struct FxSpec {
  int f = 12;              // activation / weight scale (bias at 2f)
  int c_frac = 20;         // scale of public per-row attention constants 1/(t sqrt(d_k))
  int rot_frac = 14;       // scale of rotary cos/sin constants
  int gelu_lut_frac = 6;   // GELU correction LUT: |x| truncated to 2^-6 steps
  int gelu_lut_bits = 9;   //   ... signed index clipped to 2^9 entries (|x| < 4)
  SoftmaxVariant softmax = SoftmaxVariant::exact_max;
  int exp_lut_frac = 6;    // exp LUT input step 2^-6
  int exp_lut_bits = 10;   // exact_max: m - z clipped to [0, 16)
  int exp_out_frac = 16;   // exact_max: scale of exp values (<= 1)
  int clip_lut_bits = 12;  // clipped: H - z clipped to [0, 64)
  int clip_out_frac = 24;  // clipped: scale of exp values
  double clip_hi = 8.0;    // clipped: logits above this are clipped (max-free softmax), unless the
                           // model carries per-head constants (PiBlock::softmax_clip, pi_calib.h)
  int inv_mantissa = 8;    // normalized LUT for 1/x and 1/sqrt(x): 8 mantissa bits
  int inv_out_frac = 20;   // exact_max: scale of 1/sum (clipped uses 16)
  int rsqrt_out_frac = 30; // LayerNorm: scale of 1/(d sqrt(var + eps))
  double ln_eps = 1e-5;
  // Secure engine only (the integer function does not depend on it): ring of Q, K and the
  // attention scores' product; the logits get qk_bits - f - c_frac bits, so logits must stay
  // below 2^(qk_bits - f - c_frac - 2) at scale 2^f (one spare bit for their differences).
  // 60 (default): |z| < 2^14; trained LN-free models reach |z| ~ 2^8 (`aero pi eval` prints
  // the logits' width and the qk_bits they need). 52: the narrow plan (|z| < 64; with
  // stochastic truncation and a 64-bit input, Q and K then come from attn.qkv's product by the
  // free truncate-reduce and V's truncation moves into the scores' round).
  int qk_bits = 60;
  // Stochastic truncation (Orca; SIGMA's truncate-reduce): floor(x / 2^s) + c, c = 1 with
  // probability (x mod 2^s) / 2^s, no carry DCF. The secure run draws c from the dealer's mask,
  // the simulation from a hash of (operator call, element): the same distribution, not the same
  // bits. Table indices (GELU, the normalized LUT's mantissa; exp's with exp_rounds 2) stay
  // floors; the one-round exp's index carries (exp_rounds, below). Off: every
  // truncation is a floor.
  bool stochastic_trunc = false;
  // Secure engine: products inside the lookups (mpc::lut_vec, docs/private_inference.md
  // "Products inside the lookups"): LayerNorm's (d x - sum x) r in the rsqrt lookup and the
  // softmax normalization (E V)(1/sum) in the 1/sum lookup, one round less for each (two for
  // the stochastic softmax, whose output is then truncated inside the lookup as well), for
  // more key bytes and FSS evaluation. The integer function is unchanged when faithful; with
  // stochastic truncation the two outputs are rounded by the lookup's local share truncation
  // (FixedExec::lsr) and the normalization uses the pre-shifted value product and the tables
  // of InvFold. Default (auto): on with stochastic truncation, where the keys stay below 8 GiB
  // per party at GPT-2 size; off when faithful (already above it; the bit-exact reference).
  LutProducts lut_products = LutProducts::auto_;
  bool products_in_lookups() const {
    return lut_products == LutProducts::on || (lut_products == LutProducts::auto_ && stochastic_trunc);
  }
  // Exp in one round (2026-11-28): with stochastic truncation, the table index is the free
  // truncate-reduce of the logit difference (ref - z) >> (f - exp_lut_frac) on its whole wire,
  // exp_index_bits() = qk_bits - f - c_frac - (f - exp_lut_frac) bits (14 at qk_bits 52, 22 at
  // 60), and ONE lookup of a table over that whole domain (ExpLut::one_round; the upper clamp
  // is in the table, which is 0 from exp's underflow on) replaces {index truncation, clamp
  // comparisons} | selected lookup. The clipped variant's lower clamp (logits above the clip:
  // a negative index) is E[0] [i < 0], a comparison whose shares join the lookup's before its
  // one opening. The index is floor + a stochastic carry, so the table holds exp at bucket
  // LEFT edges (E[0] = 1; in expectation a linear interpolation, per value within one step,
  // 2^-6 relative). The table is nonzero on its first ~750 (exact max) or ~1100 (clipped)
  // entries only, so the DPF is evaluated on that window whatever the index width.
  // 0 = auto: one round where valid (stochastic and exp_index_bits() <= kOneRoundExpMaxBits,
  // i.e. qk_bits <= 60), two elsewhere; 1 = one round (engine_spec refuses it where invalid);
  // 2 = two rounds.
  int exp_rounds = 0;
  static constexpr int kOneRoundExpMaxBits = 22;

  int exp_bits() const { return softmax == SoftmaxVariant::exact_max ? exp_lut_bits : clip_lut_bits; }
  int exp_frac() const { return softmax == SoftmaxVariant::exact_max ? exp_out_frac : clip_out_frac; }
  int inv_frac() const { return softmax == SoftmaxVariant::exact_max ? inv_out_frac : 16; }
  int exp_index_bits() const { return qk_bits - f - c_frac - (f - exp_lut_frac); }
  bool exp_one_round_valid() const { return stochastic_trunc && exp_index_bits() <= kOneRoundExpMaxBits; }
  bool exp_one_round() const { return exp_rounds != 2 && exp_one_round_valid(); }
  // A clip constant within the logits' range |z| < 2^(qk_bits - 46), so that clip - z fits the
  // logits' wire with its spare bit (the one-round exp's index must not wrap).
  bool clip_in_range(double clip) const { return std::abs(clip) < std::ldexp(1.0, qk_bits - 2 * f - c_frac - 2); }
};

// The LayerNorm's r = Rsqrt(D) and the softmax's 1/sum are searched among the MSB candidates
// e of [lo_msb(vmin), max_e): a row value v >= vmin >= 1 has its MSB at or above that of vmin
// (LayerNorm: D >= round(d^2 eps 2^2f); exact-max softmax: sum >= 2^exp_frac, the maximum's
// exp(0) = 1), so no lower candidate, and no v <= 0 term, is needed.
inline int lo_msb(int64_t vmin) { return vmin >= 1 ? 63 - __builtin_clzll(uint64_t(vmin)) : 0; }

// The engine configuration of the `aero pi` commands (--softmax exact_max|clipped, --trunc
// faithful|stochastic, --qk-bits 48..64, --lut-products on|off|auto, --exp-rounds 0 (auto) | 1 |
// 2) as an FxSpec, each value checked.
FxSpec engine_spec(const std::string& softmax, const std::string& trunc, int qk_bits,
                   const std::string& lut_products = "auto", int exp_rounds = 0);

// Encoding: round(x * 2^s). Decoding: x / 2^s.
int64_t encode(double x, int s);
inline double decode(int64_t v, int s) { return double(v) / double(int64_t(1) << s); }

// Floor division by 2^s (arithmetic shift): the truncation every secure TR/ARS gate computes.
inline int64_t trunc_floor(int64_t v, int s) { return v >> s; }
inline int64_t trunc_floor128(__int128 v, int s) { return int64_t(v >> s); }

// GELU (tanh form) = ReLU(x) - delta(x), delta = ReLU - GELU tabulated at bucket midpoints
// of x in steps of 2^-6 on a signed 9-bit index clip(x >> 6, -256, 255) (SIGMA's shape: a
// DCF-based ReLU plus a small DPF table), 0 beyond |x| >= 4 (delta(4) = 1.3e-4). Error vs
// real GELU: |delta'| <= 0.5 times half a step (0.0039) plus one output LSB (2^-12).
struct GeluLut {
  std::vector<int64_t> table;  // 2^gelu_lut_bits entries at scale f
  explicit GeluLut(const FxSpec& s);
  int64_t eval(int64_t x, const FxSpec& s) const;
};

// exp(-d) for d >= 0 by a table on d truncated to 2^-exp_lut_frac steps and clipped to
// 2^exp_bits entries; the last entry is 0 (exp(-16) < 2^-16 in exact_max, exp(-64) in
// clipped). Relative error <= 2^-7 (half a step, midpoint) + one output LSB.
struct ExpLut {
  std::vector<int64_t> table;  // at scale exp_frac
  // FxSpec::exp_one_round(): 2^exp_index_bits() entries over the index's whole wire: exp at
  // the bucket's left edge i 2^-exp_lut_frac for i in [0, 2^(bits-1)) (0 once it rounds to 0),
  // 0 on the upper half (negative indices: the clipped variant's clamp to E[0] = 2^exp_frac is
  // a separate comparison term). Empty otherwise.
  std::vector<int64_t> one_round;
  explicit ExpLut(const FxSpec& s);
};

// x^p (p = -1 or -1/2) for a positive integer input at scale in_frac, output at scale out_frac:
// the input is normalized by its most significant bit e, the next `mantissa` bits index a
// table per e (bucket midpoint). Relative error <= |p| 2^-(mantissa+1) + one output LSB.
// Secure form: one-hot of e by DCF interval containment, the mantissa by truncate-reduce of
// the selected shift, one DPF lookup on (e, mantissa).
struct InvPowLut {
  double p;
  int in_frac, out_frac, mantissa;
  InvPowLut(double p, int in_frac, int out_frac, int mantissa);
  int64_t eval(int64_t v) const;  // v <= 0 is treated as the smallest positive input (1)
  const std::vector<int64_t>& table() const { return table_; }  // [e * 2^mantissa + j]
  // The table row e and column j that eval reads for v (v <= 0 as 1).
  static std::pair<int, int64_t> index(int64_t v, int mantissa);
  // One entry: x^p of the bucket (e, j) (its midpoint; exact values below 2^mantissa; 0 for
  // unreachable entries) at scale out_frac.
  static int64_t entry(double p, int in_frac, int out_frac, int mantissa, int e, int j);
 private:
  std::vector<int64_t> table_;    // [64][2^mantissa]
};

// Softmax normalization inside the 1/sum lookup with stochastic truncation
// (FxSpec::lut_products): out = lsr(ev_e Inv_e(sum), kGuard) where, for the sum's MSB e, ev_e =
// floor(E V / 2^shift[e]) + a stochastic carry (the free truncate-reduce of the opened E V)
// and Inv_e = 1/sum at scale kGuard - exp_frac + shift[e] (table[e], buckets as InvPowLut).
// The product then has scale f + kGuard, and the lookup's local share truncation by kGuard =
// 64 - 40 leaves attn.proj's 40-bit ring: no opening after the lookup. shift[e] =
// clamp(e - 8, 0, 16) keeps both factors precise: ev_e ~ 2^20 |v| and Inv_e ~ 2^16 for e in
// [8, 24] (the pre-shift costs at most 2^-8 ulp of the output), Inv_e ~ 2^(40 - e) above
// (as the clipped softmax's own 1/sum table), ev_e = E V exactly below.
struct InvFold {
  static constexpr int kGuard = 24;
  std::vector<int> shift;                   // [64]
  std::vector<std::vector<int64_t>> table;  // [64][2^inv_mantissa]; row 63: v <= 0 (as 1) at index 0
  explicit InvFold(const FxSpec& s);
};

}  // namespace aero::pi
