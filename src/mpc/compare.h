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

// Exact key bytes a batch of n gates writes to `party`'s stream (gate markers included), as
// the *_deal functions write them; the cost model (src/pi) counts with these.
size_t drelu_key_bytes(const CompareSpec& s, size_t n, int party);
size_t relu_key_bytes(const CompareSpec& s, size_t n, int party);
size_t relu_cmp_key_bytes(const ReluCmpSpec& s, size_t n, int party);

double drelu_key_bytes_per_element(const CompareSpec& s, int party);
double relu_key_bytes_per_element(const CompareSpec& s, int party);

}  // namespace aero::mpc
