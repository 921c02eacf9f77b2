// Pseudo-random generation from AES-128 (AES-NI when the CPU has it, OpenSSL otherwise).
//  - Prg: AES-128 in counter mode keyed by a 128-bit seed. Masks and one party's key
//    material expand from seeds, so such a share costs 16 bytes on the wire.
//  - fixed_key_hash: H(x) = AES_K(x) xor x with a public fixed key K (Matyas-Meyer-Oseas;
//    correlation robustness as in Guo, Katz, Wang, Yu, S&P 2020). The DPF/DCF tree PRG
//    G(s) = H(s xor 0) || H(s xor 1) || ... uses it, so no key schedule runs per node.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>

#include "mpc/ring.h"

namespace aero::mpc {

struct alignas(16) Block {
  u64 lo = 0, hi = 0;
  friend Block operator^(Block a, Block b) { return {a.lo ^ b.lo, a.hi ^ b.hi}; }
  Block& operator^=(Block b) {
    lo ^= b.lo;
    hi ^= b.hi;
    return *this;
  }
  friend bool operator==(Block a, Block b) { return a.lo == b.lo && a.hi == b.hi; }
};

class Aes128 {
 public:
  Aes128() = default;
  explicit Aes128(Block key) { set_key(key); }
  void set_key(Block key);
  // out[i] = AES_key(in[i]); in and out may alias.
  void encrypt(const Block* in, Block* out, size_t n) const;

 private:
  alignas(16) uint8_t rk_[11 * 16]{};
};

// AES-128-CTR stream keyed by a seed.
class Prg {
 public:
  explicit Prg(Block seed = {}, u64 stream = 0) { reseed(seed, stream); }
  void reseed(Block seed, u64 stream = 0) {
    aes_.set_key(seed);
    ctr_ = {0, stream};
    buf_pos_ = kBuf;
  }
  Block next_block();
  u64 next_u64();
  // Fills out with uniform elements of Z_2^w.
  void fill(std::span<u64> out, int w = 64);
  void fill_bytes(std::span<uint8_t> out);

 private:
  static constexpr int kBuf = 32;
  void refill();
  Aes128 aes_;
  Block ctr_;
  Block buf_[kBuf];
  int buf_pos_ = kBuf;
};

// out[i] = AES_K(in[i]) xor in[i] for the project's public fixed key K.
void fixed_key_hash(const Block* in, Block* out, size_t n);

// A fresh seed from the operating system's entropy source.
Block random_seed();

}  // namespace aero::mpc
