// Every protocol against its plaintext definition, run by two parties over loopback TCP with a
// dealer: random inputs, many widths, awkward sizes. Exact where the protocol is exact; the
// stochastic truncation is checked to be floor or floor + 1 and unbiased.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "mpc/compare.h"
#include "mpc/dpf.h"
#include "mpc/linear.h"
#include "mpc/local_run.h"
#include "mpc/lut.h"
#include "mpc/truncation.h"

using namespace aero::mpc;

namespace {

std::vector<u64> random_signed(aero::Rng& rng, size_t n, int w) {
  std::vector<u64> v(n);
  for (auto& x : v) x = rng.next_u64() & ring_mask(w);
  // Edge values first.
  const u64 edges[] = {0, 1, ring_mask(w), u64(1) << (w - 1), (u64(1) << (w - 1)) - 1};
  for (size_t i = 0; i < std::min<size_t>(n, 5); ++i) v[i] = mod_w(edges[i], w);
  return v;
}

// Runs: client inputs x (width w_in) -> gate -> output revealed to the client (width w_out).
template <class Deal, class Eval>
std::vector<u64> run_gate(const std::vector<u64>& x, int w_in, int w_out, Deal deal, Eval eval,
                          LocalRunResult* res = nullptr) {
  const size_t n = x.size();
  auto program = [&](Dealer& d) {
    auto r = input_deal(d, kClient, n, w_in);
    auto ro = deal(d, r);
    output_deal(d, kClient, ro, w_out);
  };
  std::vector<u64> y;
  auto body = [&](Party& p) {
    auto xh = input_eval(p, kClient, x, n, w_in);
    auto yh = eval(p, xh);
    auto out = output_eval(p, kClient, yh, w_out);
    if (p.id == kClient) y = out;
  };
  auto r = run_local(program, body);
  if (res) *res = r;
  return y;
}

i64 floor_div(i64 x, int s) { return x >> s; }  // arithmetic shift = floor

}  // namespace

TEST(MpcProtocols, InputAndOutputRoundTrip) {
  aero::Rng rng(1);
  for (int w : {1, 13, 64}) {
    auto x = random_signed(rng, 37, w);
    auto y = run_gate(x, w, w, [](Dealer&, std::span<const u64> r) {
      return std::vector<u64>(r.begin(), r.end());
    }, [](Party&, std::span<const u64> xh) { return std::vector<u64>(xh.begin(), xh.end()); });
    EXPECT_EQ(y, x);
  }
}

TEST(MpcProtocols, FaithfulTruncationAndWidening) {
  aero::Rng rng(2);
  struct C { int n, s, out; };
  for (C c : {C{64, 12, 64}, C{50, 12, 50}, C{37, 12, 25}, C{37, 12, 37}, C{24, 8, 40},
              C{16, 0, 32}, C{8, 3, 5}, C{2, 1, 2}, C{33, 20, 64}}) {
    auto x = random_signed(rng, 131, c.n);
    TruncSpec spec{c.n, c.s, c.out, true};
    auto y = run_gate(x, c.n, c.out,
                      [&](Dealer& d, std::span<const u64> r) { return trunc_deal(d, spec, r); },
                      [&](Party& p, std::span<const u64> xh) { return trunc_eval(p, spec, xh); });
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(y[i], mod_w(u64(floor_div(to_signed(x[i], c.n), c.s)), c.out))
          << "n=" << c.n << " s=" << c.s << " out=" << c.out << " x=" << to_signed(x[i], c.n);
  }
}

// Bounded sign extension (|x| < 2^(n-2), no n-bit DCF): exact on the whole bounded range,
// including its edges, for both faithful and stochastic low parts; keys far below the DCF's.
TEST(MpcProtocols, BoundedSignExtensionIsExactWithinTheBound) {
  aero::Rng rng(21);
  struct C { int n, s, out; };
  for (C c : {C{40, 12, 64}, C{64, 42, 40}, C{40, 0, 64}, C{24, 8, 40}, C{9, 3, 20}, C{3, 1, 8}, C{64, 36, 40}}) {
    const i64 lim = i64(1) << (c.n - 2);
    std::vector<u64> x(203);
    for (auto& v : x) v = mod_w(u64(i64(rng.next_u64() % u64(2 * lim)) - lim), c.n);
    const i64 edges[] = {0, -1, 1, lim - 1, -lim, lim / 2, -lim / 2};
    for (size_t i = 0; i < 7; ++i) x[i] = mod_w(u64(edges[i]), c.n);
    for (bool faithful : {true, false}) {
      TruncSpec spec{c.n, c.s, c.out, faithful, true};
      auto y = run_gate(x, c.n, c.out, [&](Dealer& d, std::span<const u64> r) { return trunc_deal(d, spec, r); },
                        [&](Party& p, std::span<const u64> xh) { return trunc_eval(p, spec, xh); });
      for (size_t i = 0; i < x.size(); ++i) {
        const i64 f = floor_div(to_signed(x[i], c.n), c.s);
        const u64 lo = mod_w(u64(f), c.out), hi = mod_w(u64(f + 1), c.out);
        if (faithful)
          ASSERT_EQ(y[i], lo) << "n=" << c.n << " s=" << c.s << " out=" << c.out << " x=" << to_signed(x[i], c.n);
        else
          ASSERT_TRUE(y[i] == lo || y[i] == hi) << "n=" << c.n << " s=" << c.s << " x=" << to_signed(x[i], c.n);
      }
      TruncSpec full = spec;
      full.bounded = false;
      if (c.out > c.n - c.s && c.n >= 24) EXPECT_LT(trunc_key_bytes_per_element(spec, 1) + 100, trunc_key_bytes_per_element(full, 1));
    }
  }
}

TEST(MpcProtocols, StochasticTruncationIsFloorOrFloorPlusOneAndUnbiased) {
  aero::Rng rng(3);
  struct C { int n, s, out; };
  for (C c : {C{40, 12, 28}, C{40, 12, 40}, C{20, 5, 15}, C{64, 16, 64}, C{10, 9, 1}}) {
    const size_t n = 4001;
    std::vector<u64> x(n);
    // Same low fraction for all (0.25 ulp of the output): the rounding-up rate must be 1/4.
    // High part: random n - s bits (positive and negative values).
    const int hb = c.n - c.s;
    for (auto& v : x) {
      const u64 hi = rng.next_u64() >> (64 - hb);
      v = mod_w((hi << c.s) + (u64(1) << c.s) / 4, c.n);
    }
    TruncSpec spec{c.n, c.s, c.out, false};
    LocalRunResult res;
    auto y = run_gate(x, c.n, c.out,
                      [&](Dealer& d, std::span<const u64> r) { return trunc_deal(d, spec, r); },
                      [&](Party& p, std::span<const u64> xh) { return trunc_eval(p, spec, xh); }, &res);
    size_t up = 0;
    for (size_t i = 0; i < n; ++i) {
      const u64 fl = mod_w(u64(floor_div(to_signed(x[i], c.n), c.s)), c.out);
      ASSERT_TRUE(y[i] == fl || y[i] == mod_w(fl + 1, c.out)) << "n=" << c.n << " x=" << x[i];
      up += y[i] != fl;
    }
    if (c.s >= 2) { EXPECT_NEAR(double(up) / n, 0.25, 0.04) << "n=" << c.n << " s=" << c.s; }
    if (spec.is_free()) {
      // Free truncate-reduce: no bytes beyond input and output, and no key for it.
      EXPECT_EQ(res.meter[0].per_op().count("trunc"), 0u);
    }
  }
}

TEST(MpcProtocols, DReLUAndReLU) {
  aero::Rng rng(4);
  struct C { int n, out; };
  for (C c : {C{1, 1}, C{2, 2}, C{8, 1}, C{8, 8}, C{17, 5}, C{37, 37}, C{50, 24}, C{64, 64}, C{64, 13}}) {
    auto x = random_signed(rng, 77, c.n);
    CompareSpec spec{c.n, c.out};
    auto b = run_gate(x, c.n, c.out,
                      [&](Dealer& d, std::span<const u64> r) { return drelu_deal(d, spec, r); },
                      [&](Party& p, std::span<const u64> xh) { return drelu_eval(p, spec, xh); });
    auto y = run_gate(x, c.n, c.out,
                      [&](Dealer& d, std::span<const u64> r) { return relu_deal(d, spec, r); },
                      [&](Party& p, std::span<const u64> xh) { return relu_eval(p, spec, xh); });
    for (size_t i = 0; i < x.size(); ++i) {
      const i64 v = to_signed(x[i], c.n);
      ASSERT_EQ(b[i], v >= 0 ? 1u : 0u) << "n=" << c.n << " x=" << v;
      ASSERT_EQ(y[i], mod_w(v >= 0 ? u64(v) : 0, c.out)) << "n=" << c.n << " x=" << v;
    }
  }
}

// relu_trunc: ReLU / leaky ReLU of floor(x / 2^s) + carry from one DCF, on bounded inputs
// (|x| < 2^(n-2)), any output width; exact when s = 0 and slope = 0, otherwise each carry is
// 0 or 1 (X in {floor, floor + 1}, and N in {floor(slope X / 2^sf), + 1}).
TEST(MpcProtocols, TruncatingReluAndLeakyRelu) {
  aero::Rng rng(41);
  struct C { int n, s, out; i64 slope; int sf; };
  for (C c : {C{40, 12, 40, 0, 0}, C{40, 12, 40, 1229, 12}, C{28, 0, 40, 0, 0}, C{28, 0, 40, -300, 12},
              C{13, 3, 7, 0, 0}, C{64, 16, 40, 5000, 12}, C{64, 0, 42, 0, 0}, C{3, 0, 3, 0, 0}, C{10, 8, 12, 3, 2},
              C{40, 12, 42, 410, 12}, C{41, 1, 1, 0, 0}, C{28, 0, 40, 0, 12}, C{28, 0, 40, 1229, 12}}) {
    std::vector<u64> x(203);
    for (auto& v : x) v = mod_w(u64(i64(rng.next_u64() >> (64 - (c.n - 1))) - (i64(1) << (c.n - 2))), c.n);
    const i64 edges[] = {0, -1, 1, (i64(1) << (c.n - 2)) - 1, -(i64(1) << (c.n - 2)), -(i64(1) << c.s), i64(1) << c.s};
    for (size_t i = 0; i < 7; ++i) x[i] = mod_w(u64(edges[i]), c.n);
    ReluTruncSpec spec{c.n, c.s, c.out, c.slope, c.sf, c.sf > 0};  // sf > 0: leaky (slope 0 too)
    auto y = run_gate(x, c.n, c.out,
                      [&](Dealer& d, std::span<const u64> r) { return relu_trunc_deal(d, spec, r); },
                      [&](Party& p, std::span<const u64> xh) { return relu_trunc_eval(p, spec, xh); });
    for (size_t i = 0; i < x.size(); ++i) {
      const i64 v = to_signed(x[i], c.n), fl = floor_div(v, c.s);
      bool ok = false;
      for (i64 X : {fl, fl + 1}) {
        if (spec.exact() && X != fl) continue;
        if (v >= 0) ok |= y[i] == mod_w(u64(X), c.out);
        else
          for (i64 N : {floor_div(c.slope * X, c.sf), floor_div(c.slope * X, c.sf) + 1})
            ok |= y[i] == mod_w(u64(N), c.out);
      }
      if (c.slope == 0 && v < 0) ok = y[i] == 0;  // ReLU: exactly 0 on the negative side
      ASSERT_TRUE(ok) << "n=" << c.n << " s=" << c.s << " slope=" << c.slope << " x=" << v << " y=" << y[i];
    }
  }
}

TEST(MpcProtocols, LookupTables) {
  aero::Rng rng(5);
  for (int n : {1, 2, 5, 8, 10, 12}) {
    for (int ob : {1, 16, 64}) {
      LutSpec spec{n, ob, {}};
      spec.table.resize(size_t(1) << n);
      for (auto& t : spec.table) t = rng.next_u64() & ring_mask(ob);
      auto x = random_signed(rng, 19, n);
      auto y = run_gate(x, n, ob,
                        [&](Dealer& d, std::span<const u64> r) { return lut_deal(d, spec, r); },
                        [&](Party& p, std::span<const u64> xh) { return lut_eval(p, spec, xh); });
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], spec.table[x[i]]) << "n=" << n;
    }
  }
}

// Lookups with the DPF's early termination (LutSpec::leaf_bits) and tables that are zero
// outside an interval (evaluated on the matching window of DPF points: mpc::lut_support),
// including intervals that wrap around the domain, a one-entry and an all-zero table, and the
// one-round exp's shape (14-bit index, 64-bit output, a constant run then a decaying run).
TEST(MpcProtocols, LookupTablesEarlyTerminationAndWindows) {
  aero::Rng rng(25);
  for (int n : {1, 3, 9, 14})
    for (int L : {0, 1, 3}) {
      if (L > n) continue;
      const size_t dom = size_t(1) << n;
      for (int shape = 0; shape < 5; ++shape) {
        LutSpec spec{n, 64, std::vector<u64>(dom, 0), L};
        const size_t start = rng.below(dom), len = shape == 0 ? dom : shape == 1 ? 1 + rng.below(dom) : shape == 2 ? 1 : 0;
        for (size_t t = 0; t < len; ++t) spec.table[(start + t) % dom] = rng.next_u64() | 1;
        if (shape == 4)  // exp's shape: a constant on the top quarter (negative indices), decaying on [0, dom / 16)
          for (size_t i = 0; i < dom; ++i)
            spec.table[i] = i >= dom / 4 * 3 ? u64(1) << 24 : i < dom / 16 ? (u64(1) << 24) >> (i % 24) : 0;
        const LutSupport sup = lut_support(spec.table);
        if (shape == 3) EXPECT_EQ(sup.len, 0u);
        if (shape == 1 || shape == 2) EXPECT_LE(sup.len, len);
        auto x = random_signed(rng, 23, n);
        auto y = run_gate(x, n, 64,
                          [&](Dealer& d, std::span<const u64> r) { return lut_deal(d, spec, r); },
                          [&](Party& p, std::span<const u64> xh) { return lut_eval(p, spec, xh); });
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_EQ(y[i], spec.table[x[i]]) << "n=" << n << " L=" << L << " shape=" << shape << " x=" << x[i];
        EXPECT_LE(lut_aes_per_element(spec), dpf_eval_all_aes({n, 64, false, L}) + 2.0 * n + 4);
      }
    }
}

// The one-round exp's index (pi::SecureExec::exp_lookup): the free stochastic truncate-reduce
// of a 20-bit masked value by 6 feeding a 14-bit lookup. With T[i] = i the output is
// floor(x / 64) + c, c in {0, 1}; over 4000 masks of the same x the carry's frequency is
// (x mod 64) / 64 within 5 sigma (the distribution pi::FixedExec draws by hash).
TEST(MpcProtocols, FreeTruncateReduceIndexesALookup) {
  const int w = 20, s = 6, nb = w - s;
  LutSpec spec{nb, 64, std::vector<u64>(size_t(1) << nb), 3};
  for (size_t i = 0; i < spec.table.size(); ++i) spec.table[i] = u64(to_signed(i, nb));  // signed index, sign-extended
  for (i64 x : {i64(0), i64(63), i64(-1), i64(5 * 64 + 13), i64(-(200 * 64) + 40), i64((1 << 18) - 1)}) {
    const size_t n = 4000;
    std::vector<u64> xs(n, mod_w(u64(x), w));
    auto y = run_gate(xs, w, 64,
                      [&](Dealer& d, std::span<const u64> r) { return lut_deal(d, spec, trunc_free_mask(r, w, s)); },
                      [&](Party& p, std::span<const u64> xh) { return lut_eval(p, spec, trunc_free_eval(xh, w, s)); });
    size_t carries = 0;
    for (size_t i = 0; i < n; ++i) {
      const i64 c = i64(y[i]) - (x >> s);
      ASSERT_TRUE(c == 0 || c == 1) << "x=" << x << " y=" << i64(y[i]);
      carries += size_t(c);
    }
    const double p = double(x & 63) / 64.0, sd = std::sqrt(p * (1 - p) / double(n));
    EXPECT_NEAR(double(carries) / double(n), p, 5 * sd + 1e-12) << "x=" << x;
  }
}

// Selected lookup: y_i = sum_k s_(k,i) T_k[x_(k,i)], one opening; selector bits opened mod 2,
// several terms, awkward sizes.
TEST(MpcProtocols, SelectedLookupTables) {
  aero::Rng rng(15);
  for (int n : {1, 5, 9})
    for (int ob : {1, 27, 64})
      for (size_t K : {size_t(1), size_t(3)})
        for (size_t m : {size_t(1), size_t(19)}) {
          LutSelSpec spec{n, ob, K, {}};
          for (size_t k = 0; k < K; ++k) {
            spec.tables.emplace_back(size_t(1) << n);
            for (auto& t : spec.tables.back()) t = rng.next_u64() & ring_mask(ob);
          }
          auto x = random_signed(rng, K * m, n);
          std::vector<u64> sel(K * m);
          for (auto& b : sel) b = rng.next_u64() & 1;
          std::vector<u64> y;
          LocalRunResult res = run_local(
              [&](Dealer& d) {
                auto rx = input_deal(d, kClient, K * m, n);
                auto rs = input_deal(d, kClient, K * m, 1);
                auto ro = lut_sel_deal(d, spec, rx, rs);
                output_deal(d, kClient, ro, ob);
              },
              [&](Party& p) {
                auto xh = input_eval(p, kClient, x, K * m, n);
                auto sh = input_eval(p, kClient, sel, K * m, 1);
                auto yh = lut_sel_eval(p, spec, xh, sh);
                auto out = output_eval(p, kClient, yh, ob);
                if (p.id == kClient) y = out;
              });
          ASSERT_EQ(y.size(), m);
          for (size_t i = 0; i < m; ++i) {
            u64 want = 0;
            for (size_t k = 0; k < K; ++k) want += sel[k * m + i] * spec.tables[k][x[k * m + i]];
            ASSERT_EQ(y[i], mod_w(want, ob)) << "n=" << n << " ob=" << ob << " K=" << K << " i=" << i;
          }
          EXPECT_EQ(res.meter[0].per_op().at("lut_sel").rounds, 1u);
        }
}

// Vector-payload selected lookup (mpc::lut_vec): y_i[c] = sum_k s_(k,i) T_k[x_(k,i)] z'_(k,i)[c]
// in one opening, against the plain computation: awkward index / output / vector widths, 1 or 3
// terms, odd widths and row counts, the vector on the output's ring, on a wider ring (reduced)
// or a narrower one (sign-extended in the payload, bounded rule), per-term free truncate-reduce
// shifts (the product then uses floor(z / 2^shift) + a carry) and the local share truncation of
// the output (floor((y + 2^(s-1)) / 2^s) + {-1, 0, 1}, unbiased).
namespace {
struct VecCase {
  int in, out, vec;
  size_t K, n, m;
  std::vector<int> shift;
  int os;
};
std::vector<u64> run_lut_vec(const LutVecSpec& spec, const std::vector<u64>& x, const std::vector<u64>& sel,
                             const std::vector<u64>& z, LocalRunResult* res = nullptr) {
  std::vector<u64> y;
  const size_t Kn = x.size();
  LocalRunResult r = run_local(
      [&](Dealer& d) {
        auto rx = input_deal(d, kClient, Kn, spec.in_bits);
        auto rs = input_deal(d, kClient, Kn, 1);
        auto rz = input_deal(d, kServer, z.size(), spec.vec_bits);
        output_deal(d, kClient, lut_vec_deal(d, spec, rx, rs, rz), spec.open_bits());
      },
      [&](Party& p) {
        auto xh = input_eval(p, kClient, x, Kn, spec.in_bits);
        auto sh = input_eval(p, kClient, sel, Kn, 1);
        auto zh = input_eval(p, kServer, z, z.size(), spec.vec_bits);
        auto out = output_eval(p, kClient, lut_vec_eval(p, spec, xh, sh, zh), spec.open_bits());
        if (p.id == kClient) y = out;
      });
  if (res) *res = std::move(r);
  return y;
}
}  // namespace

TEST(MpcProtocols, VectorPayloadSelectedLookup) {
  aero::Rng rng(27);
  const std::vector<VecCase> cases = {
      {1, 13, 13, 1, 1, 1, {}, 0},      {3, 40, 40, 3, 5, 7, {}, 0},     {8, 64, 64, 3, 2, 19, {}, 0},
      {5, 40, 64, 2, 3, 4, {}, 0},      {8, 49, 64, 1, 4, 9, {}, 0},     {4, 64, 52, 2, 3, 5, {}, 0},
      {6, 64, 64, 3, 4, 6, {0, 5, 16}, 0}, {2, 40, 48, 3, 3, 3, {2, 0, 9}, 0}, {8, 64, 64, 2, 3, 11, {}, 24},
      {3, 64, 64, 3, 5, 5, {0, 12, 16}, 24}, {5, 49, 49, 2, 2, 8, {}, 7},   {7, 34, 30, 1, 3, 2, {1}, 3},
  };
  for (const auto& vc : cases) {
    SCOPED_TRACE(testing::Message() << "in " << vc.in << " out " << vc.out << " vec " << vc.vec << " K " << vc.K
                                    << " n " << vc.n << " m " << vc.m << " os " << vc.os);
    LutVecSpec spec{vc.in, vc.out, vc.vec, vc.K, vc.m, {}, vc.shift, vc.os};
    for (size_t k = 0; k < vc.K; ++k) {
      spec.tables.emplace_back(size_t(1) << vc.in);
      for (auto& t : spec.tables.back()) t = rng.next_u64() & ring_mask(vc.out);
    }
    bool shifted = false;
    for (size_t k = 0; k < vc.K; ++k) shifted |= spec.term_shift(k) > 0;
    // z within every term's bound (|z >> shift| < 2^(ring - 2)); edge values first.
    const int zb = std::min(vc.vec, 64) - 3;
    std::vector<u64> z(vc.n * vc.m);
    for (size_t q = 0; q < z.size(); ++q) {
      i64 v = i64(rng.next_u64() & ring_mask(zb + 1)) - (i64(1) << zb);
      if (q == 0) v = (i64(1) << zb) - 1;
      if (q == 1) v = -(i64(1) << zb);
      z[q] = mod_w(u64(v), vc.vec);
    }
    auto x = random_signed(rng, vc.K * vc.n, vc.in);
    // With shifts each row selects at most one term (so the carry of one term is in play).
    std::vector<u64> sel(vc.K * vc.n);
    for (size_t i = 0; i < vc.n; ++i) {
      const size_t pick = rng.below(vc.K + 1);
      for (size_t k = 0; k < vc.K; ++k) sel[k * vc.n + i] = shifted ? u64(k == pick) : rng.next_u64() & 1;
    }
    LocalRunResult res;
    auto y = run_lut_vec(spec, x, sel, z, &res);
    ASSERT_EQ(y.size(), vc.n * vc.m);
    const int ob = spec.open_bits();
    for (size_t i = 0; i < vc.n; ++i)
      for (size_t c = 0; c < vc.m; ++c) {
        // Candidate products (the carry of a shifted term: 0 or 1).
        std::vector<u64> cand{0};
        for (size_t k = 0; k < vc.K; ++k) {
          if (!sel[k * vc.n + i]) continue;
          const u64 T = spec.tables[k][x[k * vc.n + i]];
          const int sh = spec.term_shift(k);
          const i64 zf = to_signed(z[i * vc.m + c], vc.vec) >> sh;
          std::vector<u64> next;
          for (u64 b : cand)
            for (i64 carry = 0; carry <= (sh > 0); ++carry) next.push_back(b + T * u64(zf + carry));
          cand = next;
        }
        bool ok = false;
        for (u64 P : cand) {
          P = mod_w(P, vc.out);
          if (!vc.os) {
            ok |= y[i * vc.m + c] == P;
            continue;
          }
          const u64 want = mod_w(P + (u64(1) << (vc.os - 1)), vc.out) >> vc.os;
          for (u64 e : {u64(0), u64(1), u64(-1)}) ok |= y[i * vc.m + c] == mod_w(want + e, ob);
        }
        ASSERT_TRUE(ok) << "row " << i << " entry " << c << ": got " << y[i * vc.m + c];
      }
    EXPECT_EQ(res.meter[0].per_op().at("lut_vec").rounds, 1u);
    EXPECT_EQ(res.meter[0].per_op().at("lut_vec").bytes_sent, 40 + packed_bytes(vc.n * vc.m, ob));
  }
  // The local share truncation is unbiased: one row of 3000 equal products, mean error ~ 0.
  LutVecSpec spec{2, 64, 64, 1, 3000, {std::vector<u64>(4, 12345)}, {}, 20};
  std::vector<u64> z(3000, 987654321), x{1}, sel{1};
  auto y = run_lut_vec(spec, x, sel, z);
  const double exact = 12345.0 * 987654321.0 / double(1 << 20);
  double mean = 0;
  for (u64 v : y) mean += double(v) - exact;
  mean /= double(y.size());
  EXPECT_LT(std::abs(mean), 0.1) << "mean error " << mean << " ulp";
}

// Two client inputs through a binary gate.
template <class Deal, class Eval>
std::vector<u64> run_binary(const std::vector<u64>& a, const std::vector<u64>& b, int w,
                            int w_out, size_t n_out, Deal deal, Eval eval) {
  auto program = [&](Dealer& d) {
    auto ra = input_deal(d, kClient, a.size(), w);
    auto rb = input_deal(d, kServer, b.size(), w);
    output_deal(d, kClient, deal(d, ra, rb), w_out);
  };
  std::vector<u64> y;
  run_local(program, [&](Party& p) {
    auto ah = input_eval(p, kClient, a, a.size(), w);
    auto bh = input_eval(p, kServer, b, b.size(), w);
    auto out = output_eval(p, kClient, eval(p, ah, bh), w_out);
    if (p.id == kClient) y = out;
    EXPECT_EQ(out.size(), p.id == kClient ? n_out : 0);
  });
  return y;
}

TEST(MpcProtocols, SecretTimesSecretMatmulAndElementwise) {
  aero::Rng rng(6);
  for (int w : {7, 37, 64}) {
    for (MatShape s : {MatShape{1, 1, 1}, MatShape{3, 5, 7}, MatShape{17, 33, 9}}) {
      auto a = random_signed(rng, s.m * s.k, w), b = random_signed(rng, s.k * s.n, w);
      auto c = run_binary(a, b, w, w, s.m * s.n,
          [&](Dealer& d, auto ra, auto rb) { return matmul_ss_deal(d, s, ra, rb, w); },
          [&](Party& p, auto ah, auto bh) { return matmul_ss_eval(p, s, ah, bh, w); });
      std::vector<u64> want(s.m * s.n, 0);
      gemm_acc(s, a.data(), b.data(), want.data());
      for (auto& v : want) v = mod_w(v, w);
      ASSERT_EQ(c, want) << "w=" << w << " shape " << s.m << "x" << s.k << "x" << s.n;
    }
    auto a = random_signed(rng, 101, w), b = random_signed(rng, 101, w);
    auto c = run_binary(a, b, w, w, 101,
        [&](Dealer& d, auto ra, auto rb) { return mul_deal(d, ra, rb, w); },
        [&](Party& p, auto ah, auto bh) { return mul_eval(p, ah, bh, w); });
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(c[i], mod_w(a[i] * b[i], w));
  }
}

TEST(MpcProtocols, MatmulWithServerWeightsMaskedOncePerModel) {
  aero::Rng rng(7);
  const Block model_seed{42, 43};
  for (int w : {9, 40, 64}) {
    for (MatShape s : {MatShape{1, 1, 1}, MatShape{5, 12, 3}, MatShape{13, 64, 31}}) {
      auto x = random_signed(rng, s.m * s.k, w), W = random_signed(rng, s.k * s.n, w);
      // Two inferences with the same masked weights W^ (sent once).
      std::vector<u64> y[2];
      auto program = [&](Dealer& d) {
        auto r_w = weight_mask(model_seed, 7, s.k * s.n, w);
        for (int run = 0; run < 2; ++run) {
          auto r = input_deal(d, kClient, x.size(), w);
          output_deal(d, kClient, matmul_w_deal(d, s, r, r_w, w), w);
        }
      };
      auto res = run_local(program, [&](Party& p) {
        std::vector<u64> w_hat(s.k * s.n), w_plain;
        {
          OpScope scope(p.peer, "weights");
          if (p.id == kServer) {
            w_plain = W;
            w_hat = mask_weights(W, weight_mask(model_seed, 7, s.k * s.n, w), w);
            p.peer.send_ring(w_hat, w);
          } else {
            p.peer.recv_ring(w_hat, w);
          }
        }
        for (int run = 0; run < 2; ++run) {
          auto xh = input_eval(p, kClient, x, x.size(), w);
          auto out = output_eval(p, kClient, matmul_w_eval(p, s, xh, w_hat, w_plain, w), w);
          if (p.id == kClient) y[run] = out;
        }
      });
      std::vector<u64> want(s.m * s.n, 0);
      gemm_acc(s, x.data(), W.data(), want.data());
      for (auto& v : want) v = mod_w(v, w);
      ASSERT_EQ(y[0], want) << "w=" << w;
      ASSERT_EQ(y[1], want) << "w=" << w;
      // One round per product; output opened at w bits each way (plus a 40-byte header).
      const auto& op = res.meter[0].per_op().at("matmul_w");
      EXPECT_EQ(op.rounds, 2u);
      EXPECT_EQ(op.bytes_sent, 2 * (packed_bytes(s.m * s.n, w) + 40));
    }
  }
}

TEST(MpcProtocols, SelectWithComparisonBit) {
  aero::Rng rng(8);
  const int w = 29;
  const size_t n = 53;
  auto a = random_signed(rng, n, w), b = random_signed(rng, n, w);
  // max(a, b) = select(DReLU(a - b), a, b), all on masked wires.
  auto program = [&](Dealer& d) {
    auto ra = input_deal(d, kClient, n, w);
    auto rb = input_deal(d, kServer, n, w);
    std::vector<u64> rd(n);
    for (size_t i = 0; i < n; ++i) rd[i] = mod_w(ra[i] - rb[i], w);
    auto rbit = drelu_deal(d, {w, w}, rd);
    output_deal(d, kClient, select_deal(d, rbit, ra, rb, w), w);
  };
  std::vector<u64> y;
  run_local(program, [&](Party& p) {
    auto ah = input_eval(p, kClient, a, n, w);
    auto bh = input_eval(p, kServer, b, n, w);
    std::vector<u64> dh(n);
    for (size_t i = 0; i < n; ++i) dh[i] = mod_w(ah[i] - bh[i], w);
    auto bit = drelu_eval(p, {w, w}, dh);
    auto out = output_eval(p, kClient, select_eval(p, bit, ah, bh, w), w);
    if (p.id == kClient) y = out;
  });
  for (size_t i = 0; i < n; ++i) {
    const i64 av = to_signed(a[i], w), bv = to_signed(b[i], w);
    const i64 d = to_signed(mod_w(a[i] - b[i], w), w);  // the ring difference decides
    ASSERT_EQ(y[i], d >= 0 ? a[i] : b[i]) << av << " vs " << bv;
  }
}

TEST(MpcProtocols, FixedPointLayerWithFusedTruncationWithinStatedError) {
  // x (scale 12) -> x W (scale 24, 40 bits, one round) -> free stochastic truncate-reduce by
  // 12 (28 bits, scale 12, no round) -> ReLU (one round). Error: < 1 ulp (2^-12) per output.
  aero::Rng rng(9);
  const MatShape s{7, 48, 5};
  const Fixed f12{40, 12};
  std::vector<double> xf(s.m * s.k), wf(s.k * s.n);
  for (auto& v : xf) v = rng.normal();
  for (auto& v : wf) v = 0.2 * rng.normal();
  std::vector<u64> x(xf.size()), W(wf.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = f12.encode(xf[i]);
  for (size_t i = 0; i < W.size(); ++i) W[i] = f12.encode(wf[i]);
  const Block ms{1, 1};
  auto program = [&](Dealer& d) {
    auto r = input_deal(d, kClient, x.size(), 40);
    auto ry = matmul_w_deal(d, s, r, weight_mask(ms, 0, W.size(), 40), 40);
    auto rt = trunc_free_mask(ry, 40, 12);
    output_deal(d, kClient, relu_deal(d, {28, 28}, rt), 28);
  };
  std::vector<u64> y;
  auto res = run_local(program, [&](Party& p) {
    std::vector<u64> w_hat(W.size()), w_plain;
    if (p.id == kServer) {
      w_plain = W;
      w_hat = mask_weights(W, weight_mask(ms, 0, W.size(), 40), 40);
      p.peer.send_ring(w_hat, 40);
    } else {
      p.peer.recv_ring(w_hat, 40);
    }
    auto xh = input_eval(p, kClient, x, x.size(), 40);
    auto yh = matmul_w_eval(p, s, xh, w_hat, w_plain, 40);
    auto th = trunc_free_eval(yh, 40, 12);
    auto out = output_eval(p, kClient, relu_eval(p, {28, 28}, th), 28);
    if (p.id == kClient) y = out;
  });
  const Fixed out{28, 12};
  for (size_t i = 0; i < s.m; ++i)
    for (size_t j = 0; j < s.n; ++j) {
      i64 acc = 0;  // exact fixed-point product at scale 24
      for (size_t k = 0; k < s.k; ++k)
        acc += to_signed(x[i * s.k + k], 40) * to_signed(W[k * s.n + j], 40);
      const double want = std::max(0.0, std::ldexp(double(acc), -24));
      EXPECT_NEAR(out.decode(y[i * s.n + j]), want, std::ldexp(1.0, -12) + 1e-12);
    }
  // Rounds: weights (1 send, no wait), input (1 send), matmul 1, relu 1.
  EXPECT_LE(res.rounds(), 3u);
  EXPECT_EQ(res.meter[0].per_op().at("matmul_w").rounds, 1u);
  EXPECT_EQ(res.meter[0].per_op().at("relu").rounds, 1u);
}

// Batched secret x secret products (all heads in one round), with the causal variants:
// triangular output (Q K^T) and triangular left factor with public zeros (P V).
TEST(MpcProtocols, BatchedSecretMatmulCausalVariantsInOneRound) {
  aero::Rng rng(11);
  for (int w : {9, 64}) {
    for (int variant = 0; variant < 3; ++variant) {
      BatchMatShape s;
      s.batch = 3;
      s.mat = variant == 1 ? MatShape{7, 5, 7} : variant == 2 ? MatShape{6, 6, 4} : MatShape{5, 3, 11};
      s.tri_out = variant == 1;
      s.tri_a = variant == 2;
      const size_t na = s.batch * s.mat.m * s.mat.k, nb = s.batch * s.mat.k * s.mat.n;
      auto a = random_signed(rng, na, w), b = random_signed(rng, nb, w);
      auto upper = [&](size_t idx) { return s.tri_a && (idx % s.mat.k) > (idx / s.mat.k) % s.mat.m; };
      for (size_t i = 0; i < na; ++i)
        if (upper(i)) a[i] = 0;
      std::vector<u64> c;
      LocalRunResult res = run_local(
          [&](Dealer& d) {
            auto ra = input_deal(d, kClient, na, w);
            auto rb = input_deal(d, kServer, nb, w);
            for (size_t i = 0; i < na; ++i)
              if (upper(i)) ra[i] = 0;  // public zeros: mask 0
            output_deal(d, kClient, matmul_ss_batch_deal(d, s, ra, rb, w), w);
          },
          [&](Party& p) {
            auto ah = input_eval(p, kClient, a, na, w);
            auto bh = input_eval(p, kServer, b, nb, w);
            for (size_t i = 0; i < na; ++i)
              if (upper(i)) ah[i] = 0;
            auto out = output_eval(p, kClient, matmul_ss_batch_eval(p, s, ah, bh, w), w);
            if (p.id == kClient) c = out;
          });
      std::vector<u64> want;
      for (size_t bi = 0; bi < s.batch; ++bi) {
        std::vector<u64> full(s.mat.m * s.mat.n, 0);
        gemm_acc(s.mat, a.data() + bi * s.mat.m * s.mat.k, b.data() + bi * s.mat.k * s.mat.n, full.data());
        for (size_t i = 0; i < s.mat.m; ++i)
          for (size_t j = 0; j < s.mat.n; ++j)
            if (!s.tri_out || j <= i) want.push_back(mod_w(full[i * s.mat.n + j], w));
      }
      ASSERT_EQ(c.size(), s.out_count());
      ASSERT_EQ(c, want) << "w=" << w << " variant " << variant;
      EXPECT_EQ(res.meter[0].per_op().at("matmul_ss").rounds, 1u) << "all batch entries in one round";
    }
  }
}

TEST(MpcProtocols, QuadraticRowFormOpensOneValuePerRow) {
  aero::Rng rng(12);
  for (int w : {13, 64}) {
    const size_t rows = 5, cols = 9;
    const u64 a = 9, b = 1;
    auto x = random_signed(rng, rows * cols, w);
    LocalRunResult res;
    auto y = run_gate(x, w, w, [&](Dealer& d, std::span<const u64> r) { return quad_rows_deal(d, rows, cols, a, b, r, w); },
                      [&](Party& p, std::span<const u64> xh) { return quad_rows_eval(p, rows, cols, a, b, xh, w); }, &res);
    for (size_t t = 0; t < rows; ++t) {
      u64 sq = 0, s = 0;
      for (size_t i = 0; i < cols; ++i) sq += x[t * cols + i] * x[t * cols + i], s += x[t * cols + i];
      ASSERT_EQ(y[t], mod_w(a * sq - b * s * s, w)) << "w=" << w << " row " << t;
    }
    EXPECT_LT(res.meter[0].per_op().at("quad_rows").bytes_sent, 40 + rows * 8 + 8);
  }
}

// Independent gates (truncation, DReLU, ReLU, mul, LUT) evaluated side by side and opened in
// one message each way: same results as one by one, one round.
TEST(MpcProtocols, OpenManyRunsIndependentGatesInOneRound) {
  aero::Rng rng(13);
  const int w = 24;
  const size_t n = 29;
  auto x = random_signed(rng, n, w);
  for (auto& v : x) v = mod_w(u64(aero::mpc::i64(to_signed(v, w)) >> 4), w);  // keep |x| < 2^19
  TruncSpec ts{w, 5, 11, true};
  CompareSpec cs{w, w};
  LutSpec ls;
  ls.in_bits = 6;
  ls.out_bits = 20;
  for (u64 j = 0; j < 64; ++j) ls.table.push_back(j * j + 3);
  std::vector<u64> y;
  LocalRunResult res = run_local(
      [&](Dealer& d) {
        auto r = input_deal(d, kClient, n, w);
        auto t = trunc_deal(d, ts, r);
        auto b = drelu_deal(d, cs, r);
        auto rl = relu_deal(d, cs, r);
        auto m = mul_deal(d, r, r, w);
        std::vector<u64> r6(n);
        for (size_t i = 0; i < n; ++i) r6[i] = mod_w(r[i], 6);
        auto l = lut_deal(d, ls, r6);
        for (auto* o : {&t, &b, &rl, &m, &l}) output_deal(d, kClient, *o, o == &t ? 11 : o == &l ? 20 : w);
      },
      [&](Party& p) {
        auto xh = input_eval(p, kClient, x, n, w);
        std::vector<u64> x6(n);
        for (size_t i = 0; i < n; ++i) x6[i] = mod_w(xh[i], 6);
        std::vector<Opening> ops;
        {
          OpScope scope(p.peer, "fused");
          ops.push_back({trunc_shares(p, ts, xh), 11});
          ops.push_back({drelu_shares(p, cs, xh), w});
          ops.push_back({relu_shares(p, cs, xh), w});
          ops.push_back({mul_shares(p, xh, xh, w), w});
          ops.push_back({lut_shares(p, ls, x6), 20});
          auto got = open_many(p, std::move(ops));
          std::vector<u64> all;
          for (size_t k = 0; k < got.size(); ++k) {
            auto o = output_eval(p, kClient, got[k], k == 0 ? 11 : k == 4 ? 20 : w);
            all.insert(all.end(), o.begin(), o.end());
          }
          if (p.id == kClient) y = all;
        }
      });
  ASSERT_EQ(y.size(), 5 * n);
  for (size_t i = 0; i < n; ++i) {
    const i64 v = to_signed(x[i], w);
    EXPECT_EQ(y[i], mod_w(u64(v >> 5), 11)) << i;
    EXPECT_EQ(y[n + i], v >= 0 ? 1u : 0u) << i;
    EXPECT_EQ(y[2 * n + i], mod_w(u64(v >= 0 ? v : 0), w)) << i;
    EXPECT_EQ(y[3 * n + i], mod_w(x[i] * x[i], w)) << i;
    EXPECT_EQ(y[4 * n + i], ls.table[mod_w(x[i], 6)]) << i;
  }
  EXPECT_EQ(res.meter[0].per_op().at("fused").rounds, 1u);
}

// Streamed keys (the dealer in its own thread, bounded hand-off): the same outputs as the
// whole-stream run, also with a pipe far smaller than one gate's keys (the dealer then blocks
// until the parties drain it), and a dealer failure ends the run with its error, not a hang.
TEST(MpcProtocols, StreamedKeysGiveTheSameResultsWithBoundedMemory) {
  aero::Rng rng(31);
  const int w = 30;
  const size_t n = 4000;
  auto x = random_signed(rng, n, w);
  for (auto& v : x) v = mod_w(u64(to_signed(v, w) >> 3), w);
  auto program = [&](Dealer& d) {
    auto r = input_deal(d, kClient, n, w);
    for (int k = 0; k < 6; ++k) r = relu_deal(d, {w, w}, r);
    auto t = trunc_deal(d, {w, 4, w + 8, true, true}, r);
    output_deal(d, kClient, t, w + 8);
  };
  auto run = [&](LocalRunOptions o) {
    std::vector<u64> y;
    auto res = run_local(program, [&](Party& p) {
      auto xh = input_eval(p, kClient, x, n, w);
      for (int k = 0; k < 6; ++k) xh = relu_eval(p, {w, w}, xh);
      auto th = trunc_eval(p, {w, 4, w + 8, true, true}, xh);
      auto out = output_eval(p, kClient, th, w + 8);
      if (p.id == kClient) y = out;
    }, o);
    return std::make_pair(y, res);
  };
  auto [want, r0] = run({});
  LocalRunOptions so;
  so.stream_keys = true;
  so.stream_limit = 1000;  // far below one gate's keys
  so.stream_chunk = 1;     // a chunk per gate
  auto [got, r1] = run(so);
  ASSERT_EQ(got, want);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(want[i], mod_w(u64(std::max<i64>(to_signed(x[i], w), 0) >> 4), w + 8));
  EXPECT_EQ(r1.key_bytes[0], r0.key_bytes[0]);
  EXPECT_EQ(r1.key_bytes[1], r0.key_bytes[1]);
  EXPECT_EQ(r1.rounds(), r0.rounds());
  // The dealer fails halfway: the parties get its error.
  auto bad = [&](Dealer& d) {
    auto r = input_deal(d, kClient, n, w);
    r = relu_deal(d, {w, w}, r);
    throw aero::Error("dealer broke");
  };
  EXPECT_THROW(run_local(bad, [&](Party& p) {
    auto xh = input_eval(p, kClient, x, n, w);
    xh = relu_eval(p, {w, w}, xh);
    relu_eval(p, {w, w}, xh);
  }, so), aero::Error);
}

// Split ReLU (relu_split): ONE key read in round 1, comparisons x >= c_k opened there; in a
// later round the same key gives relu(x)'s unmasked shares at relu_bits (sign-extended), which
// enter another gate's opening (here a lookup's: relu - T[i]); exact, against plaintext, on
// bounded inputs (|x| < 2^(n-2)), awkward sizes and widths.
TEST(MpcProtocols, SplitReluComparisonsThenSharesIntoAnotherOpening) {
  aero::Rng rng(43);
  struct C { int n_bits, relu_bits, cmp_bits; size_t n; };
  for (C c : {C{28, 40, 1, 77}, C{3, 5, 1, 13}, C{9, 9, 4, 1}, C{40, 42, 40, 101}, C{64, 40, 7, 33}, C{17, 30, 17, 50}}) {
    SCOPED_TRACE(testing::Message() << c.n_bits << " " << c.relu_bits << " " << c.cmp_bits << " n " << c.n);
    const size_t n = c.n;
    const i64 lim = i64(1) << (c.n_bits - 2), e = c.n_bits > 4 ? i64(1) << (c.n_bits - 5) : 1;
    std::vector<u64> x(n);
    for (auto& v : x) v = mod_w(u64(i64(rng.next_u64() >> (64 - (c.n_bits - 1))) - lim), c.n_bits);
    const i64 edges[] = {0, -1, lim - 1, -lim, e, -e, e - 1};
    for (size_t i = 0; i < std::min<size_t>(n, 7); ++i) x[i] = mod_w(u64(edges[i]), c.n_bits);
    // x - c_k stays in the signed range: |x| < 2^(n-2), |c_k| <= 2^(n-5) (or 1).
    const ReluSplitSpec spec{c.n_bits, c.relu_bits, c.cmp_bits, {mod_w(u64(-e), c.n_bits), mod_w(u64(e), c.n_bits), 0}};
    LutSpec lut{5, c.relu_bits, {}};
    for (int i = 0; i < 32; ++i) lut.table.push_back(rng.next_u64() & ring_mask(c.relu_bits));
    std::vector<u64> idx(n);
    for (auto& v : idx) v = rng.next_u64() & 31;
    std::vector<u64> cmp, got;
    LocalRunResult res = run_local(
        [&](Dealer& d) {
          auto r = input_deal(d, kClient, n, c.n_bits);
          auto ri = input_deal(d, kClient, n, 5);
          auto rc = relu_split_deal(d, spec, r);
          output_deal(d, kClient, rc, c.cmp_bits);
          auto rl = lut_deal(d, lut, ri);
          for (auto& v : rl) v = mod_w(u64(0) - v, c.relu_bits);  // relu's mask is 0
          output_deal(d, kClient, rl, c.relu_bits);
        },
        [&](Party& p) {
          auto xh = input_eval(p, kClient, x, n, c.n_bits);
          auto ih = input_eval(p, kClient, idx, n, 5);
          const ReluSplitKey k = relu_split_read(p, spec, n);
          std::vector<u64> ch, yh;
          {
            OpScope scope(p.peer, "relu_split");
            ch = open(p, relu_split_cmp_shares(p, k, xh), c.cmp_bits);
          }
          auto o1 = output_eval(p, kClient, ch, c.cmp_bits);
          {
            OpScope scope(p.peer, "relu_sub");
            auto l = lut_shares(p, lut, ih), rs = relu_split_relu_shares(p, k, xh);
            for (size_t i = 0; i < n; ++i) l[i] = mod_w(rs[i] - l[i], c.relu_bits);
            yh = open(p, l, c.relu_bits);
          }
          auto o2 = output_eval(p, kClient, yh, c.relu_bits);
          if (p.id == kClient) cmp = o1, got = o2;
        });
    ASSERT_EQ(cmp.size(), 3 * n);
    ASSERT_EQ(got.size(), n);
    for (size_t i = 0; i < n; ++i) {
      const i64 v = to_signed(x[i], c.n_bits);
      ASSERT_EQ(cmp[i], mod_w(v >= -e ? 1u : 0u, c.cmp_bits)) << "x=" << v;
      ASSERT_EQ(cmp[n + i], mod_w(v >= e ? 1u : 0u, c.cmp_bits)) << "x=" << v;
      ASSERT_EQ(cmp[2 * n + i], mod_w(v >= 0 ? 1u : 0u, c.cmp_bits)) << "x=" << v;
      ASSERT_EQ(got[i], mod_w(u64(std::max<i64>(v, 0)) - lut.table[idx[i]], c.relu_bits)) << "x=" << v;
    }
    // One opening each: the comparisons, and relu - T[i] (no opening of the ReLU alone).
    EXPECT_EQ(res.meter[0].per_op().at("relu_split").rounds, 1u);
    EXPECT_EQ(res.meter[0].per_op().at("relu_sub").bytes_sent, 40 + packed_bytes(n, c.relu_bits));
  }
}

// ReLU and several comparisons x >= c_k from one DCF key, against plaintext; opened together.
TEST(MpcProtocols, ReluWithComparisonsFromOneKey) {
  aero::Rng rng(41);
  for (int n_bits : {28, 9, 64}) {
    const size_t n = 77;
    const int cmp_bits = std::min(n_bits, 9);
    const i64 c = i64(1) << (n_bits - 4);
    auto x = random_signed(rng, n, n_bits);
    for (auto& v : x) v = mod_w(u64(to_signed(v, n_bits) >> 2), n_bits);  // x +- c stays in range
    x[5] = mod_w(u64(c), n_bits), x[6] = mod_w(u64(-c), n_bits), x[7] = mod_w(u64(c - 1), n_bits);
    ReluCmpSpec spec{n_bits, n_bits, cmp_bits, {mod_w(u64(-c), n_bits), mod_w(u64(c), n_bits)}};
    std::vector<u64> relu, cmp;
    LocalRunResult res = run_local(
        [&](Dealer& d) {
          auto r = input_deal(d, kClient, n, n_bits);
          auto o = relu_cmp_deal(d, spec, r);
          output_deal(d, kClient, std::vector<u64>(o.begin(), o.begin() + n), n_bits);
          output_deal(d, kClient, std::vector<u64>(o.begin() + n, o.end()), cmp_bits);
        },
        [&](Party& p) {
          auto xh = input_eval(p, kClient, x, n, n_bits);
          std::vector<std::vector<u64>> got;
          {
            OpScope scope(p.peer, "relu_cmp");
            auto [a, b] = relu_cmp_shares(p, spec, xh);
            got = open_many(p, {{a, n_bits}, {b, cmp_bits}});
          }
          auto o1 = output_eval(p, kClient, got[0], n_bits), o2 = output_eval(p, kClient, got[1], cmp_bits);
          if (p.id == kClient) relu = o1, cmp = o2;
        });
    ASSERT_EQ(relu.size(), n);
    ASSERT_EQ(cmp.size(), 2 * n);
    for (size_t i = 0; i < n; ++i) {
      const i64 v = to_signed(x[i], n_bits);
      ASSERT_EQ(relu[i], mod_w(u64(std::max<i64>(v, 0)), n_bits)) << n_bits << " " << v;
      ASSERT_EQ(cmp[i], v >= -c ? 1u : 0u) << n_bits << " x=" << v;
      ASSERT_EQ(cmp[n + i], v >= c ? 1u : 0u) << n_bits << " x=" << v;
    }
    EXPECT_EQ(res.meter[0].per_op().at("relu_cmp").rounds, 1u);
  }
}
