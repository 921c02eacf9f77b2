// Truncation (right shift of fixed-point values by `shift` bits) on masked wires.
//
// Stochastic truncate-reduce (trunc_free_*): x^ >> s is the masked value of
// floor(x / 2^s) + c in Z_2^(w-s), with mask r >> s and c = 1 with probability
// (x mod 2^s) / 2^s (a carry from the low bits): unbiased stochastic rounding, error in
// [0, 1) ulp of the output. Exact for signed x (two's complement). No key, no round, no bytes:
// fuse it after every opening whose output width has s bits to spare.
//   Source: the masked-shift observation behind SIGMA's truncate-reduce (PoPETs 2024) and
//   Orca's stochastic truncation (Jawalkar et al., S&P 2024).
//
// Gate truncation (trunc_*; TruncSpec): x signed of width n, output floor(x / 2^s) (faithful,
// exact) or floor(x / 2^s) + c (stochastic as above) of any width out_bits <= 64, including
// out_bits > n - s (sign extension; shift 0 is plain sign extension). With y = x + 2^(n-1),
// y^ = y + r:
//   floor(y/2^s) = (y^ >> s) - (r >> s) - [y^_low < r_low] + 2^(n-s) [y^ < r]
// and floor(x/2^s) = floor(y/2^s) - 2^(n-1-s). The first comparison (an s-bit DCF) is needed
// only when faithful, the second (an n-bit DCF) only when out_bits > n - s.
//   Rounds: 1. Online bytes per element: out_bits/8 each way.
//   Keys per element: DCF(s bits) if faithful + DCF(n bits) if widening, each
//   ~ bits x (16.25 + out_bits/8) bytes, plus out_bits/8 for party 1.
//   Source: Boyle et al. Eurocrypt 2021 (arithmetic right shift from DCF).
// Bounded sign extension (TruncSpec::bounded): when |x| < 2^(n-2) (one spare bit), the
// n-bit DCF is replaced by a local rule. With Y = x + 2^(n-2) in [0, 2^(n-1)) and Y^ = Y + r,
// Y + r wraps mod 2^n iff msb(r) = 1 and msb(Y^) = 0 (the carry out of the low n-1 bits can
// only turn a top bit 1 into 0), so the dealer shares rho = msb(r) 2^(n-s) and a party adds
// its share when the public msb(Y^) is 0. Keys: out_bits/8 instead of DCF(n); exact under
// the bound (the caller's range assumption; the fixed-point simulation reports wire widths).
//   Source: the known-MSB wrap computation of SIRNN (Rathee et al., S&P 2021, sec. 3), here
//   on masked wires where the wrap becomes a function of one public and one dealer bit.
// When neither comparison is needed (stochastic, out_bits <= n - s) the gate is the free one.
#pragma once
#include <span>
#include <vector>

#include "mpc/party.h"

namespace aero::mpc {

// Dealer and party side of the free stochastic truncate-reduce (output width in_bits - shift).
std::vector<u64> trunc_free_mask(std::span<const u64> r, int in_bits, int shift);
std::vector<u64> trunc_free_eval(std::span<const u64> x_hat, int in_bits, int shift);

struct TruncSpec {
  int in_bits = 64;
  int shift = 0;
  int out_bits = 64;
  bool faithful = true;
  bool bounded = false;  // |x| < 2^(in_bits-2): sign extension without the n-bit DCF
  void check() const;
  bool is_free() const { return !faithful && out_bits <= in_bits - shift; }
};

std::vector<u64> trunc_deal(Dealer& d, const TruncSpec& s, std::span<const u64> r_in);
std::vector<u64> trunc_eval(Party& p, const TruncSpec& s, std::span<const u64> x_hat);
// Party side without the opening (the gate must not be free): the share for open_many.
std::vector<u64> trunc_shares(Party& p, const TruncSpec& s, std::span<const u64> x_hat);
// Exact key bytes of a batch of n gates for `party` (marker included; 0 for the free case).
size_t trunc_key_bytes(const TruncSpec& s, size_t n, int party);
// Key bytes per element for party `party` (0 for the free case).
double trunc_key_bytes_per_element(const TruncSpec& s, int party);

}  // namespace aero::mpc
