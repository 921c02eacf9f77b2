#include "mpc/keys.h"

#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

namespace aero::mpc {

namespace {
uint32_t gate_hash(const char* s) {
  uint32_t h = 2166136261u;
  for (; *s; ++s) h = (h ^ uint8_t(*s)) * 16777619u;
  return h;
}
constexpr size_t kChunk = size_t(64) << 20;
}  // namespace

void KeyWriter::put_ring(std::span<const u64> v, int w) {
  size_t off = buf_.size();
  buf_.resize(off + packed_bytes(v.size(), w));
  pack_bits(v, w, {buf_.data() + off, packed_bytes(v.size(), w)});
}

KeyReader::KeyReader(int party, std::vector<uint8_t> bytes)
    : party_(party), buf_(std::move(bytes)), total_(buf_.size()) {
  AERO_CHECK(party == 0 || party == 1, "party must be 0 or 1, got ", party);
  if (party_ == 0) p0_.reseed(get_block());
}

KeyReader::KeyReader(int party, KeySource source) : party_(party), src_(std::move(source)) {
  AERO_CHECK(party == 0 || party == 1, "party must be 0 or 1, got ", party);
  if (party_ == 0) p0_.reseed(get_block());
}

void KeyReader::fetch_all() {
  need(SIZE_MAX / 2, nullptr);
}

void KeyReader::finish() {
  fetch_all();
  AERO_CHECK(pos_ == buf_.size(), "key stream of party ", party_, ": ", buf_.size() - pos_,
             " key bytes left unused: the dealer ran a different program");
}

void KeyReader::need(size_t n, const char* what) {
  if (pos_ + n > buf_.size() && src_) {
    buf_.erase(buf_.begin(), buf_.begin() + std::ptrdiff_t(pos_));  // drop consumed keys
    pos_ = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (n > buf_.size() && src_) {
      std::vector<uint8_t> c;
      if (!src_(c)) src_ = nullptr;
      total_ += c.size();
      buf_.insert(buf_.end(), c.begin(), c.end());
    }
    wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (!what) return;  // fetch_all
  AERO_CHECK(pos_ + n <= buf_.size(), "key stream of party ", party_, " exhausted while reading ",
             what, " (", n, " bytes needed, ", buf_.size() - pos_,
             " left): the dealer ran a different program");
}

void KeyReader::get_bytes(std::span<uint8_t> out) {
  need(out.size(), "key bytes");
  std::memcpy(out.data(), buf_.data() + pos_, out.size());
  pos_ += out.size();
}

u64 KeyReader::get_u64() {
  u64 v;
  get_bytes({reinterpret_cast<uint8_t*>(&v), 8});
  return v;
}

Block KeyReader::get_block() {
  Block b;
  get_bytes({reinterpret_cast<uint8_t*>(&b), 16});
  return b;
}

void KeyReader::get_ring(std::span<u64> out, int w) {
  size_t n = packed_bytes(out.size(), w);
  need(n, "ring elements");
  unpack_bits({buf_.data() + pos_, n}, w, out);
  pos_ += n;
}

void KeyReader::begin(const char* gate, u64 count) {
  need(8, gate);
  u64 m = get_u64();
  u64 want = (u64(gate_hash(gate)) << 32) | (count & 0xffffffffu);
  AERO_CHECK(m == want, "key stream of party ", party_, " out of step at gate '", gate, "' x ",
             count, ": the dealer generated keys for a different gate or size");
}

void KeyReader::share(std::span<u64> out, int w) {
  if (party_ == 0) p0_.fill(out, w);
  else get_ring(out, w);
}

void KeyReader::private_seeds(std::span<Block> out) {
  if (party_ == 0)
    for (auto& b : out) b = p0_.next_block();
  else
    get_bytes({reinterpret_cast<uint8_t*>(out.data()), out.size() * 16});
}

Dealer::Dealer(Block master_seed) : rng_(master_seed, 1) {
  Block s0 = rng_.next_block();
  p0_.reseed(s0);
  out_[0].put_block(s0);
}

std::vector<u64> Dealer::random(size_t n, int w) {
  std::vector<u64> v(n);
  rng_.fill(v, w);
  return v;
}

void Dealer::flush() {
  if (!sink_) return;
  for (int p = 0; p < 2; ++p)
    if (!out_[p].bytes().empty()) {
      sunk_[p] += out_[p].bytes().size();
      sink_(p, out_[p].bytes());
      out_[p].bytes().clear();
    }
}

void Dealer::begin(const char* gate, u64 count) {
  if (sink_)
    for (int p = 0; p < 2; ++p)
      if (out_[p].bytes().size() >= chunk_) {
        sunk_[p] += out_[p].bytes().size();
        sink_(p, out_[p].bytes());
        out_[p].bytes().clear();
      }
  u64 m = (u64(gate_hash(gate)) << 32) | (count & 0xffffffffu);
  out_[0].put_u64(m);
  out_[1].put_u64(m);
}

void Dealer::share(std::span<const u64> v, int w) {
  std::vector<u64> s0(v.size());
  p0_.fill(s0, w);
  for (size_t i = 0; i < v.size(); ++i) s0[i] = mod_w(v[i] - s0[i], w);
  out_[1].put_ring(s0, w);
}

void Dealer::private_seeds(std::span<Block> s0, std::span<Block> s1) {
  for (auto& b : s0) b = p0_.next_block();
  for (auto& b : s1) b = rng_.next_block();
  out_[1].put_bytes({reinterpret_cast<const uint8_t*>(s1.data()), s1.size() * 16});
}

void KeyPipe::push(int party, std::vector<uint8_t> chunk) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return cancelled_ || queued_[0] <= limit_ || queued_[1] <= limit_; });
  AERO_CHECK(!cancelled_, "key stream cancelled: a party stopped");
  queued_[party] += chunk.size();
  pushed_[party] += chunk.size();
  q_[party].push_back(std::move(chunk));
  cv_.notify_all();
}

void KeyPipe::close(std::exception_ptr err) {
  std::lock_guard<std::mutex> lk(mu_);
  closed_ = true;
  err_ = err;
  cv_.notify_all();
}

void KeyPipe::cancel() {
  std::lock_guard<std::mutex> lk(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

bool KeyPipe::pop(int party, std::vector<uint8_t>& out) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !q_[party].empty() || closed_ || cancelled_; });
  if (err_) std::rethrow_exception(err_);
  AERO_CHECK(!cancelled_ || !q_[party].empty() || closed_, "key stream cancelled");
  if (q_[party].empty()) return false;
  auto c = std::move(q_[party].front());
  q_[party].pop_front();
  queued_[party] -= c.size();
  out.insert(out.end(), c.begin(), c.end());
  cv_.notify_all();
  return true;
}

std::exception_ptr deal_into(KeyPipe& pipe, const DealerProgram& program, Block seed, size_t chunk) {
  try {
    Dealer d(seed);
    d.set_sink([&](int p, std::vector<uint8_t>& b) { pipe.push(p, std::move(b)); b = {}; }, chunk);
    program(d);
    d.flush();
    pipe.close();
    return nullptr;
  } catch (...) {
    auto err = std::current_exception();
    pipe.close(err);
    return err;
  }
}

KeyReader LocalDealer::obtain(int party, const DealerProgram& program) {
  AERO_CHECK(party == 0 || party == 1, "party must be 0 or 1, got ", party);
  if (!done_) {
    auto t0 = std::chrono::steady_clock::now();
    Dealer d(seed_);
    program(d);
    for (int p = 0; p < 2; ++p) {
      streams_[p] = d.take(p);
      bytes_[p] = streams_[p].size();
    }
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done_ = true;
  }
  return KeyReader(party, std::move(streams_[party]));
}

KeyReader RemoteDealer::obtain(int party, const DealerProgram&) {
  OpScope scope(ch_, "keys");
  auto head = ch_.recv(8);
  u64 who;
  std::memcpy(&who, head.data(), 8);
  AERO_CHECK(who == u64(party), "dealer sent keys for party ", who, " to party ", party,
             " (roles swapped?)");
  // Chunks as the dealer generates them, pulled when the gates need them; an empty frame
  // ends the stream.
  Channel* ch = &ch_;
  return KeyReader(party, [ch](std::vector<uint8_t>& out) {
    OpScope s(*ch, "keys");
    auto chunk = ch->recv();
    out.insert(out.end(), chunk.begin(), chunk.end());
    return !chunk.empty();
  });
}

void serve_keys(Channel& to_party0, Channel& to_party1, const DealerProgram& program,
                Block seed) {
  Channel* chs[2] = {&to_party0, &to_party1};
  std::optional<OpScope> scopes[2];
  for (int p = 0; p < 2; ++p) {
    scopes[p].emplace(*chs[p], "keys");
    const u64 who = u64(p);
    chs[p]->send({reinterpret_cast<const uint8_t*>(&who), 8});
  }
  KeyPipe pipe(2 * kChunk);
  std::exception_ptr err[2];
  auto sender = [&](int p) {
    try {
      std::vector<uint8_t> c;
      while (pipe.pop(p, c)) {
        chs[p]->send(c);
        c.clear();
      }
      chs[p]->send(std::span<const uint8_t>());
    } catch (...) {
      err[p] = std::current_exception();
      pipe.cancel();
    }
  };
  std::thread t0(sender, 0), t1(sender, 1);
  std::exception_ptr perr = deal_into(pipe, program, seed, kChunk);
  t0.join();
  t1.join();
  for (int p = 0; p < 2; ++p)
    if (err[p]) std::rethrow_exception(err[p]);
  if (perr) std::rethrow_exception(perr);
}

}  // namespace aero::mpc
