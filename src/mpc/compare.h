// Comparison gates on masked wires: DReLU (x >= 0) and ReLU, one round each.
//
// DReLU: x signed of width n, y = x + 2^(n-1), y^ = y + r. Then
//   DReLU(x) = msb(y) = msb(y^) xor msb(r) xor [y^_low < r_low]     (low = n-1 bits)
// The comparison is a DCF on n-1 bits with alpha = r_low and payload beta = 1 - 2 msb(r), so
// the parties get shares of u = msb(r) xor [..] and output b = p + (1 - 2p) u with p = msb(y^)
// public, plus the output mask. Output: a masked 0/1 value of width out_bits (arithmetic, so it
// feeds select/mul directly). x < y is DReLU(y - x - 1) after a local subtraction.
//   Rounds 1; online out_bits/8 bytes per element each way; keys per element:
//   (n-1) x (16.25 + out_bits/8) + out_bits/8 bytes, + 2 x out_bits/8 + 16 for party 1.
// ReLU: x * DReLU(x) in the same round: with x = x^ - r and b = p + (1-2p) u,
//   x b = x^ p + x^ (1-2p) u - p r - (1-2p) r u,
// and r u = r msb(r) + r (1 - 2 msb(r)) [..] is the DCF's second payload element. out_bits <= n.
//   Rounds 1; online out_bits/8 bytes per element each way; keys: a 2-element DCF on n-1 bits
//   plus 4 shared elements (party 1).
// Source: Boyle et al. Eurocrypt 2021 (gates on masked inputs from one DCF: DReLU/ReLU,
// "spline" payloads); SIGMA (Gupta et al., PoPETs 2024), its DReLU/ReLU protocols.
#pragma once
#include <span>
#include <vector>

#include "mpc/dcf.h"
#include "mpc/party.h"

namespace aero::mpc {

struct CompareSpec {
  int in_bits = 64;
  int out_bits = 64;
  void check(bool relu) const;
};

std::vector<u64> drelu_deal(Dealer& d, const CompareSpec& s, std::span<const u64> r_in);
std::vector<u64> drelu_eval(Party& p, const CompareSpec& s, std::span<const u64> x_hat);

std::vector<u64> relu_deal(Dealer& d, const CompareSpec& s, std::span<const u64> r_in);
std::vector<u64> relu_eval(Party& p, const CompareSpec& s, std::span<const u64> x_hat);

// The party side without the opening: this party's share of the masked output (for
// open_many, to evaluate independent gates in one round). *_eval = open(*_shares).
std::vector<u64> drelu_shares(Party& p, const CompareSpec& s, std::span<const u64> x_hat);
std::vector<u64> relu_shares(Party& p, const CompareSpec& s, std::span<const u64> x_hat);

// ReLU(x) and DReLU(x - c_k) for public offsets c_k (e.g. GELU's clamp tests), all from ONE
// DCF key: x - c_k has the same mask r as x, so each comparison is the same key (alpha = the
// low bits of r) evaluated at another public point. A DCF key hides alpha for any number of
// evaluation points (full-domain evaluation is the extreme case), and every output is opened
// under its own fresh mask. Keys: one 2-payload DCF(n-1) + 4 relu shares + 2 shares per
// offset, instead of one DCF per comparison. Output: relu (relu_bits) then the comparisons
// (cmp_bits <= relu_bits, offset-major). Source: DReLU/ReLU of Boyle et al. EC'21; the
// multi-point reuse is this engine's (docs/mpc.md).
struct ReluCmpSpec {
  int in_bits = 64, relu_bits = 64, cmp_bits = 64;
  std::vector<u64> offsets;
  void check() const;
};
std::vector<u64> relu_cmp_deal(Dealer& d, const ReluCmpSpec& s, std::span<const u64> r_in);
// Shares for open_many: [0] the ReLU (relu_bits), [1] the comparisons (cmp_bits).
std::pair<std::vector<u64>, std::vector<u64>> relu_cmp_shares(Party& p, const ReluCmpSpec& s,
                                                              std::span<const u64> x_hat);

// Truncating ReLU / leaky ReLU (relu_trunc): from x signed of width n with |x| < 2^(n-2) (the
// engine's bounded range, one spare bit), ONE round gives, at any out_bits <= 64,
//   y = b X + (1 - b) N,  b = [x >= 0],  X = floor(x / 2^s) + c,  N = floor(slope X / 2^sf) + c'
// (ReLU: N = 0), where c, c' in {0, 1} are stochastic carries (c = 0 when s = 0; the
// gate is exact iff s = 0 and slope = 0). It fuses the truncation of a linear layer's
// accumulator (its sign extension to out_bits <= 42, and the slope product's truncation) into
// the activation's one DCF. With z = x + 2^(n-2), z^ = z + r mod 2^n, m = msb(z^), t = msb(r):
//   X = A - R + 2^(n-s) t (1 - m)       A = (z^ >> s) - 2^(n-2-s) public, R = r >> s,
// exactly over the integers (the wrap of z + r is t (1 - m), the bounded rule of
// truncation.h; c is the carry out of the low s bits); and with n - s >= sf
//   N = floor(slope A / 2^sf) - floor(slope R / 2^sf) + slope 2^(n-s-sf) t (1 - m)
// (floor(a) - floor(b) is floor(a - b) or one more). So D = X - N = P + D0 + (1 - m) t K with
// P public, D0 = floor(slope R / 2^sf) - R and K = 2^(n-s) - slope 2^(n-s-sf) dealer-known, and
// b D = p D + (1 - 2p) u D as in ReLU (b = p xor u, p public, u = t xor [y^_low < r_low]):
// u D0 = t D0 + [..] (1 - 2t) D0 and u t K = t K - [..] t K are DCF payload columns.
//   Rounds 1; online out_bits/8 bytes per element each way; keys: a 3-element DCF on n-1 bits
//   plus 4 shared elements (5 for leaky) for party 1.
// Sources: ReLU from one DCF with spline payloads (Boyle et al. EC'21, SIGMA); the truncation
// of the input on masked wires (SIGMA / Orca's truncate-reduce, stochastic carry) and the
// known-MSB wrap (SIRNN) are moved into the payloads here, so the linear layer before the
// activation opens only its accumulator. out_bits <= 42 (three payload elements in one DCF
// value block, fss::elem).
struct ReluTruncSpec {
  int in_bits = 40, shift = 0, out_bits = 40;
  int64_t slope = 0;   // leaky ReLU's negative side, at scale 2^slope_frac
  int slope_frac = 0;
  bool leaky = false;  // false: ReLU (slope ignored); the key layout depends on this only
  void check() const;
  bool exact() const { return shift == 0 && !leaky; }
};
std::vector<u64> relu_trunc_deal(Dealer& d, const ReluTruncSpec& s, std::span<const u64> r_in);
std::vector<u64> relu_trunc_eval(Party& p, const ReluTruncSpec& s, std::span<const u64> x_hat);
std::vector<u64> relu_trunc_shares(Party& p, const ReluTruncSpec& s, std::span<const u64> x_hat);
size_t relu_trunc_key_bytes(const ReluTruncSpec& s, size_t n, int party);

// ReLU split over two rounds (GELU's shape): relu_trunc's key (shift 0, ReLU, so exact)
// plus comparison masks, dealt and read ONCE. Round 1 evaluates the DCF at the public points
// x^ - c_k only: the bits [x >= c_k], opened under their masks (cmp_bits, offset-major), as
// relu_cmp does; a later round evaluates the SAME key at x^ for additive shares of relu(x)
// sign-extended to relu_bits (|x| < 2^(in_bits-2), the payload's bounded rule) that carry NO
// output mask: they never open alone, the caller adds them into another gate's opening (whose
// fresh mask hides the sum), so the ReLU costs no opening of its own. A DCF key may be
// evaluated at any number of public points and in any round (x^ is public from the start).
//   Keys: a 3-element DCF on in_bits-1 bits plus 3 relu_bits shares and the comparison masks
// (party 1); online: the comparisons only. Sources: DReLU / ReLU from one DCF with spline
// payloads (Boyle et al. EC'21); SIGMA (Gupta et al., PoPETs 2024) GELU = ReLU - delta LUT.
struct ReluSplitSpec {
  int in_bits = 28, relu_bits = 40, cmp_bits = 1;
  std::vector<u64> offsets;
  void check() const;
};
struct ReluSplitKey {  // one party's key, read in dealing order (round 1), kept for the ReLU
  ReluSplitSpec s;
  size_t n = 0;
  std::vector<u64> t, d0, td0, cmp_mask;
  DcfKeys k;
};
// Dealer: returns the comparisons' masks (n K, cmp_bits); relu's shares are unmasked (mask 0).
std::vector<u64> relu_split_deal(Dealer& d, const ReluSplitSpec& s, std::span<const u64> r_in);
ReluSplitKey relu_split_read(Party& p, const ReluSplitSpec& s, size_t n);
// This party's share of the masked comparisons (for open_many, cmp_bits).
std::vector<u64> relu_split_cmp_shares(Party& p, const ReluSplitKey& k, std::span<const u64> x_hat);
// This party's additive share of relu(x) at relu_bits, no mask: never open it alone.
std::vector<u64> relu_split_relu_shares(Party& p, const ReluSplitKey& k, std::span<const u64> x_hat);
size_t relu_split_key_bytes(const ReluSplitSpec& s, size_t n, int party);

// Exact key bytes a batch of n gates writes to `party`'s stream (gate markers included), as
// the *_deal functions write them; the cost model (src/pi) counts with these.
size_t drelu_key_bytes(const CompareSpec& s, size_t n, int party);
size_t relu_key_bytes(const CompareSpec& s, size_t n, int party);
size_t relu_cmp_key_bytes(const ReluCmpSpec& s, size_t n, int party);

double drelu_key_bytes_per_element(const CompareSpec& s, int party);
double relu_key_bytes_per_element(const CompareSpec& s, int party);

}  // namespace aero::mpc
