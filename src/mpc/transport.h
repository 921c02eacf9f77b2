// Transport between the three roles: framed messages over one persistent TCP connection per
// pair (TCP_NODELAY), with a checked header, receive timeouts, per-operator metering at the
// socket and an in-transport network emulator (bandwidth pacing and one-way delay).
//
// Frame = 40-byte header + payload. Header: magic "AERO", kind, operator-tag hash, sequence
// number (per direction), payload length (<= max_message), arrival deadline for the emulator,
// FNV-1a checksum of the header. Any mismatch (magic, checksum, sequence, tag, length, size)
// throws aero::Error naming the peer and what was expected, and shuts the socket down so the
// peer errors out too (it reads end-of-stream). A peer that sends nothing for `timeout_s`
// makes the waiting side throw; a closed peer makes it throw at once.
//
// Metering (Meter): every byte written to or read from the socket (headers included) is
// counted per direction and per operator tag (OpScope sets the tag). Rounds: a party's round
// counter increments whenever it receives a message after having sent at least one message
// since its previous receive; the protocol's round count is the larger of the two parties'
// counters (for the symmetric openings used here both are equal). Besides, every frame carries
// its causal depth (Lamport: sender's depth + 1; a receiver's depth becomes the max), so
// `depth` is the number of one-way latencies on the longest chain of messages, the exact
// latency term for asymmetric steps too (e.g. a one-way input followed by openings).
// Offline traffic (dealer to party) uses its own Channel, hence its own Meter.
//
// Emulation (NetProfile): each direction is a link of `bits_per_s` with one-way delay
// rtt/2. The sender stamps each frame with the time the frame's last bit would arrive,
// arrival = max(now, link_free) + bytes*8/bandwidth + rtt/2, and the receiver holds the frame
// until then (CLOCK_MONOTONIC, so the processes must share a host; between real hosts use
// profile "none"). A run then costs compute + bytes_per_direction/bandwidth + rounds x rtt/2.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mpc/ring.h"

namespace aero::mpc {

struct NetProfile {
  std::string name = "none";
  double bits_per_s = 0;  // 0: no pacing
  double rtt_s = 0;       // round-trip time; one-way delay is rtt/2
  bool emulated() const { return bits_per_s > 0 || rtt_s > 0; }
  double one_way_s() const { return rtt_s / 2; }
  // Modelled time of a run: compute + bytes/bandwidth + rounds x one-way delay.
  double model_seconds(double compute_s, double bytes_per_direction, double rounds) const {
    return compute_s + (bits_per_s > 0 ? bytes_per_direction * 8 / bits_per_s : 0) +
           rounds * one_way_s();
  }
  // "none", "lan" (10 Gbit/s, 0.1 ms RTT), "1g" (1 Gbit/s, 1 ms), "wan400" (400 Mbit/s, 8 ms),
  // "wan100" (100 Mbit/s, 80 ms; AERO's WAN); or "custom:<Mbit/s>:<rtt ms>".
  static NetProfile named(const std::string& name);
  static std::vector<std::string> names();
};

struct OpStats {
  u64 bytes_sent = 0, bytes_recv = 0;  // at the socket, headers included
  u64 messages_sent = 0, rounds = 0;
  u64 depth = 0;  // one-way hops added to the longest causal message chain (see Meter)
  double seconds = 0;  // wall time spent inside OpScopes of this tag (inclusive)
};

class Meter {
 public:
  const OpStats& total() const { return total_; }
  const std::map<std::string, OpStats>& per_op() const { return per_op_; }
  const std::string& tag() const { return tag_; }
  void reset();

 private:
  friend class Channel;
  friend class OpScope;
  void on_send(u64 bytes);
  void on_recv(u64 bytes, u64 depth);
  u64 depth_ = 0;
  OpStats total_;
  std::map<std::string, OpStats> per_op_;
  std::string tag_ = "untagged";
  bool sent_since_recv_ = false;
};

// Traffic capture for tests: called with every payload sent (sent=true) or received.
using Tap = std::function<void(bool sent, std::span<const uint8_t> payload)>;

struct ChannelOptions {
  std::string peer = "peer";          // for error messages: "client", "dealer", ...
  double timeout_s = 60;              // longest wait for a peer's next byte
  size_t max_message = size_t(1) << 32;  // largest payload accepted
  NetProfile net;                     // emulation (both ends should use the same profile)
  bool check_tag = true;              // reject frames sent under another operator tag
  Tap tap;
};

class Channel {
 public:
  // Takes ownership of a connected stream socket.
  Channel(int fd, ChannelOptions opt);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  void send(std::span<const uint8_t> payload);
  // Receives one frame; its length must equal `expected` unless expected == SIZE_MAX.
  std::vector<uint8_t> recv(size_t expected = SIZE_MAX);
  // Sends `out` and receives one frame concurrently (full duplex, so two parties exchanging
  // large messages cannot deadlock on full socket buffers).
  std::vector<uint8_t> exchange(std::span<const uint8_t> out, size_t expected = SIZE_MAX);

  // Ring elements of width w, bit-packed on the wire.
  void send_ring(std::span<const u64> v, int w);
  void recv_ring(std::span<u64> v, int w);
  void exchange_ring(std::span<const u64> out, std::span<u64> in, int w);

  Meter& meter() { return meter_; }
  const ChannelOptions& options() const { return opt_; }
  // Closes the connection (the peer's next receive fails with "closed").
  void close();
  // Test hook: writes bytes to the socket without framing.
  void send_raw_for_test(std::span<const uint8_t> bytes);
  // Test hook: the bytes `send` would write for this payload (consumes a sequence number).
  std::vector<uint8_t> frame_for_test(std::span<const uint8_t> payload);

 private:
  void transfer(const uint8_t* out, size_t out_n, std::vector<uint8_t>* in, size_t expected);
  [[noreturn]] void die(const std::string& what);
  int fd_;
  ChannelOptions opt_;
  Meter meter_;
  u64 send_seq_ = 0, recv_seq_ = 0;
  double link_free_ = 0;  // emulator: when this direction's link is idle again
};

// Sets the operator tag of `ch`'s meter for the scope's lifetime and adds its wall time.
class OpScope {
 public:
  OpScope(Channel& ch, std::string tag);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  Meter& m_;
  std::string saved_;
  std::chrono::steady_clock::time_point start_;
};

// TCP helpers. listen_tcp returns a listening socket (port 0 picks a free port, see
// bound_port); accept_channel waits up to opt.timeout_s; connect_channel retries until
// opt.timeout_s passes (the peer may start later).
int listen_tcp(const std::string& host, int port);
int bound_port(int listen_fd);
std::unique_ptr<Channel> accept_channel(int listen_fd, ChannelOptions opt);
std::unique_ptr<Channel> connect_channel(const std::string& host, int port, ChannelOptions opt);
// Two connected channels over loopback TCP (the same code path as separate processes).
std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> loopback_pair(ChannelOptions a,
                                                                            ChannelOptions b);

}  // namespace aero::mpc
