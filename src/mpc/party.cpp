#include "mpc/party.h"

namespace aero::mpc {

std::vector<u64> open(Party& p, std::span<const u64> share, int w) {
  std::vector<u64> other(share.size());
  p.peer.exchange_ring(share, other, w);
  for (size_t i = 0; i < other.size(); ++i) other[i] = mod_w(other[i] + share[i], w);
  return other;
}

std::vector<std::vector<u64>> open_many(Party& p, std::vector<Opening> parts) {
  std::vector<uint8_t> out;
  size_t expected = 0;
  for (const auto& o : parts) {
    auto b = pack_bits(o.share, o.w);
    out.insert(out.end(), b.begin(), b.end());
    expected += packed_bytes(o.share.size(), o.w);
  }
  auto in = p.peer.exchange(out, expected);
  std::vector<std::vector<u64>> res(parts.size());
  size_t off = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    auto& o = parts[k];
    const size_t nb = packed_bytes(o.share.size(), o.w);
    res[k].resize(o.share.size());
    unpack_bits(std::span<const uint8_t>(in.data() + off, nb), o.w, res[k]);
    for (size_t i = 0; i < res[k].size(); ++i) res[k][i] = mod_w(res[k][i] + o.share[i], o.w);
    off += nb;
  }
  return res;
}

// The owner's mask is a seed in its key stream (party 0: from its seed stream via `share`
// of a zero-free mask; party 1: explicit), the other party's stream holds only the marker.
std::vector<u64> input_deal(Dealer& d, int owner, size_t n, int w) {
  d.begin("input", n);
  std::vector<u64> r = d.random(n, w);
  d.key(owner).put_ring(r, w);
  return r;
}

std::vector<u64> input_eval(Party& p, int owner, std::span<const u64> x, size_t n, int w) {
  OpScope scope(p.peer, "input");
  p.keys.begin("input", n);
  std::vector<u64> xh(n);
  if (p.id == owner) {
    AERO_CHECK(x.size() == n, "input_eval: the owner must pass ", n, " values, got ", x.size());
    std::vector<u64> r(n);
    p.keys.get_ring(r, w);
    for (size_t i = 0; i < n; ++i) xh[i] = mod_w(x[i] + r[i], w);
    p.peer.send_ring(xh, w);
  } else {
    p.peer.recv_ring(xh, w);
  }
  return xh;
}

void output_deal(Dealer& d, int receiver, std::span<const u64> r, int w) {
  d.begin("output", r.size());
  d.key(receiver).put_ring(r, w);
}

std::vector<u64> output_eval(Party& p, int receiver, std::span<const u64> x_hat, int w) {
  p.keys.begin("output", x_hat.size());
  if (p.id != receiver) return {};
  std::vector<u64> r(x_hat.size());
  p.keys.get_ring(r, w);
  std::vector<u64> x(x_hat.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = mod_w(x_hat[i] - r[i], w);
  return x;
}

}  // namespace aero::mpc
