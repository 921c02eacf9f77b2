// Correlated randomness: how the dealer's keys reach the parties.
//
// The dealer runs a DealerProgram: the same sequence of gates the parties will evaluate, but on
// masks instead of masked values (each gate's keygen takes the input masks, writes both
// parties' keys and returns the output masks). Keys are a byte stream per party, read back in
// the same order by the parties' gate evaluations (KeyReader). Each gate starts with a marker,
// so a party that runs a different program fails with a clear "out of step" error.
//
// Seed compression: party 0's additive shares and FSS root seeds come from an AES-CTR stream
// whose 16-byte seed opens party 0's key stream; party 1 receives explicit values
// (value - party 0's share). One party's share of a mask thus costs nothing beyond the seed.
//
// CorrelationProvider hides where the stream comes from: a dealer process over TCP
// (RemoteDealer / serve_keys), an in-process dealer for tests and simulation (LocalDealer), or
// later a dealer-free two-party generator (HE/OT) producing the same streams.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "mpc/prg.h"
#include "mpc/transport.h"

namespace aero::mpc {

class KeyWriter {
 public:
  void put_bytes(std::span<const uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  void put_block(Block b) { put_bytes({reinterpret_cast<const uint8_t*>(&b), 16}); }
  void put_u64(u64 v) { put_bytes({reinterpret_cast<const uint8_t*>(&v), 8}); }
  void put_ring(std::span<const u64> v, int w);
  std::vector<uint8_t>& bytes() { return buf_; }
  size_t size() const { return buf_.size(); }

 private:
  std::vector<uint8_t> buf_;
};

// Next chunk of a streamed key stream (appended to `out`); false at the end of the stream.
using KeySource = std::function<bool(std::vector<uint8_t>& out)>;

class KeyReader {
 public:
  KeyReader() = default;
  KeyReader(int party, std::vector<uint8_t> bytes);
  // Streaming: chunks are pulled from `source` when the buffered bytes run out, and consumed
  // bytes are dropped, so a party holds about one gate's keys (plus one chunk), not the run's.
  KeyReader(int party, KeySource source);
  int party() const { return party_; }
  // Gate marker (see Dealer::begin).
  void begin(const char* gate, u64 count);
  void get_bytes(std::span<uint8_t> out);
  u64 get_u64();
  Block get_block();
  void get_ring(std::span<u64> out, int w);
  // This party's additive share of values the dealer shared with Dealer::share.
  void share(std::span<u64> out, int w);
  // This party's private seeds (Dealer::private_seeds).
  void private_seeds(std::span<Block> out);
  size_t size() const { return total_; }  // bytes received so far (the whole stream, once read)
  size_t remaining() const { return buf_.size() - pos_; }
  // Streaming: reads to the end of the stream (fetch_all), and checks that every key byte
  // was consumed (finish).
  void fetch_all();
  void finish();
  double wait_seconds() const { return wait_s_; }  // time blocked on the source

 private:
  void need(size_t n, const char* what);
  int party_ = 0;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, total_ = 0;
  KeySource src_;
  double wait_s_ = 0;
  Prg p0_;
};

// Hands key chunks from a dealer (thread) to the two parties' streams. The dealer blocks only
// while BOTH parties have more than `limit` bytes queued: the parties run in lockstep (every
// round waits for the peer), so one of them is always able to drain its queue and a party
// waiting for its peer can never starve the other (no deadlock); memory stays about
// 2 x limit + the keys of one round.
class KeyPipe {
 public:
  explicit KeyPipe(size_t limit) : limit_(limit) {}
  void push(int party, std::vector<uint8_t> chunk);  // throws once cancelled
  void close(std::exception_ptr err = nullptr);       // end of both streams (or the dealer's error)
  bool pop(int party, std::vector<uint8_t>& out);     // rethrows the dealer's error
  void cancel();                                      // a consumer failed: unblock the dealer
  size_t pushed(int party) const { return pushed_[party]; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> q_[2];
  size_t queued_[2] = {0, 0}, pushed_[2] = {0, 0}, limit_;
  bool closed_ = false, cancelled_ = false;
  std::exception_ptr err_;
};

class Dealer {
 public:
  explicit Dealer(Block master_seed);
  KeyWriter& key(int party) { return out_[party]; }
  // The dealer's own randomness (masks, party 1's seeds).
  Prg& rng() { return rng_; }
  std::vector<u64> random(size_t n, int w);
  // Writes a marker for `count` instances of `gate` to both streams.
  void begin(const char* gate, u64 count);
  // Additively shares v (in Z_2^w): party 0's share from its seed stream, party 1 explicit.
  void share(std::span<const u64> v, int w);
  // Independent random seeds for both parties (party 0's from its stream, party 1's written).
  void private_seeds(std::span<Block> s0, std::span<Block> s1);
  // Public key material both parties receive (FSS correction words).
  void put_both(std::span<const uint8_t> b) {
    out_[0].put_bytes(b);
    out_[1].put_bytes(b);
  }
  std::vector<uint8_t> take(int party) { return std::move(out_[party].bytes()); }
  // Key bytes written to `party`'s stream so far (handed to the sink or still buffered; party
  // 0's includes its 16-byte stream seed). What the party reads, byte for byte.
  size_t written(int party) const { return sunk_[party] + out_[party].size(); }
  // Streaming: when set, every `begin` hands a party's buffered bytes to sink(party, bytes)
  // once they exceed `chunk` bytes (serve_keys sends them while the program still runs, so
  // the dealer holds one chunk and the parties never wait for the whole program).
  void set_sink(std::function<void(int, std::vector<uint8_t>&)> sink, size_t chunk) {
    sink_ = std::move(sink);
    chunk_ = chunk;
  }
  // Hands whatever is buffered to the sink.
  void flush();

 private:
  Prg rng_, p0_;
  KeyWriter out_[2];
  std::function<void(int, std::vector<uint8_t>&)> sink_;
  size_t chunk_ = 0;
  size_t sunk_[2] = {0, 0};
};

using DealerProgram = std::function<void(Dealer&)>;

// Runs the program, handing its keys to `pipe` in chunks, and closes the pipe (with the
// program's error, which is also returned).
std::exception_ptr deal_into(KeyPipe& pipe, const DealerProgram& program, Block seed, size_t chunk);

class CorrelationProvider {
 public:
  virtual ~CorrelationProvider() = default;
  // This party's correlated randomness for `program`, consumed in program order.
  virtual KeyReader obtain(int party, const DealerProgram& program) = 0;
};

// Runs the program in this process (tests, simulation, benchmarks). Both parties' streams are
// produced on the first call and handed out once each.
class LocalDealer final : public CorrelationProvider {
 public:
  explicit LocalDealer(Block seed) : seed_(seed) {}
  KeyReader obtain(int party, const DealerProgram& program) override;
  double keygen_seconds() const { return seconds_; }
  size_t key_bytes(int party) const { return bytes_[party]; }

 private:
  Block seed_;
  bool done_ = false;
  std::vector<uint8_t> streams_[2];
  size_t bytes_[2] = {0, 0};
  double seconds_ = 0;
};

// A party's end of the dealer connection; the program runs in the dealer process. The keys
// are streamed: the reader pulls the dealer's chunks as the gates need them (call
// KeyReader::finish() after the run).
class RemoteDealer final : public CorrelationProvider {
 public:
  explicit RemoteDealer(Channel& dealer) : ch_(dealer) {}
  KeyReader obtain(int party, const DealerProgram& program) override;

 private:
  Channel& ch_;
};

// Dealer process: runs the program and streams each party its keys (offline traffic), one
// sender thread per party behind a KeyPipe (the program never waits on one slow party).
void serve_keys(Channel& to_party0, Channel& to_party1, const DealerProgram& program,
                Block seed);

}  // namespace aero::mpc
