// DPF and DCF against their definitions: every input width 1..64, several output widths,
// payloads of one to three elements, edge inputs (x = alpha, alpha +- 1, 0, all ones), through
// the dealer's key stream (so serialization is covered too).
#include <gtest/gtest.h>

#include "core/rng.h"
#include "mpc/dcf.h"
#include "mpc/dpf.h"

using namespace aero::mpc;

namespace {
struct Streams {
  KeyReader r0, r1;
};
template <class Deal>
Streams deal(Deal f) {
  Dealer d(Block{77, 88});
  f(d);
  return {KeyReader(0, d.take(0)), KeyReader(1, d.take(1))};
}
std::vector<u64> probes(aero::Rng& rng, u64 alpha, int n) {
  const u64 m = ring_mask(n);
  return {alpha & m, (alpha + 1) & m, (alpha - 1) & m, 0, m, rng.next_u64() & m, rng.next_u64() & m};
}
}  // namespace

TEST(MpcFss, DcfAllInputWidths) {
  aero::Rng rng(5);
  for (int n = 1; n <= 64; ++n) {
    for (int payload : {1, 2, 3}) {
      int ob = n % 3 == 0 ? 64 : (n % 3 == 1 ? 1 + n / 2 : 37);
      if (payload == 3) ob = n % 3 == 0 ? 42 : (n % 3 == 1 ? 1 + n / 2 % 42 : 40);  // 3 elements: out_bits <= 42
      DcfParams p{n, ob, payload};
      const size_t keys = 3;  // x 7 probes = 21: one full lockstep group of 16 plus 5
      std::vector<u64> alpha(keys), beta(keys * payload);
      for (auto& a : alpha) a = rng.next_u64() & ring_mask(n);
      alpha[0] = 0;
      alpha[1] = ring_mask(n);
      for (auto& b : beta) b = rng.next_u64() & ring_mask(ob);
      // Each key is probed at 7 points: replicate alpha/beta per probe.
      std::vector<u64> A, B, X;
      for (size_t i = 0; i < keys; ++i)
        for (u64 x : probes(rng, alpha[i], n)) {
          A.push_back(alpha[i]);
          for (int k = 0; k < payload; ++k) B.push_back(beta[i * payload + k]);
          X.push_back(x);
        }
      auto s = deal([&](Dealer& d) { dcf_deal(d, p, A, B); });
      DcfKeys k0 = dcf_read(s.r0, p, A.size()), k1 = dcf_read(s.r1, p, A.size());
      EXPECT_EQ(s.r0.remaining(), 0u);
      EXPECT_EQ(s.r1.remaining(), 0u);
      std::vector<u64> y0(X.size() * payload), y1(X.size() * payload);
      dcf_eval(0, k0, X, y0);
      dcf_eval(1, k1, X, y1);
      for (size_t i = 0; i < X.size(); ++i)
        for (int k = 0; k < payload; ++k) {
          const u64 want = X[i] < A[i] ? B[i * payload + k] : 0;
          ASSERT_EQ(mod_w(y0[i * payload + k] + y1[i * payload + k], ob), want)
              << "n=" << n << " payload=" << payload << " x=" << X[i] << " alpha=" << A[i];
        }
      // A single key's share alone is not the answer (it is pseudo-random).
      if (ob >= 32) { EXPECT_NE(y0[0], X[0] < A[0] ? B[0] : 0); }
    }
  }
}

TEST(MpcFss, DpfAllInputWidths) {
  aero::Rng rng(6);
  for (int n = 1; n <= 64; ++n) {
    const int ob = n % 2 ? 64 : 1 + n / 3;
    DpfParams p{n, ob};
    std::vector<u64> A, B, X;
    for (int i = 0; i < 6; ++i) {
      u64 a = rng.next_u64() & ring_mask(n), b = rng.next_u64() & ring_mask(ob);
      for (u64 x : probes(rng, a, n)) {
        A.push_back(a);
        B.push_back(b);
        X.push_back(x);
      }
    }
    auto s = deal([&](Dealer& d) { dpf_deal(d, p, A, B); });
    DpfKeys k0 = dpf_read(s.r0, p, A.size()), k1 = dpf_read(s.r1, p, A.size());
    std::vector<u64> y0(X.size()), y1(X.size());
    dpf_eval(0, k0, X, y0);
    dpf_eval(1, k1, X, y1);
    for (size_t i = 0; i < X.size(); ++i)
      ASSERT_EQ(mod_w(y0[i] + y1[i], ob), X[i] == A[i] ? B[i] : 0)
          << "n=" << n << " x=" << X[i] << " alpha=" << A[i];
  }
}

TEST(MpcFss, DpfFullDomainMatchesPointwise) {
  aero::Rng rng(7);
  for (int n : {1, 2, 3, 5, 8, 11, 13}) {
    DpfParams p{n, 40};
    std::vector<u64> A(3), B(3);
    for (int i = 0; i < 3; ++i) {
      A[i] = rng.next_u64() & ring_mask(n);
      B[i] = rng.next_u64() & ring_mask(40);
    }
    auto s = deal([&](Dealer& d) { dpf_deal(d, p, A, B); });
    DpfKeys k0 = dpf_read(s.r0, p, 3), k1 = dpf_read(s.r1, p, 3);
    const size_t dom = size_t(1) << n;
    std::vector<u64> e0(dom), e1(dom);
    for (size_t i = 0; i < 3; ++i) {
      dpf_eval_all(0, k0, i, e0);
      dpf_eval_all(1, k1, i, e1);
      for (size_t x = 0; x < dom; ++x)
        ASSERT_EQ(mod_w(e0[x] + e1[x], 40), x == A[i] ? B[i] : 0) << "n=" << n << " x=" << x;
      // Point evaluation agrees with the full-domain shares (party 0's share itself).
      std::vector<u64> xs = {A[i]}, y(1);
      DpfKeys one = k0;
      one.n = 1;
      one.seed = {k0.seed[i]};
      one.scw.assign(k0.scw.begin() + i * n, k0.scw.begin() + (i + 1) * n);
      one.tcw.assign(k0.tcw.begin() + i * n, k0.tcw.begin() + (i + 1) * n);
      one.fcw = {k0.fcw[i]};
      dpf_eval(0, one, xs, y);
      EXPECT_EQ(y[0], e0[A[i]]);
    }
  }
}

// Dual payload (DpfParams::dual, used by mpc::lut_sel): one tree, both payloads on alpha.
TEST(MpcFss, DpfDualPayloadFullDomain) {
  aero::Rng rng(8);
  for (int n : {1, 4, 9})
    for (int ob : {1, 23, 64}) {
      DpfParams p{n, ob, true};
      std::vector<u64> A(5), B(5), B2(5);
      for (int i = 0; i < 5; ++i) {
        A[i] = rng.next_u64() & ring_mask(n);
        B[i] = rng.next_u64() & ring_mask(ob);
        B2[i] = i == 0 ? 0 : rng.next_u64() & ring_mask(ob);
      }
      auto s = deal([&](Dealer& d) { dpf_deal(d, p, A, B, B2); });
      DpfKeys k0 = dpf_read(s.r0, p, 5), k1 = dpf_read(s.r1, p, 5);
      EXPECT_EQ(s.r0.remaining(), 0u);
      EXPECT_EQ(s.r1.remaining(), 0u);
      const size_t dom = size_t(1) << n;
      std::vector<u64> e0(dom), e1(dom), f0(dom), f1(dom);
      for (size_t i = 0; i < 5; ++i) {
        dpf_eval_all(0, k0, i, e0, f0);
        dpf_eval_all(1, k1, i, e1, f1);
        for (size_t x = 0; x < dom; ++x) {
          ASSERT_EQ(mod_w(e0[x] + e1[x], ob), x == A[i] ? B[i] : 0) << "n=" << n << " x=" << x;
          ASSERT_EQ(mod_w(f0[x] + f1[x], ob), x == A[i] ? B2[i] : 0) << "n=" << n << " x=" << x;
        }
      }
    }
}

// Early termination (DpfParams::leaf_bits, the one-round exp's table) and evaluation on an
// interval (dpf_eval_range): point, full-domain and range evaluation against the definition,
// every leaf_bits 0..3 that fits, awkward widths, alphas at both ends of the domain, ranges
// that wrap, start at alpha's neighbours or cover the whole domain.
TEST(MpcFss, DpfEarlyTerminationAndRanges) {
  aero::Rng rng(9);
  for (int n : {1, 2, 3, 5, 9, 14})
    for (int L = 0; L <= std::min(3, n); ++L)
      for (int ob : {17, 64}) {
        DpfParams p{n, ob, false, L};
        const size_t dom = size_t(1) << n, K = 4;
        std::vector<u64> A(K), B(K);
        for (size_t i = 0; i < K; ++i) A[i] = rng.next_u64() & ring_mask(n), B[i] = rng.next_u64() & ring_mask(ob);
        A[0] = 0, A[1] = ring_mask(n);
        auto s = deal([&](Dealer& d) { dpf_deal(d, p, A, B); });
        DpfKeys k0 = dpf_read(s.r0, p, K), k1 = dpf_read(s.r1, p, K);
        EXPECT_EQ(s.r0.remaining(), 0u);
        EXPECT_EQ(s.r1.remaining(), 0u);
        EXPECT_EQ(dpf_key_bytes(p, K, 1) - dpf_key_bytes(p, K, 0), 16 * K);
        std::vector<u64> e0(dom), e1(dom);
        for (size_t i = 0; i < K; ++i) {
          const std::string what = "n=" + std::to_string(n) + " L=" + std::to_string(L) + " ob=" + std::to_string(ob);
          dpf_eval_all(0, k0, i, e0);
          dpf_eval_all(1, k1, i, e1);
          for (size_t x = 0; x < dom; ++x) ASSERT_EQ(mod_w(e0[x] + e1[x], ob), x == A[i] ? B[i] : 0) << what << " x=" << x;
          // Point evaluation: the same shares.
          std::vector<u64> X(K, A[i]), y0(K), y1(K);
          for (size_t q = 0; q < K; ++q) X[q] = (A[i] + q * 3 + dom - 1) & (dom - 1);
          // evaluate key i at X: copy key i K times
          DpfKeys one0 = k0, one1 = k1;
          for (DpfKeys* k : {&one0, &one1}) {
            const DpfKeys& src = k == &one0 ? k0 : k1;
            const size_t lv = size_t(n - L), m = size_t(1) << L;
            for (size_t q = 0; q < K; ++q) {
              k->seed[q] = src.seed[i];
              for (size_t j = 0; j < lv; ++j) k->scw[q * lv + j] = src.scw[i * lv + j], k->tcw[q * lv + j] = src.tcw[i * lv + j];
              for (size_t e = 0; e < m; ++e) k->fcw[q * m + e] = src.fcw[i * m + e];
            }
          }
          dpf_eval(0, one0, X, y0);
          dpf_eval(1, one1, X, y1);
          for (size_t q = 0; q < K; ++q) {
            ASSERT_EQ(y0[q], e0[X[q]]) << what;
            ASSERT_EQ(y1[q], e1[X[q]]) << what;
          }
          // Ranges: each party's range shares equal its full-domain shares.
          for (size_t len : {size_t(1), size_t(2), std::min<size_t>(dom, 7), std::min<size_t>(dom, 37), dom})
            for (u64 lo : {A[i], (A[i] + dom - len / 2) & (dom - 1), dom - 1, u64(0), rng.next_u64() & (dom - 1)}) {
              std::vector<u64> r0(len), r1(len);
              dpf_eval_range(0, k0, i, lo, r0);
              dpf_eval_range(1, k1, i, lo, r1);
              for (size_t t = 0; t < len; ++t) {
                ASSERT_EQ(r0[t], e0[(lo + t) & (dom - 1)]) << what << " lo=" << lo << " len=" << len << " t=" << t;
                ASSERT_EQ(r1[t], e1[(lo + t) & (dom - 1)]) << what << " lo=" << lo << " len=" << len << " t=" << t;
              }
            }
        }
        EXPECT_LE(dpf_eval_range_aes(p, dom), dpf_eval_all_aes(p) + 2.0 * n + 4);
      }
  EXPECT_EQ(dpf_eval_all_aes({14, 64, false, 3}), 2.0 * 2047 + 2048 * 4);
}

TEST(MpcFss, KeyStreamOutOfStepIsAClearError) {
  DcfParams p{8, 16, 1};
  std::vector<u64> a(4, 3), b(4, 1);
  auto s = deal([&](Dealer& d) { dcf_deal(d, p, a, b); });
  try {
    dpf_read(s.r1, {8, 16}, 4);  // reads a DPF where the dealer wrote a DCF
    FAIL() << "expected an error";
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of step"), std::string::npos) << e.what();
  }
  auto s2 = deal([&](Dealer& d) { dcf_deal(d, p, a, b); });
  EXPECT_THROW(dcf_read(s2.r0, p, 5), aero::Error);  // wrong count
}

TEST(MpcFss, KeyBytesMatchFormula) {
  for (int n : {1, 12, 37, 64}) {
    DcfParams p{n, 37, 1};
    std::vector<u64> a(10, 1), b(10, 1);
    Dealer d(Block{1, 1});
    dcf_deal(d, p, a, b);
    EXPECT_EQ(d.take(1).size(), dcf_key_bytes(p, 10, 1));
    EXPECT_EQ(d.take(0).size(), dcf_key_bytes(p, 10, 0) + 16);  // + party 0's stream seed
  }
}
