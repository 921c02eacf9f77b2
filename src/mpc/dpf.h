// Distributed point function (DPF): keys k0, k1 for f(x) = beta if x == alpha else 0, x and
// alpha in {0,1}^n (n = 1..64), beta in Z_2^out_bits; Eval(k0,x) + Eval(k1,x) = f(x).
// Construction: Boyle, Gilboa, Ishai, CCS 2016, "Function Secret Sharing: Improvements and
// Extensions", section 3.2, figure 1 (tree DPF with control bits and one correction word per
// level). Full-domain evaluation (dpf_eval_all) expands the whole tree level by level:
// 2^(n+1) fixed-key AES calls per key instead of n x 2^n for point-wise evaluation; this is
// what lookup tables use.
// Early termination (DpfParams::leaf_bits = L > 0; the optimization of BGI CCS 2016 for small
// output groups): the tree stops L levels above the leaves and each of its 2^(n-L) leaf seeds
// converts into 2^L output elements (two 64-bit elements per AES block of the conversion),
// the last correction word becoming a vector of 2^L elements (beta at alpha's low L bits).
// Full-domain evaluation then costs 2 (2^(n-L) - 1) + 2^(n-L) ceil(2^L / 2) AES calls instead
// of 3 x 2^n - 2 (dpf_eval_all_aes).
// Key size (per party): (n - L) x (128 + 2) bits + 2^L out_bits (2 x out_bits when dual, L = 0
// only); party 1 adds its 16-byte root seed.
#pragma once
#include <span>
#include <vector>

#include "mpc/keys.h"

namespace aero::mpc {

struct DpfParams {
  int in_bits = 1;
  int out_bits = 64;
  // Two payloads (beta, beta2) on the same point alpha from ONE tree: the leaf's 128-bit
  // convert output gives both (low and high 64 bits), so the second costs one more output
  // correction word instead of a second key (used by mpc::lut_sel).
  bool dual = false;
  // Early termination: the last leaf_bits (0..3) levels of the tree are resolved by the leaf
  // conversion (see above); not with dual.
  int leaf_bits = 0;
  void check() const;
};

struct DpfKeys {
  DpfParams p;
  size_t n = 0;
  std::vector<Block> seed;  // n
  std::vector<Block> scw;   // n x in_bits
  std::vector<u64> tcw;     // n x in_bits (bit 0 = t_L, bit 1 = t_R)
  std::vector<u64> fcw;     // n x 2^leaf_bits
  std::vector<u64> fcw2;    // n when p.dual (second payload)
};

void dpf_keygen(const DpfParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                std::span<const Block> seed0, std::span<const Block> seed1, DpfKeys& k0,
                DpfKeys& k1, std::span<const u64> beta2 = {});
// Point evaluation of every key i at x[i].
void dpf_eval(int party, const DpfKeys& k, std::span<const u64> x, std::span<u64> out);
// Full-domain evaluation of key i: out has 2^in_bits entries (in_bits <= 24).
// With p.dual, out2 (same size) receives the second payload's evaluation.
void dpf_eval_all(int party, const DpfKeys& k, size_t i, std::span<u64> out, std::span<u64> out2 = {});
// Evaluation of key i (one payload) on the cyclic interval lo, lo + 1, ..., lo + len - 1
// (mod 2^in_bits), len = out.size(): only the tree nodes above the interval are expanded, so
// it costs about 2 (2 len / 2^L + 2 (n - L)) + (len / 2^L + 2) ceil(2^L / 2) AES calls
// (dpf_eval_range_aes) instead of the full domain's. For tables that are zero outside an
// interval (mpc::lut). Same values as dpf_eval_all there.
void dpf_eval_range(int party, const DpfKeys& k, size_t i, u64 lo, std::span<u64> out);

void dpf_deal(Dealer& d, const DpfParams& p, std::span<const u64> alpha,
              std::span<const u64> beta, std::span<const u64> beta2 = {});
DpfKeys dpf_read(KeyReader& r, const DpfParams& p, size_t n);
size_t dpf_key_bytes(const DpfParams& p, size_t n, int party);
// AES calls of one full-domain evaluation (dpf_eval_all), for cost estimates.
double dpf_eval_all_aes(const DpfParams& p);
// AES calls of dpf_eval_range on an interval of len points (not wrapping, average alignment).
double dpf_eval_range_aes(const DpfParams& p, size_t len);

// Vector-payload DPF: f(x) = beta if x == alpha else 0 with beta a VECTOR of `wide` words of
// Z_2^out_bits followed by `narrow` words of Z_2^narrow_bits (narrow_bits <= 16). The tree is
// the scalar DPF's (same path, one seed and control-bit correction per level); only the leaf
// conversion grows: leaf seed s expands to the payload's pseudo-random words by
// H(s.lo ^ 4, s.hi ^ b) for blocks b = 0, 1, ... (block 0 is the scalar DPF's Convert), the
// wide words taking 64-bit halves and the narrow ones 16-bit slices, and the key carries one
// correction word per payload word (BGI16's output correction, per word).
//   Keys per DPF (per party): in_bits x (128 + 2) bits + wide x out_bits + narrow x narrow_bits
//   (party 1: + its 16-byte root seed). Evaluation: the tree as the scalar DPF, plus
//   blocks() AES calls and wide + narrow multiply-adds per evaluated leaf.
// Source: Boyle, Gilboa, Ishai, CCS 2016 (DPF; outputs in any group, here Z_2^out^wide x
// Z_2^narrow^narrow, by a longer leaf conversion).
struct DpfVecParams {
  int in_bits = 1;
  int out_bits = 64;
  size_t wide = 1;
  size_t narrow = 0;
  int narrow_bits = 16;
  void check() const;
  size_t blocks() const { return (wide + 1) / 2 + (narrow + 7) / 8; }  // AES calls per leaf conversion
};

struct DpfVecKeys {
  DpfVecParams p;
  size_t n = 0;
  std::vector<Block> seed;  // n
  std::vector<Block> scw;   // n x in_bits
  std::vector<u64> tcw;     // n x in_bits
  std::vector<u64> cw;      // n x wide
  std::vector<u64> cwn;     // n x narrow
};

// beta: n x wide words, beta_n: n x narrow words (row i = key i's payload).
void dpf_vec_deal(Dealer& d, const DpfVecParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                  std::span<const u64> beta_n);
DpfVecKeys dpf_vec_read(KeyReader& r, const DpfVecParams& p, size_t n);
size_t dpf_vec_key_bytes(const DpfVecParams& p, size_t n, int party);
// This party's share of sum_x w[x] f(x) per payload word, over the leaves x of key i's
// subtree below its first input bit `first` (0 or 1: 2^(in_bits-1) leaves, x = the remaining
// bits) or over the whole domain (first = -1). Only that subtree is expanded; leaves of weight 0
// are not converted. out_wide: `wide` words mod 2^out_bits; out_narrow: `narrow` words mod
// 2^narrow_bits.
void dpf_vec_inner(int party, const DpfVecKeys& k, size_t i, int first, std::span<const u64> w,
                   std::span<u64> out_wide, std::span<u64> out_narrow);

}  // namespace aero::mpc
