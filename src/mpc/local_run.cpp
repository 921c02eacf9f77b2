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
  LocalDealer dealer(opt.dealer_seed);
  KeyReader keys[2] = {dealer.obtain(0, program), dealer.obtain(1, program)};
  res.keygen_s = dealer.keygen_seconds();
  for (int p = 0; p < 2; ++p) res.key_bytes[p] = dealer.key_bytes(p);
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
      Party party{p, *ch[p], keys[p]};
      body(party);
    } catch (...) {
      err[p] = std::current_exception();
      err_order[p] = ++errors;
      ch[p]->close();  // the other party fails fast instead of waiting for its timeout
    }
    secs[p] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
