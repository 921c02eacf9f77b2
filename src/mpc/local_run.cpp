#include "mpc/local_run.h"

#include <chrono>
#include <atomic>
#include <exception>
#include <thread>

#include <time.h>

namespace aero::mpc {

LocalRunResult run_local(const DealerProgram& program, const std::function<void(Party&)>& body,
                         const LocalRunOptions& opt) {
  LocalRunResult res;
  KeyPipe pipe(opt.stream_limit);
  std::thread dealer_thread;
  KeyReader keys[2];
  if (opt.stream_keys) {
    dealer_thread = std::thread([&] {
      auto t0 = std::chrono::steady_clock::now();
      deal_into(pipe, program, opt.dealer_seed, opt.stream_chunk);  // errors reach the parties
      res.keygen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    });
  } else {
    LocalDealer dealer(opt.dealer_seed);
    keys[0] = dealer.obtain(0, program);
    keys[1] = dealer.obtain(1, program);
    res.keygen_s = dealer.keygen_seconds();
    for (int p = 0; p < 2; ++p) res.key_bytes[p] = dealer.key_bytes(p);
  }
  ChannelOptions co[2];
  for (int p = 0; p < 2; ++p) {
    co[p].peer = p == 0 ? "client" : "server";
    co[p].timeout_s = opt.timeout_s;
    co[p].net = opt.net;
    co[p].tap = opt.tap[p];
  }
  auto [c0, c1] = loopback_pair(co[0], co[1]);
  std::unique_ptr<Channel> ch[2] = {std::move(c0), std::move(c1)};
  std::exception_ptr err[2];
  int err_order[2] = {0, 0};
  std::atomic<int> errors{0};
  double secs[2] = {0, 0};
  auto run = [&](int p) {
    auto t0 = std::chrono::steady_clock::now();
    try {
      if (opt.stream_keys)  // here, so that a dealer failure surfaces as this party's error
        keys[p] = KeyReader(p, [&pipe, p](std::vector<uint8_t>& out) { return pipe.pop(p, out); });
      Party party{p, *ch[p], keys[p]};
      body(party);
      if (opt.stream_keys) keys[p].finish();
    } catch (...) {
      err[p] = std::current_exception();
      err_order[p] = ++errors;
      ch[p]->close();  // the other party fails fast instead of waiting for its timeout
    }
    secs[p] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - keys[p].wait_seconds();
  };
  auto cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  const double cpu0 = cpu();
  std::thread t1(run, 1);
  run(0);
  t1.join();
  res.online_cpu_s = cpu() - cpu0;
  if (opt.stream_keys) {
    pipe.cancel();  // a failed party leaves the dealer blocked on a full pipe
    dealer_thread.join();
    for (int p = 0; p < 2; ++p) res.key_bytes[p] = pipe.pushed(p);
  }
  // The first failure is the cause; the other party's is its consequence (peer closed).
  if (err[0] || err[1]) {
    const int first = !err[1] ? 0 : !err[0] ? 1 : (err_order[0] < err_order[1] ? 0 : 1);
    std::rethrow_exception(err[first]);
  }
  for (int p = 0; p < 2; ++p) res.meter[p] = ch[p]->meter();
  res.online_s = std::max(secs[0], secs[1]);
  return res;
}

}  // namespace aero::mpc
