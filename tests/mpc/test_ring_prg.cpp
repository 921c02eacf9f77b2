// Ring helpers, bit packing and the AES-based PRGs.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "mpc/prg.h"
#include "mpc/ring.h"

using namespace aero::mpc;

TEST(MpcRing, PackUnpackEveryWidthAndAwkwardSize) {
  aero::Rng rng(1);
  for (int w = 1; w <= 64; ++w) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(63), size_t(1001)}) {
      std::vector<u64> v(n);
      for (auto& x : v) x = rng.next_u64();  // high bits must be dropped
      auto packed = pack_bits(v, w);
      ASSERT_EQ(packed.size(), (n * w + 7) / 8);
      std::vector<u64> back(n);
      unpack_bits(packed, w, back);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(back[i], mod_w(v[i], w)) << "w=" << w << " i=" << i;
    }
  }
}

TEST(MpcRing, UnpackRejectsWrongSize) {
  std::vector<uint8_t> b(5);
  std::vector<u64> out(4);
  EXPECT_THROW(unpack_bits(b, 12, out), aero::Error);
}

TEST(MpcRing, SignedAndFixedPoint) {
  EXPECT_EQ(to_signed(ring_mask(37), 37), -1);
  EXPECT_EQ(to_signed(u64(1) << 36, 37), -(i64(1) << 36));
  EXPECT_EQ(to_signed((u64(1) << 36) - 1, 37), (i64(1) << 36) - 1);
  Fixed f{24, 12};
  for (double v : {0.0, 1.5, -3.25, 100.0, -0.000244140625})
    EXPECT_DOUBLE_EQ(f.decode(f.encode(v)), v);
}

TEST(MpcPrg, AesKnownAnswer) {
  // FIPS-197 appendix C.1: key 000102..0f, plaintext 00112233..ff.
  uint8_t key[16], pt[16];
  for (int i = 0; i < 16; ++i) {
    key[i] = uint8_t(i);
    pt[i] = uint8_t(i * 0x11);
  }
  Block k, p;
  std::memcpy(&k, key, 16);
  std::memcpy(&p, pt, 16);
  const uint8_t want[16] = {0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30,
                            0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a};
  Block in[9], out[9];  // 9 blocks: exercises the 8-wide and the single-block paths
  for (auto& b : in) b = p;
  Aes128(k).encrypt(in, out, 9);
  for (auto& b : out) EXPECT_EQ(std::memcmp(&b, want, 16), 0);
}

TEST(MpcPrg, DeterministicPerSeedAndBalanced) {
  Prg a(Block{1, 2}), b(Block{1, 2}), c(Block{1, 3});
  std::vector<u64> va(4096), vb(4096), vc(4096);
  a.fill(va);
  b.fill(vb);
  c.fill(vc);
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  // Bit balance: 4096 x 64 bits, expect half ones within 5 sigma.
  double ones = 0;
  for (u64 x : va) ones += __builtin_popcountll(x);
  const double n = 4096.0 * 64, sigma = std::sqrt(n / 4);
  EXPECT_NEAR(ones, n / 2, 5 * sigma);
  std::vector<u64> narrow(1000);
  Prg(Block{9, 9}).fill(narrow, 5);
  for (u64 x : narrow) EXPECT_LT(x, 32u);
}
