#include "mpc/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <thread>

namespace aero::mpc {

namespace {

constexpr uint32_t kMagic = 0x4f524541;  // "AERO" little-endian
constexpr size_t kHeader = 40;

struct Header {
  uint32_t magic;
  uint32_t tag;       // FNV-1a of the sender's operator tag
  uint64_t seq;
  uint64_t len;
  uint64_t arrival_ns;  // emulator: hold until CLOCK_MONOTONIC reaches this (0: none)
  uint32_t depth;  // causal depth of this message (sender's depth + 1)
  uint32_t check;  // FNV-1a of the 36 bytes before it
};
static_assert(sizeof(Header) == kHeader);

uint32_t fnv1a(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 16777619u;
  return h;
}

double mono_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// A timed sleep to the arrival time. (Yield-spinning the last part was tried: on a loaded
// machine it wakes up later, not earlier.)
void sleep_until_mono(double t) {
  while (mono_now() < t) {
    timespec ts;
    ts.tv_sec = time_t(t);
    ts.tv_nsec = long((t - double(ts.tv_sec)) * 1e9);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
  }
}

}  // namespace

NetProfile NetProfile::named(const std::string& name) {
  if (name == "none" || name.empty()) return {};
  if (name == "lan") return {"lan", 10e9, 0.1e-3};
  if (name == "1g") return {"1g", 1e9, 1e-3};
  if (name == "wan400") return {"wan400", 400e6, 8e-3};
  if (name == "wan100") return {"wan100", 100e6, 80e-3};
  if (name.rfind("custom:", 0) == 0) {
    double mbit = 0, ms = 0;
    if (std::sscanf(name.c_str() + 7, "%lf:%lf", &mbit, &ms) == 2 && mbit >= 0 && ms >= 0)
      return {name, mbit * 1e6, ms * 1e-3};
  }
  fail("unknown network profile '", name,
       "': expected none, lan, 1g, wan400, wan100 or custom:<Mbit/s>:<rtt ms>");
}

std::vector<std::string> NetProfile::names() { return {"lan", "1g", "wan400", "wan100"}; }

void Meter::reset() {
  total_ = {};
  per_op_.clear();
  depth_ = 0;
  sent_since_recv_ = false;
}

void Meter::on_send(u64 bytes) {
  auto& op = per_op_[tag_];
  op.bytes_sent += bytes;
  total_.bytes_sent += bytes;
  op.messages_sent++;
  total_.messages_sent++;
  sent_since_recv_ = true;
}

void Meter::on_recv(u64 bytes, u64 depth) {
  auto& op = per_op_[tag_];
  if (depth > depth_) {
    op.depth += depth - depth_;
    depth_ = depth;
    total_.depth = depth_;
  }
  op.bytes_recv += bytes;
  total_.bytes_recv += bytes;
  if (sent_since_recv_) {
    op.rounds++;
    total_.rounds++;
  }
  sent_since_recv_ = false;
}

OpScope::OpScope(Channel& ch, std::string tag)
    : m_(ch.meter()), saved_(m_.tag_), start_(std::chrono::steady_clock::now()) {
  m_.tag_ = std::move(tag);
}

OpScope::~OpScope() {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  m_.per_op_[m_.tag_].seconds += s;
  m_.tag_ = saved_;
}

Channel::Channel(int fd, ChannelOptions opt) : fd_(fd), opt_(std::move(opt)) {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on AF_UNIX
  int flags = fcntl(fd_, F_GETFL, 0);
  fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

Channel::~Channel() { close(); }

void Channel::close() {
  if (fd_ >= 0) {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    fd_ = -1;
  }
}

void Channel::die(const std::string& what) {
  close();
  fail("connection to ", opt_.peer, ": ", what);
}

void Channel::send_raw_for_test(std::span<const uint8_t> bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t k = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (k > 0) off += size_t(k);
    else if (k < 0 && errno != EAGAIN && errno != EINTR) die(std::strerror(errno));
    else {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
  }
}

std::vector<uint8_t> Channel::frame_for_test(std::span<const uint8_t> payload) {
  Header h{};
  h.magic = kMagic;
  h.tag = fnv1a(meter_.tag().data(), meter_.tag().size());
  h.seq = send_seq_++;
  h.len = payload.size();
  h.depth = uint32_t(meter_.depth_ + 1);
  h.check = fnv1a(&h, offsetof(Header, check));
  std::vector<uint8_t> out(kHeader + payload.size());
  std::memcpy(out.data(), &h, kHeader);
  std::memcpy(out.data() + kHeader, payload.data(), payload.size());
  return out;
}

// Full-duplex engine: writes the frame (header + out) while reading one frame into *in.
void Channel::transfer(const uint8_t* out, size_t out_n, std::vector<uint8_t>* in,
                       size_t expected) {
  if (fd_ < 0) fail("connection to ", opt_.peer, ": already closed after an earlier error");
  const uint32_t my_tag = fnv1a(meter_.tag().data(), meter_.tag().size());
  Header oh{};
  if (out) {
    oh.magic = kMagic;
    oh.tag = my_tag;
    oh.seq = send_seq_++;
    oh.len = out_n;
    oh.depth = uint32_t(meter_.depth_ + 1);
    if (opt_.net.emulated()) {
      const double now = mono_now();
      const double bytes = double(out_n + kHeader);
      const double depart = std::max(now, link_free_);
      link_free_ = depart + (opt_.net.bits_per_s > 0 ? bytes * 8 / opt_.net.bits_per_s : 0);
      oh.arrival_ns = uint64_t((link_free_ + opt_.net.one_way_s()) * 1e9);
    }
    oh.check = fnv1a(&oh, offsetof(Header, check));
    meter_.on_send(out_n + kHeader);
    if (opt_.tap) opt_.tap(true, {out, out_n});
  }
  size_t hsent = out ? 0 : kHeader, psent = out ? 0 : out_n;
  Header ih{};
  size_t hrecv = in ? 0 : kHeader, precv = 0;
  bool have_header = !in;
  size_t plen = 0;
  const int timeout_ms = int(opt_.timeout_s * 1000);

  auto sending = [&] { return out && (hsent < kHeader || psent < out_n); };
  auto receiving = [&] { return in && (!have_header || precv < plen); };
  while (sending() || receiving()) {
    pollfd p{fd_, short((sending() ? POLLOUT : 0) | (receiving() ? POLLIN : 0)), 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      die(std::string("poll failed: ") + std::strerror(errno));
    }
    if (r == 0)
      die("no progress for " + std::to_string(opt_.timeout_s) + " s (peer stalled) while " +
          (receiving() ? "waiting for a message in operator '" + meter_.tag() + "'"
                       : std::string("sending")));
    if (sending() && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      const uint8_t* src;
      size_t n;
      if (hsent < kHeader) {
        src = reinterpret_cast<const uint8_t*>(&oh) + hsent;
        n = kHeader - hsent;
      } else {
        src = out + psent;
        n = out_n - psent;
      }
      ssize_t k = ::send(fd_, src, n, MSG_NOSIGNAL);
      if (k < 0 && errno != EAGAIN && errno != EINTR)
        die(std::string("send failed (peer gone?): ") + std::strerror(errno));
      if (k > 0) (hsent < kHeader ? hsent : psent) += size_t(k);
    }
    if (receiving() && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
      uint8_t* dst;
      size_t n;
      if (!have_header) {
        dst = reinterpret_cast<uint8_t*>(&ih) + hrecv;
        n = kHeader - hrecv;
      } else {
        dst = in->data() + precv;
        n = plen - precv;
      }
      ssize_t k = ::recv(fd_, dst, n, 0);
      if (k == 0)
        die(have_header || hrecv > 0 ? "peer closed the connection in the middle of a message"
                                     : "peer closed the connection");
      if (k < 0 && errno != EAGAIN && errno != EINTR)
        die(std::string("receive failed: ") + std::strerror(errno));
      if (k > 0) {
        if (!have_header) {
          hrecv += size_t(k);
          if (hrecv == kHeader) {
            if (ih.magic != kMagic) die("garbled message: bad magic number in frame header");
            if (ih.check != fnv1a(&ih, offsetof(Header, check)))
              die("garbled message: frame header checksum mismatch");
            if (ih.seq != recv_seq_)
              die("out-of-order message: sequence " + std::to_string(ih.seq) + ", expected " +
                  std::to_string(recv_seq_));
            if (ih.len > opt_.max_message)
              die("oversized message: " + std::to_string(ih.len) + " bytes, limit " +
                  std::to_string(opt_.max_message));
            if (expected != SIZE_MAX && ih.len != expected)
              die("unexpected message length " + std::to_string(ih.len) + " in operator '" +
                  meter_.tag() + "', expected " + std::to_string(expected));
            if (opt_.check_tag && ih.tag != my_tag)
              die("protocol out of step: peer sent a message for another operator while we are in '" +
                  meter_.tag() + "'");
            recv_seq_++;
            have_header = true;
            plen = size_t(ih.len);
            in->resize(plen);
          }
        } else {
          precv += size_t(k);
        }
      }
    }
  }
  if (in) {
    meter_.on_recv(plen + kHeader, ih.depth);
    if (ih.arrival_ns) sleep_until_mono(double(ih.arrival_ns) * 1e-9);
    if (opt_.tap) opt_.tap(false, {in->data(), in->size()});
  }
}

void Channel::send(std::span<const uint8_t> payload) {
  transfer(payload.data() ? payload.data() : reinterpret_cast<const uint8_t*>(""),
           payload.size(), nullptr, 0);
}

std::vector<uint8_t> Channel::recv(size_t expected) {
  std::vector<uint8_t> in;
  transfer(nullptr, 0, &in, expected);
  return in;
}

std::vector<uint8_t> Channel::exchange(std::span<const uint8_t> out, size_t expected) {
  std::vector<uint8_t> in;
  transfer(out.data() ? out.data() : reinterpret_cast<const uint8_t*>(""), out.size(), &in,
           expected);
  return in;
}

void Channel::send_ring(std::span<const u64> v, int w) { send(pack_bits(v, w)); }

void Channel::recv_ring(std::span<u64> v, int w) {
  auto in = recv(packed_bytes(v.size(), w));
  unpack_bits(in, w, v);
}

void Channel::exchange_ring(std::span<const u64> out, std::span<u64> in, int w) {
  auto got = exchange(pack_bits(out, w), packed_bytes(in.size(), w));
  unpack_bits(got, w, in);
}

// ---- TCP setup ----

namespace {
sockaddr_in resolve(const std::string& host, int port) {
  AERO_CHECK(port >= 0 && port < 65536, "port ", port, " is outside 0..65535");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1) return a;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  AERO_CHECK(rc == 0 && res, "cannot resolve host '", host, "': ", gai_strerror(rc));
  a.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return a;
}
}  // namespace

int listen_tcp(const std::string& host, int port) {
  sockaddr_in a = resolve(host, port);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  AERO_CHECK(fd >= 0, "socket(): ", std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 8) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot listen on ", host, ":", port, ": ", std::strerror(e));
  }
  return fd;
}

int bound_port(int listen_fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::unique_ptr<Channel> accept_channel(int listen_fd, ChannelOptions opt) {
  pollfd p{listen_fd, POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, int(opt.timeout_s * 1000));
  while (r < 0 && errno == EINTR);
  AERO_CHECK(r > 0, "no connection from ", opt.peer, " within ", opt.timeout_s, " s");
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  AERO_CHECK(fd >= 0, "accept() for ", opt.peer, ": ", std::strerror(errno));
  return std::make_unique<Channel>(fd, std::move(opt));
}

std::unique_ptr<Channel> connect_channel(const std::string& host, int port, ChannelOptions opt) {
  sockaddr_in a = resolve(host, port);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration<double>(opt.timeout_s);
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    AERO_CHECK(fd >= 0, "socket(): ", std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
      return std::make_unique<Channel>(fd, std::move(opt));
    int e = errno;
    ::close(fd);
    if (std::chrono::steady_clock::now() > deadline)
      fail("cannot connect to ", opt.peer, " at ", host, ":", port, ": ", std::strerror(e));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> loopback_pair(ChannelOptions a,
                                                                            ChannelOptions b) {
  int lfd = listen_tcp("127.0.0.1", 0);
  int port = bound_port(lfd);
  std::unique_ptr<Channel> cb;
  std::thread t([&] {
    try {
      cb = connect_channel("127.0.0.1", port, b);
    } catch (...) {
    }
  });
  std::unique_ptr<Channel> ca;
  try {
    ca = accept_channel(lfd, a);
  } catch (...) {
    t.join();
    ::close(lfd);
    throw;
  }
  t.join();
  ::close(lfd);
  AERO_CHECK(cb, "loopback_pair: connect failed");
  return {std::move(ca), std::move(cb)};
}

}  // namespace aero::mpc
