// Shared pieces of the GGM-tree FSS schemes (DPF, DCF): the length-doubling PRG
// G(s) = H(s^0) || H(s^1) || H(s^2) || H(s^3) with H the fixed-key AES hash, where the low
// bit of a child block is its control bit t and the rest its seed (127-bit seeds, as in
// Boyle-Gilboa-Ishai CCS 2016, section 3.2), and the leaf conversion Convert(s) = H(s^4).
#pragma once
#include "mpc/prg.h"

namespace aero::mpc::fss {

enum Tweak : u64 { kLeft = 0, kRight = 1, kValueLeft = 2, kValueRight = 3, kConvert = 4 };

inline Block tweak(Block s, u64 t) { return {s.lo ^ t, s.hi}; }
inline Block clear_lsb(Block s) { return {s.lo & ~u64(1), s.hi}; }
inline int lsb(Block s) { return int(s.lo & 1); }
inline u64 bit_at(u64 x, int n, int level) { return (x >> (n - 1 - level)) & 1; }
// Group element k (0 or 1) of a converted block.
inline u64 elem(Block b, int k) { return k ? b.hi : b.lo; }
// Group element k of m per block, used mod 2^out: m <= 2 as elem; m = 3 (out <= 42): the low
// out bits of each half, then the 2 (64 - out) >= out bits above them (disjoint bits).
inline u64 elem(Block b, int k, int m, int out) {
  if (m < 3 || k < 2) return elem(b, k);
  return (b.lo >> out) | ((b.hi >> out) << (64 - out));
}

}  // namespace aero::mpc::fss
