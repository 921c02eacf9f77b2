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

#include "mpc/dpf.h"
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

// Vector-payload selected lookup: a selected lookup times a masked VECTOR in ONE round. For
// rows i < n and entries c < width,
//   y_i[c] = sum_k s_(k,i) T_k[x_(k,i)] z'_(k,i)[c]   (mod 2^out_bits)
// where z_i is a masked vector (z^ = z + R_z on vec_bits) and z'_k = z >> shift[k] by the free
// truncate-reduce (floor + a stochastic carry, truncation.h; shift 0: z itself). The product
// moves into the DPF payload: z' = A - R' over the integers mod 2^out_bits, with A public (from
// z^) and R' = R_z >> shift dealer-known, so s T[x] z' = A (s T[x]) - s T[x] R': the second
// term is the lookup with the payload VECTOR R' (mpc::DpfVecParams), the first the public A
// times the lookup of payload 1. When z' lives on fewer bits than out_bits (vec_bits - shift
// < out_bits), it is sign-extended inside the payload by the bounded rule (truncation.h,
// SIRNN's known MSB; |z'| < 2^(ring - 2) required): z' = Y^ - 2^(ring-2) - R' + 2^ring t (1 - m)
// with t = msb(R') (a dealer bit: a third, narrow payload vector of out_bits - ring <= 16
// bits) and m = msb(Y^) public. The selector bit s (opened mod 2, s^ = s xor r_s) is the
// DPF's FIRST input bit: the key's point is (r_s, r_x) on in_bits + 1 bits and the party
// evaluates only the half below first bit 1 - s^ (T'[(s^ - j_s) mod 2, .] vanishes on the
// other half), so a term costs 2^in_bits leaf conversions, and the payload has no second
// (r_s-scaled) copy as lut_sel's dual DPF has.
// open_shift > 0 truncates the output by local share truncation before the opening (each party
// shifts its share, party 0 after adding 2^(open_shift - 1)): the opening carries out_bits -
// open_shift bits and the output is floor((y + 2^(open_shift-1)) / 2^open_shift) + c1 - c,
// c1 the mask's carry, c the shares' carry: unbiased (to 2^-(open_shift+1)), |error| < 1.5 ulp.
// Shares mod 2^out_bits reduce to Z_2^(out_bits - open_shift) without a wrap term, so no
// comparison is needed (SecureML's local truncation, whose wrap error a smaller ring removes).
// Layout: x and s are K blocks of n (term k, row i at k n + i), z is n rows of width.
//   Rounds 1; online (out_bits - open_shift) / 8 bytes per output element each way.
//   Keys per row and term: one vector DPF of in_bits + 1 levels with 1 + width words of
//   out_bits (+ width words of the lift's bits when lifting); party 1 + out_bits/8 per output.
//   Work per row and term: 2^(in_bits+1) AES (tree) + 2^in_bits x blocks() AES and
//   2^in_bits x (1 + width (+ width)) multiply-adds (the leaf conversions and the inner product).
// Sources: Boyle et al. EC'21 (FSS gates on masked inputs, products with a masked input via the
// payload), SIGMA (PoPETs 2024: DPF lookups after truncate-reduce, select by a bit opened in
// Z_2), Orca (S&P 2024: stochastic truncation), SIRNN (S&P 2021: known-MSB sign extension).
struct LutVecSpec {
  int in_bits = 8;
  int out_bits = 64;
  int vec_bits = 64;                     // ring of the masked vector z
  size_t terms = 1;                      // K
  size_t width = 1;                      // entries per row
  std::vector<std::vector<u64>> tables;  // K tables of 2^in_bits entries
  std::vector<int> shift;                // per term (empty: 0)
  int open_shift = 0;
  void check(bool with_tables = true) const;
  int term_shift(size_t k) const { return shift.empty() ? 0 : shift[k]; }
  int term_ring(size_t k) const { return vec_bits - term_shift(k); }
  int term_lift(size_t k) const { return term_ring(k) < out_bits ? out_bits - term_ring(k) : 0; }
  int open_bits() const { return out_bits - open_shift; }
  DpfVecParams dpf(size_t k) const;  // term k's key layout
};
std::vector<u64> lut_vec_deal(Dealer& d, const LutVecSpec& s, std::span<const u64> r_x, std::span<const u64> r_s,
                              std::span<const u64> r_z);
std::vector<u64> lut_vec_shares(Party& p, const LutVecSpec& s, std::span<const u64> x_hat,
                                std::span<const u64> s_hat, std::span<const u64> z_hat);
std::vector<u64> lut_vec_eval(Party& p, const LutVecSpec& s, std::span<const u64> x_hat, std::span<const u64> s_hat,
                              std::span<const u64> z_hat);
// Exact key bytes for n rows (the tables are not needed), and one party's evaluation work
// (leaf conversions only where the table entry is nonzero, when the tables are given; the
// narrow words' 16-bit multiply-adds counted as a quarter).
size_t lut_vec_key_bytes(const LutVecSpec& s, size_t n, int party);
struct LutVecWork {
  double aes_blocks = 0, macs = 0;
};
LutVecWork lut_vec_work(const LutVecSpec& s, size_t n);

}  // namespace aero::mpc
