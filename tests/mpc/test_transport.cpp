// Framing, metering, failure handling and network emulation of the transport.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "mpc/local_run.h"
#include "mpc/transport.h"

using namespace aero::mpc;
using Clock = std::chrono::steady_clock;

namespace {
ChannelOptions quick(const char* peer, double timeout = 1.0) {
  ChannelOptions o;
  o.peer = peer;
  o.timeout_s = timeout;
  return o;
}
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
// Runs f(a) and g(b) concurrently; returns each side's error message ("" if none).
std::pair<std::string, std::string> both(Channel& a, Channel& b, std::function<void(Channel&)> f,
                                         std::function<void(Channel&)> g) {
  std::string ea, eb;
  std::thread t([&] {
    try {
      g(b);
    } catch (const aero::Error& e) {
      eb = e.what();
    }
  });
  try {
    f(a);
  } catch (const aero::Error& e) {
    ea = e.what();
  }
  t.join();
  return {ea, eb};
}
bool has(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }
}  // namespace

TEST(MpcTransport, FramesRoundTripAndMeterBytesAndRounds) {
  auto [a, b] = loopback_pair(quick("b"), quick("a"));
  std::vector<u64> v(1000), got(1000), back(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = i * 0x9e3779b97f4a7c15ULL;
  auto errs = both(*a, *b,
      [&](Channel& c) {
        OpScope s(c, "op1");
        c.send_ring(v, 37);
        c.recv_ring(back, 37);
        c.send(std::span<const uint8_t>());  // empty message is legal
      },
      [&](Channel& c) {
        OpScope s(c, "op1");
        c.recv_ring(got, 37);
        c.send_ring(got, 37);
        EXPECT_EQ(c.recv(0).size(), 0u);
      });
  EXPECT_EQ(errs.first, "");
  EXPECT_EQ(errs.second, "");
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(back[i], mod_w(v[i], 37));
  const u64 frame = packed_bytes(1000, 37) + 40;
  EXPECT_EQ(a->meter().total().bytes_sent, frame + 40);
  EXPECT_EQ(a->meter().total().bytes_recv, frame);
  EXPECT_EQ(a->meter().per_op().at("op1").bytes_sent, frame + 40);
  EXPECT_EQ(a->meter().total().rounds, 1u);  // sent, then waited for b
  EXPECT_EQ(b->meter().total().rounds, 1u);  // b sent the echo, then waited for the empty one
}

TEST(MpcTransport, SymmetricExchangesOfLargeMessagesDoNotDeadlock) {
  auto [a, b] = loopback_pair(quick("b", 5), quick("a", 5));
  std::vector<uint8_t> big(8 << 20, 7);  // far beyond socket buffers
  auto errs = both(*a, *b, [&](Channel& c) {
    for (int r = 0; r < 3; ++r) EXPECT_EQ(c.exchange(big).size(), big.size());
  }, [&](Channel& c) {
    for (int r = 0; r < 3; ++r) EXPECT_EQ(c.exchange(big).size(), big.size());
  });
  EXPECT_EQ(errs.first + errs.second, "");
  EXPECT_EQ(a->meter().total().rounds, 3u);
}

TEST(MpcTransport, GarbageTruncationOversizeStallAndDisconnectAreClearErrors) {
  {  // garbage bytes instead of a header
    auto [a, b] = loopback_pair(quick("peer B"), quick("peer A"));
    std::vector<uint8_t> junk(64, 0x5a);
    b->send_raw_for_test(junk);
    try {
      a->recv();
      FAIL();
    } catch (const aero::Error& e) {
      EXPECT_TRUE(has(e.what(), "garbled") && has(e.what(), "peer B")) << e.what();
    }
  }
  {  // truncated: a valid header announcing 1000 bytes, 10 arrive, then the peer closes
    auto [a, b] = loopback_pair(quick("b"), quick("a"));
    std::vector<uint8_t> payload(1000, 3);
    auto frame = b->frame_for_test(payload);
    b->send_raw_for_test({frame.data(), 40 + 10});
    b->close();
    try {
      a->recv();
      FAIL();
    } catch (const aero::Error& e) {
      EXPECT_TRUE(has(e.what(), "closed the connection in the middle")) << e.what();
    }
  }
  {  // a flipped bit in an otherwise valid header
    auto [a, b] = loopback_pair(quick("b"), quick("a"));
    std::vector<uint8_t> payload(16, 3);
    auto frame = b->frame_for_test(payload);
    frame[20] ^= 0x10;  // inside the length field
    b->send_raw_for_test(frame);
    try {
      a->recv();
      FAIL();
    } catch (const aero::Error& e) {
      EXPECT_TRUE(has(e.what(), "checksum")) << e.what();
    }
  }
  {  // oversized: the limit is checked before the payload is read
    ChannelOptions small = quick("b");
    small.max_message = 100;
    auto [a, b] = loopback_pair(small, quick("a"));
    std::vector<uint8_t> payload(101, 1);
    b->send(payload);
    try {
      a->recv();
      FAIL();
    } catch (const aero::Error& e) {
      EXPECT_TRUE(has(e.what(), "oversized")) << e.what();
    }
  }
  {  // unexpected length
    auto [a, b] = loopback_pair(quick("b"), quick("a"));
    std::vector<uint8_t> payload(10, 1);
    b->send(payload);
    EXPECT_THROW(a->recv(11), aero::Error);
  }
  {  // stall: nothing arrives; the receive fails after the timeout, not before, not never
    auto [a, b] = loopback_pair(quick("b", 0.3), quick("a", 0.3));
    auto t0 = Clock::now();
    try {
      a->recv();
      FAIL();
    } catch (const aero::Error& e) {
      EXPECT_TRUE(has(e.what(), "stalled")) << e.what();
    }
    EXPECT_GE(since(t0), 0.29);
    EXPECT_LT(since(t0), 2.0);
  }
  {  // disconnect
    auto [a, b] = loopback_pair(quick("b"), quick("a"));
    b->close();
    EXPECT_THROW(a->recv(), aero::Error);
    std::vector<uint8_t> x(10);
    EXPECT_THROW(a->send(x), aero::Error);  // already closed after the error
  }
}

TEST(MpcTransport, BothSidesFailWhenOneSendsGarbage) {
  auto [a, b] = loopback_pair(quick("B", 2), quick("A", 2));
  auto t0 = Clock::now();
  auto errs = both(*a, *b,
      [&](Channel& c) { c.recv(); },  // A waits for a message, gets garbage
      [&](Channel& c) {
        std::vector<uint8_t> junk(100, 0xff);
        c.send_raw_for_test(junk);
        c.recv();  // B waits for A's answer, which never comes: A hangs up
      });
  EXPECT_TRUE(has(errs.first, "garbled")) << errs.first;
  EXPECT_TRUE(has(errs.second, "closed")) << errs.second;
  EXPECT_LT(since(t0), 1.5);  // the second failure is immediate, not a timeout
}

TEST(MpcTransport, ProtocolOutOfStepIsDetected) {
  auto [a, b] = loopback_pair(quick("B"), quick("A"));
  auto errs = both(*a, *b, [&](Channel& c) {
    OpScope s(c, "relu");
    c.recv();
  }, [&](Channel& c) {
    OpScope s(c, "trunc");
    std::vector<uint8_t> x(8);
    c.send(x);
  });
  EXPECT_TRUE(has(errs.first, "out of step")) << errs.first;
}

TEST(MpcTransport, TwoPartyRunFailsOnBothSidesIfOnePartyThrows) {
  auto t0 = Clock::now();
  try {
    run_local([](Dealer&) {}, [](Party& p) {
      if (p.id == 1) aero::fail("client gave up");
      std::vector<u64> s(4);
      open(p, s, 16);
    });
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_TRUE(has(e.what(), "client gave up")) << e.what();
  }
  EXPECT_LT(since(t0), 5.0);
}

TEST(MpcTransport, NamedProfiles) {
  EXPECT_EQ(NetProfile::named("lan").bits_per_s, 10e9);
  EXPECT_DOUBLE_EQ(NetProfile::named("wan100").one_way_s(), 0.040);
  EXPECT_DOUBLE_EQ(NetProfile::named("1g").rtt_s, 1e-3);
  EXPECT_DOUBLE_EQ(NetProfile::named("wan400").bits_per_s, 400e6);
  EXPECT_DOUBLE_EQ(NetProfile::named("custom:50:3").rtt_s, 3e-3);
  EXPECT_THROW(NetProfile::named("wan9"), aero::Error);
}

TEST(MpcTransport, EmulatedRunMatchesCostModelWithin10Percent) {
  // A protocol-shaped workload: rounds of symmetric openings of 125 KB each way. Delays are
  // large next to scheduling noise on a loaded 2-core machine (late wake-ups of a few ms per
  // message would otherwise dominate).
  auto body = [](Party& p) {
    std::vector<u64> s(25000, 5);
    for (int r = 0; r < 6; ++r) {
      OpScope scope(p.peer, "open");
      auto v = open(p, s, 40);
      s[0] += v[0];
    }
  };
  double compute = 1e9;
  for (int i = 0; i < 2; ++i) compute = std::min(compute, run_local([](Dealer&) {}, body).online_s);
  for (const char* prof : {"custom:50:160", "custom:200:100"}) {
    LocalRunOptions o;
    o.net = NetProfile::named(prof);
    auto t = run_local([](Dealer&) {}, body, o);
    const auto& m = t.meter[0].total();
    const double model = o.net.model_seconds(compute, double(m.bytes_sent), double(t.rounds()));
    EXPECT_EQ(t.rounds(), 6u);
    EXPECT_EQ(m.depth, 6u);
    EXPECT_NEAR(t.online_s / model, 1.0, 0.10)
        << prof << ": emulated " << t.online_s << " s, model " << model << " s";
  }
}
