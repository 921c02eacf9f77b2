// Ring arithmetic for additive secret sharing: values live in Z_2^64 and each tensor carries
// its own bit width w (the ring actually used is Z_2^w, stored in the low w bits of a u64)
// and fixed-point scale f (a real value v is the integer round(v * 2^f), two's complement).
// Openings put exactly w bits per element on the wire (pack_bits / unpack_bits).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.h"

namespace aero::mpc {

using u64 = uint64_t;
using i64 = int64_t;

// All-ones in the low w bits (w in 1..64).
inline constexpr u64 ring_mask(int w) { return w >= 64 ? ~u64(0) : ((u64(1) << w) - 1); }
// Reduces x into Z_2^w.
inline constexpr u64 mod_w(u64 x, int w) { return x & ring_mask(w); }
// Interprets the low w bits of x as a two's-complement integer.
inline constexpr i64 to_signed(u64 x, int w) {
  if (w >= 64) return i64(x);
  const u64 m = mod_w(x, w);
  return (m >> (w - 1)) ? i64(m | ~ring_mask(w)) : i64(m);
}
inline void check_width(int w, const char* what) {
  AERO_CHECK(w >= 1 && w <= 64, what, ": bit width ", w, " is outside 1..64");
}

// Fixed-point encoding with scale f: v -> round(v * 2^f) mod 2^w.
struct Fixed {
  int width = 64;
  int scale = 0;
  u64 encode(double v) const { return mod_w(u64(i64(std::llround(std::ldexp(v, scale)))), width); }
  double decode(u64 x) const { return std::ldexp(double(to_signed(x, width)), -scale); }
};

// Number of bytes that n elements of w bits take on the wire.
inline size_t packed_bytes(size_t n, int w) { return (n * size_t(w) + 7) / 8; }

// Packs the low w bits of each element of `in` back to back (little-endian bit order).
void pack_bits(std::span<const u64> in, int w, std::span<uint8_t> out);
// Inverse of pack_bits; every output element is reduced into Z_2^w.
void unpack_bits(std::span<const uint8_t> in, int w, std::span<u64> out);
std::vector<uint8_t> pack_bits(std::span<const u64> in, int w);

}  // namespace aero::mpc
