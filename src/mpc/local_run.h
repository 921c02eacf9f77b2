// Runs a two-party computation inside one process: a LocalDealer produces the keys, the two
// parties run in two threads over a loopback TCP connection (the same Channel code as separate
// processes). Used by tests, benchmarks and simulation; `body` is the party-side program and
// must read keys in the order `program` wrote them.
#pragma once
#include <functional>

#include "mpc/party.h"

namespace aero::mpc {

struct LocalRunOptions {
  NetProfile net;
  double timeout_s = 30;
  Block dealer_seed = {0x1234, 0x5678};
  Tap tap[2];  // traffic capture per party
  // Stream the keys: the dealer runs in its own thread while the parties compute, handing
  // chunks over a KeyPipe (memory: about 2 x stream_limit + one round's keys, instead of the
  // whole run's keys of both parties). keygen_s is then the dealer thread's wall time
  // (overlapping the online phase), and online_s excludes the time the parties waited for keys.
  bool stream_keys = false;
  size_t stream_limit = size_t(256) << 20;
  size_t stream_chunk = size_t(16) << 20;
};

struct LocalRunResult {
  Meter meter[2];          // online traffic as seen by each party
  size_t key_bytes[2] = {0, 0};
  double keygen_s = 0;
  double online_s = 0;     // wall time of the slower party
  double online_cpu_s = 0; // CPU time of the process during the online phase (both parties;
                           // robust to other load on the machine)
  u64 rounds() const { return std::max(meter[0].total().rounds, meter[1].total().rounds); }
  // Online bytes, both directions together (counted at party 0's socket).
  u64 online_bytes() const { return meter[0].total().bytes_sent + meter[0].total().bytes_recv; }
};

LocalRunResult run_local(const DealerProgram& program, const std::function<void(Party&)>& body,
                         const LocalRunOptions& opt = {});

}  // namespace aero::mpc
