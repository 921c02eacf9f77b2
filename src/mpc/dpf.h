// Distributed point function (DPF): keys k0, k1 for f(x) = beta if x == alpha else 0, x and
// alpha in {0,1}^n (n = 1..64), beta in Z_2^out_bits; Eval(k0,x) + Eval(k1,x) = f(x).
// Construction: Boyle, Gilboa, Ishai, CCS 2016, "Function Secret Sharing: Improvements and
// Extensions", section 3.2, figure 1 (tree DPF with control bits and one correction word per
// level). Full-domain evaluation (dpf_eval_all) expands the whole tree level by level:
// 2^(n+1) fixed-key AES calls per key instead of n x 2^n for point-wise evaluation; this is
// what lookup tables use.
// Key size (per party): n x (128 + 2) bits + out_bits (2 x out_bits when dual); party 1 adds
// its 16-byte root seed.
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
  void check() const;
};

struct DpfKeys {
  DpfParams p;
  size_t n = 0;
  std::vector<Block> seed;  // n
  std::vector<Block> scw;   // n x in_bits
  std::vector<u64> tcw;     // n x in_bits (bit 0 = t_L, bit 1 = t_R)
  std::vector<u64> fcw;     // n
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

void dpf_deal(Dealer& d, const DpfParams& p, std::span<const u64> alpha,
              std::span<const u64> beta, std::span<const u64> beta2 = {});
DpfKeys dpf_read(KeyReader& r, const DpfParams& p, size_t n);
size_t dpf_key_bytes(const DpfParams& p, size_t n, int party);

}  // namespace aero::mpc
