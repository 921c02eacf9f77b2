// Key streams: seed compression for party 0, streaming in chunks, the dealer over TCP.
#include <gtest/gtest.h>

#include <thread>

#include "mpc/compare.h"
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
