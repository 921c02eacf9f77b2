// Distributed comparison function (DCF): keys k0, k1 for f(x) = beta if x < alpha else 0, with
// x, alpha in {0,1}^n (n = 1..64, compared as unsigned integers) and beta a vector of
// `payload` elements of Z_2^out_bits; Eval(k0,x) + Eval(k1,x) = f(x).
// Construction: Boyle, Chandran, Gilboa, Gupta, Ishai, Kohli, Thomas, Eurocrypt 2021, "Function
// Secret Sharing for Mixed-Mode and Fixed-Point Secure Computation", section 3 (DCF from a PRG
// G: {0,1}^lambda -> {0,1}^{2(2 lambda + 1)} including value outputs per child).
// Key size (per party): n x (128 + 2 + payload x out_bits) bits of correction words + payload x
// out_bits for the last one; party 1 adds its 16-byte root seed (party 0's comes from its seed
// stream). Eval: 2 fixed-key AES calls per level + 1.
#pragma once
#include <span>
#include <vector>

#include "mpc/keys.h"

namespace aero::mpc {

struct DcfParams {
  int in_bits = 1;
  int out_bits = 64;
  int payload = 1;  // 1 or 2 group elements per key; 3 when out_bits <= 42 (fss::elem)
  void check() const;
};

// One party's keys for a batch of n DCFs with the same parameters.
struct DcfKeys {
  DcfParams p;
  size_t n = 0;
  std::vector<Block> seed;   // n
  std::vector<Block> scw;    // n x in_bits
  std::vector<u64> tcw;      // n x in_bits, bit 0 = t_L correction, bit 1 = t_R
  std::vector<u64> vcw;      // n x in_bits x payload
  std::vector<u64> fcw;      // n x payload
};

// Both parties' keys; alpha has n entries, beta n x payload. seed0/seed1: root seeds.
void dcf_keygen(const DcfParams& p, std::span<const u64> alpha, std::span<const u64> beta,
                std::span<const Block> seed0, std::span<const Block> seed1, DcfKeys& k0,
                DcfKeys& k1);
// out (n x payload): this party's shares of f_i(x_i). Multithreaded over the batch.
void dcf_eval(int party, const DcfKeys& k, std::span<const u64> x, std::span<u64> out);

// Dealer side: generates the batch and writes it to both key streams.
void dcf_deal(Dealer& d, const DcfParams& p, std::span<const u64> alpha,
              std::span<const u64> beta);
// Party side: reads a batch written by dcf_deal.
DcfKeys dcf_read(KeyReader& r, const DcfParams& p, size_t n);
// Serialized bytes of a batch of n keys for `party` (what dcf_deal writes).
size_t dcf_key_bytes(const DcfParams& p, size_t n, int party);

}  // namespace aero::mpc
