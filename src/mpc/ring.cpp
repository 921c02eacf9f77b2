#include "mpc/ring.h"

#include <cstring>

namespace aero::mpc {

void pack_bits(std::span<const u64> in, int w, std::span<uint8_t> out) {
  check_width(w, "pack_bits");
  AERO_CHECK(out.size() == packed_bytes(in.size(), w), "pack_bits: output holds ", out.size(),
             " bytes, expected ", packed_bytes(in.size(), w));
  if (w == 64) {
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size() * 8);
    return;
  }
  const u64 m = ring_mask(w);
  unsigned __int128 acc = 0;
  int nbits = 0;
  size_t o = 0;
  for (u64 v : in) {
    acc |= (unsigned __int128)(v & m) << nbits;
    nbits += w;
    while (nbits >= 64) {
      u64 word = u64(acc);
      std::memcpy(out.data() + o, &word, 8);
      o += 8;
      acc >>= 64;
      nbits -= 64;
    }
  }
  while (nbits > 0) {
    out[o++] = uint8_t(acc);
    acc >>= 8;
    nbits -= 8;
  }
}

std::vector<uint8_t> pack_bits(std::span<const u64> in, int w) {
  std::vector<uint8_t> out(packed_bytes(in.size(), w));
  pack_bits(in, w, out);
  return out;
}

void unpack_bits(std::span<const uint8_t> in, int w, std::span<u64> out) {
  check_width(w, "unpack_bits");
  AERO_CHECK(in.size() == packed_bytes(out.size(), w), "unpack_bits: input holds ", in.size(),
             " bytes, expected ", packed_bytes(out.size(), w));
  if (w == 64) {
    if (!out.empty()) std::memcpy(out.data(), in.data(), out.size() * 8);
    return;
  }
  const u64 m = ring_mask(w);
  unsigned __int128 acc = 0;
  int nbits = 0;
  size_t i = 0;
  for (auto& v : out) {
    while (nbits < w) {
      if (i + 8 <= in.size()) {
        u64 word;
        std::memcpy(&word, in.data() + i, 8);
        acc |= (unsigned __int128)word << nbits;
        i += 8;
        nbits += 64;
      } else {
        acc |= (unsigned __int128)in[i++] << nbits;
        nbits += 8;
      }
    }
    v = u64(acc) & m;
    acc >>= w;
    nbits -= w;
  }
}

}  // namespace aero::mpc
