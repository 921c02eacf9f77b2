// Lookup-table evaluation on small-width masked inputs: y = T[x] for x in Z_2^n (n <= 24),
// T a public table of 2^n entries of Z_2^out_bits (entry j is the output for the input bit
// pattern j, so signed inputs index two's-complement patterns).
// With x^ = x + r: T[x] = sum_j T[x^ - j] [j == r], and [j == r] is a DPF with alpha = r
// evaluated on the full domain, so each party's share is an inner product of its full-domain
// DPF evaluation with the table rotated by x^.
//   Rounds 1; online out_bits/8 bytes per element each way; keys per element:
//   n x 16.25 + out_bits/8 bytes (+ out_bits/8 + 16 for party 1); work 3 x 2^n AES + 2^n MACs.
//   With LutSpec::leaf_bits = L (the DPF's early termination, dpf.h): (n - L) x 16.25 +
//   2^L out_bits/8 key bytes, 2^(n-L+1) + 2^(n-L) ceil(2^L/2) AES (L = 2: 2^(n+1), a third
//   of the plain tree's), same result.
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
  int leaf_bits = 0;       // DPF early termination (DpfParams::leaf_bits)
  void check() const;
};

std::vector<u64> lut_deal(Dealer& d, const LutSpec& s, std::span<const u64> r_in);
std::vector<u64> lut_eval(Party& p, const LutSpec& s, std::span<const u64> x_hat);
std::vector<u64> lut_shares(Party& p, const LutSpec& s, std::span<const u64> x_hat);  // no opening
// Exact key bytes of a batch of n lookups for `party` (markers included; the table is public
// and not needed).
size_t lut_key_bytes(int in_bits, int out_bits, size_t n, int party, int leaf_bits = 0);
// The table's nonzero entries lie in the cyclic interval [start, start + len) of indices (the
// complement of its longest cyclic run of zeros). With len < 2^in_bits, lut_shares needs
// [j == r] only for j = x^ - i, i in that interval: a window of len consecutive DPF points
// (dpf_eval_range) instead of the full domain, and a dot product of len terms (e.g. exp
// tables that round to 0 beyond a dozen units).
struct LutSupport {
  size_t start = 0, len = 0;
};
LutSupport lut_support(std::span<const u64> table);
// AES calls per looked-up element (full domain, or the window above), for cost estimates.
double lut_aes_per_element(const LutSpec& s);
double lut_key_bytes_per_element(const LutSpec& s, int party);

// Selected lookup: y_i = sum_k s_(k,i) T_k[x_(k,i)] (mod 2^out_bits) in ONE round, where the
// selectors are BITS opened mod 2 (s^ = s xor r_s, e.g. a DReLU of output width 1) and the
// indices are masked at in_bits. As integers s = s^ + (1 - 2 s^) r_s, so with the DPF shares
// e_j of [j == r_x] and e'_j of r_s [j == r_x] (a second payload, the mask bit r_s, on the
// same DPF tree: DpfParams::dual), s T[x] = sum_j T[x^ - j] (s^ e_j + (1 - 2 s^) e'_j): public
// values times shares, local. A clamp by selection (the table is 0 outside the clamp) or a one-hot choice
// among K tables therefore needs no multiplication round. The K terms of an output are summed
// before the single opening. Layout: x and s are K blocks of n (term k, element i at k n + i);
// `tables` holds K tables of 2^in_bits entries. Keys per term: one dual-payload DPF.
// Source: the DPF table lookup as above; moving a masked multiplicand (here a bit's mask)
// into the FSS payload follows Boyle-Gilboa-Ishai-Kolobov et al., Eurocrypt 2021 ("Function
// secret sharing for mixed-mode and fixed-point secure computation"), and SIGMA's
// select-by-bit with the bit opened in Z_2 (PoPETs 2024).
struct LutSelSpec {
  int in_bits = 8;
  int out_bits = 64;
  size_t terms = 1;                      // K
  std::vector<std::vector<u64>> tables;  // K tables of 2^in_bits entries
  void check() const;
};
std::vector<u64> lut_sel_deal(Dealer& d, const LutSelSpec& s, std::span<const u64> r_x, std::span<const u64> r_s);
std::vector<u64> lut_sel_shares(Party& p, const LutSelSpec& s, std::span<const u64> x_hat, std::span<const u64> s_hat);
std::vector<u64> lut_sel_eval(Party& p, const LutSelSpec& s, std::span<const u64> x_hat, std::span<const u64> s_hat);
size_t lut_sel_key_bytes(int in_bits, int out_bits, size_t terms, size_t n, int party);

}  // namespace aero::mpc
