// Key streams: seed compression for party 0, streaming in chunks, the dealer over TCP.
#include <gtest/gtest.h>

#include <thread>

#include "mpc/compare.h"
#include "mpc/lut.h"
#include "mpc/truncation.h"
#include "mpc/linear.h"
#include "mpc/party.h"

using namespace aero::mpc;

namespace {
void program(Dealer& d) {
  std::vector<u64> r = d.random(300, 30);
  auto r1 = relu_deal(d, {30, 30}, r);
  auto r2 = mul_deal(d, r, r1, 30);
  drelu_deal(d, {30, 8}, r2);
}
}  // namespace

TEST(MpcKeys, SharesReconstructAndPartyZeroPaysOnlyASeed) {
  Dealer d(Block{1, 2});
  std::vector<u64> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = i * 977;
  d.share(v, 20);
  auto b0 = d.take(0), b1 = d.take(1);
  EXPECT_EQ(b0.size(), 16u);                      // just the stream seed
  EXPECT_EQ(b1.size(), packed_bytes(1000, 20));   // explicit shares
  KeyReader r0(0, b0), r1(1, b1);
  std::vector<u64> s0(1000), s1(1000);
  r0.share(s0, 20);
  r1.share(s1, 20);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(mod_w(s0[i] + s1[i], 20), mod_w(v[i], 20));
  EXPECT_NE(s0, v);
}

TEST(MpcKeys, StreamedChunksEqualTheWholeStream) {
  Dealer whole(Block{3, 4});
  program(whole);
  std::vector<uint8_t> want[2] = {whole.take(0), whole.take(1)};
  Dealer d(Block{3, 4});
  std::vector<uint8_t> got[2];
  size_t chunks = 0;
  d.set_sink([&](int p, std::vector<uint8_t>& b) {
    got[p].insert(got[p].end(), b.begin(), b.end());
    ++chunks;
  }, 100);
  program(d);
  d.flush();
  EXPECT_GT(chunks, 4u);
  EXPECT_EQ(got[0], want[0]);
  EXPECT_EQ(got[1], want[1]);
}

TEST(MpcKeys, DealerOverTcpDeliversBothStreams) {
  ChannelOptions o;
  o.timeout_s = 5;
  auto [d0, p0] = loopback_pair(o, o);
  auto [d1, p1] = loopback_pair(o, o);
  std::thread dealer([&] { serve_keys(*d0, *d1, program, Block{5, 6}); });
  KeyReader k0 = RemoteDealer(*p0).obtain(0, program);
  KeyReader k1 = RemoteDealer(*p1).obtain(1, program);
  k0.fetch_all();  // the streamed keys arrive as they are read
  k1.fetch_all();
  dealer.join();
  Dealer ref(Block{5, 6});
  program(ref);
  EXPECT_EQ(k0.size(), ref.take(0).size());
  EXPECT_EQ(k1.size(), ref.take(1).size());
  EXPECT_EQ(d0->meter().per_op().at("keys").bytes_sent, p0->meter().total().bytes_recv);
  // Swapped roles are refused.
  auto [e0, q0] = loopback_pair(o, o);
  auto [e1, q1] = loopback_pair(o, o);
  std::thread dealer2([&] {
    try {
      serve_keys(*e0, *e1, program, Block{5, 6});
    } catch (const aero::Error&) {
    }
  });
  EXPECT_THROW(RemoteDealer(*q0).obtain(1, program), aero::Error);
  q0->close();
  q1->close();
  dealer2.join();
}

// The exact key-size functions (used by the cost model, src/pi/cost_model.h) equal what each
// gate's dealer side writes to each party's stream, on awkward sizes and widths.
TEST(MpcKeys, KeyByteFunctionsEqualTheDealersStreams) {
  for (size_t n : {size_t(1), size_t(7), size_t(13), size_t(100)})
    for (int w : {9, 28, 40, 64}) {
      SCOPED_TRACE(testing::Message() << "n " << n << " w " << w);
      Dealer d(Block{5, 6});
      auto r = d.random(n * 3, w);
      std::span<const u64> rn(r.data(), n);
      size_t before[2] = {d.written(0), d.written(1)};
      auto check = [&](size_t k0, size_t k1, const char* g) {
        EXPECT_EQ(d.written(0) - before[0], k0) << g;
        EXPECT_EQ(d.written(1) - before[1], k1) << g;
        before[0] = d.written(0), before[1] = d.written(1);
      };
      for (bool faithful : {true, false})
        for (int out : {w, std::min(64, w + 5), std::max(2, w - 6)}) {
          TruncSpec t{w, std::min(5, w - 3), out, faithful, true};
          trunc_deal(d, t, rn);
          check(trunc_key_bytes(t, n, 0), trunc_key_bytes(t, n, 1), "trunc bounded");
          t.bounded = false;
          trunc_deal(d, t, rn);
          check(trunc_key_bytes(t, n, 0), trunc_key_bytes(t, n, 1), "trunc");
        }
      drelu_deal(d, {w, 7}, rn);
      check(drelu_key_bytes({w, 7}, n, 0), drelu_key_bytes({w, 7}, n, 1), "drelu");
      relu_deal(d, {w, w}, rn);
      check(relu_key_bytes({w, w}, n, 0), relu_key_bytes({w, w}, n, 1), "relu");
      if (w >= 3)
        for (bool leaky : {false, true}) {
          const ReluTruncSpec rt{w, w >= 16 ? 4 : 0, std::min(42, w + 3), 5, 2, leaky};
          relu_trunc_deal(d, rt, rn);
          check(relu_trunc_key_bytes(rt, n, 0), relu_trunc_key_bytes(rt, n, 1), "relu_trunc");
        }
      if (w >= 3) {
        const ReluSplitSpec rs{w, std::min(42, w + 12), std::min(9, w), {3, mod_w(u64(-3), w), 5}};
        relu_split_deal(d, rs, rn);
        check(relu_split_key_bytes(rs, n, 0), relu_split_key_bytes(rs, n, 1), "relu_split");
      }
      ReluCmpSpec rc{w, w, 9, {3, u64(-3)}};
      relu_cmp_deal(d, rc, rn);
      check(relu_cmp_key_bytes(rc, n, 0), relu_cmp_key_bytes(rc, n, 1), "relu_cmp");
      mul_deal(d, rn, rn, w);
      check(mul_key_bytes(n, w, 0), mul_key_bytes(n, w, 1), "mul");
      if (w <= 28) {
        LutSpec ls{9, w, std::vector<u64>(512, 1)};
        std::vector<u64> idx(n);
        for (size_t i = 0; i < n; ++i) idx[i] = mod_w(r[i], 9);
        lut_deal(d, ls, idx);
        check(lut_key_bytes(9, w, n, 0), lut_key_bytes(9, w, n, 1), "lut");
        ls.leaf_bits = 3;  // early termination (the one-round exp's table)
        lut_deal(d, ls, idx);
        check(lut_key_bytes(9, w, n, 0, 3), lut_key_bytes(9, w, n, 1, 3), "lut, leaf_bits 3");
        LutSelSpec lss{9, w, 2, {std::vector<u64>(512, 1), std::vector<u64>(512, 2)}};
        std::vector<u64> idx2(2 * n), sel2(2 * n);
        for (size_t i = 0; i < 2 * n; ++i) idx2[i] = mod_w(r[i], 9), sel2[i] = r[i] & 1;
        lut_sel_deal(d, lss, idx2, sel2);
        check(lut_sel_key_bytes(9, w, 2, n, 0), lut_sel_key_bytes(9, w, 2, n, 1), "lut_sel");
      }
      // Vector-payload selected lookup: the vector on the output's ring, wider, or narrower
      // (sign extension in the payload), per-term shifts, local share truncation.
      for (int vec : {w, 64, std::max(3, w - 5)}) {
        LutVecSpec lv{5, w, vec, 3, 7, {}, {0, std::min(vec - 3, 4), 0}, w > 8 ? 3 : 0};
        if (lv.term_lift(1) > 16 || lv.term_lift(0) > 16) continue;
        std::vector<u64> idx3(3 * n), sel3(3 * n);
        for (size_t i = 0; i < 3 * n; ++i) idx3[i] = mod_w(r[i], 5), sel3[i] = r[i] & 1;
        lut_vec_deal(d, lv, idx3, sel3, std::vector<u64>(7 * n, 5));
        check(lut_vec_key_bytes(lv, n, 0), lut_vec_key_bytes(lv, n, 1), "lut_vec");
      }
      MatShape ms{n, 3, 2};
      matmul_w_deal(d, ms, std::span<const u64>(r.data(), 3 * n), std::span<const u64>(r.data(), 6), w);
      check(matmul_w_key_bytes(ms, w, 0), matmul_w_key_bytes(ms, w, 1), "matmul_w");
      BatchMatShape bs{{n, n, 2}, 1, true, false};
      std::vector<u64> ra(n * n, 0);
      matmul_ss_batch_deal(d, bs, ra, std::span<const u64>(r.data(), 2 * n), w);
      check(matmul_ss_batch_key_bytes(bs, w, 0), matmul_ss_batch_key_bytes(bs, w, 1), "matmul_ss tri_a");
      BatchMatShape bo{{n, 2, n}, 1, false, true};
      matmul_ss_batch_deal(d, bo, std::span<const u64>(r.data(), 2 * n), std::span<const u64>(r.data(), 2 * n), w);
      check(matmul_ss_batch_key_bytes(bo, w, 0), matmul_ss_batch_key_bytes(bo, w, 1), "matmul_ss tri_out");
      quad_rows_deal(d, n, 3, 3, 1, std::span<const u64>(r.data(), 3 * n), w);
      check(quad_rows_key_bytes(n, 3, w, 0), quad_rows_key_bytes(n, 3, w, 1), "quad_rows");
      input_deal(d, kClient, n, w);
      check(input_key_bytes(n, w, kClient, 0), input_key_bytes(n, w, kClient, 1), "input");
      output_deal(d, kClient, rn, w);
      check(output_key_bytes(n, w, kClient, 0), output_key_bytes(n, w, kClient, 1), "output");
    }
}
