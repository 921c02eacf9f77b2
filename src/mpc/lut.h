// Lookup-table evaluation on small-width masked inputs: y = T[x] for x in Z_2^n (n <= 20),
// T a public table of 2^n entries of Z_2^out_bits (entry j is the output for the input bit
// pattern j, so signed inputs index two's-complement patterns).
// With x^ = x + r: T[x] = sum_j T[x^ - j] [j == r], and [j == r] is a DPF with alpha = r
// evaluated on the full domain, so each party's share is an inner product of its full-domain
// DPF evaluation with the table rotated by x^.
//   Rounds 1; online out_bits/8 bytes per element each way; keys per element:
//   n x 16.25 + out_bits/8 bytes (+ out_bits/8 + 16 for party 1); work 2^(n+1) AES + 2^n MACs.
// Source: Boyle-Gilboa-Ishai CCS 2016 (DPF, full-domain evaluation); the table-rotation
// construction as used by Grotto (Storrier, Vadapalli, Lyons, Henry, CCS 2023) and SIGMA
// (PoPETs 2024: LUTs after truncate-reduce).
#pragma once
#include <span>
#include <vector>

#include "mpc/party.h"

namespace aero::mpc {

struct LutSpec {
  int in_bits = 8;
  int out_bits = 64;
  std::vector<u64> table;  // 2^in_bits entries
  void check() const;
};

std::vector<u64> lut_deal(Dealer& d, const LutSpec& s, std::span<const u64> r_in);
std::vector<u64> lut_eval(Party& p, const LutSpec& s, std::span<const u64> x_hat);
std::vector<u64> lut_shares(Party& p, const LutSpec& s, std::span<const u64> x_hat);  // no opening
// Exact key bytes of a batch of n lookups for `party` (markers included; the table is public
// and not needed).
size_t lut_key_bytes(int in_bits, int out_bits, size_t n, int party);
double lut_key_bytes_per_element(const LutSpec& s, int party);

}  // namespace aero::mpc
