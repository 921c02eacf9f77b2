// Three real processes over loopback TCP: dealer, server (weights) and client (prompt). The test
// binary re-executes itself with AERO_MPC_ROLE set; a static hook runs the role and exits before
// GoogleTest starts. Each role derives only its own secret from the shared test seed.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "core/rng.h"
#include "mpc/compare.h"
#include "mpc/linear.h"
#include "mpc/truncation.h"

extern char** environ;
using namespace aero::mpc;

namespace {

const MatShape kShape{4, 24, 6};
constexpr int kW = 40, kF = 10;
const Block kModelSeed{3, 4};

std::vector<u64> client_input() {
  aero::Rng rng(100);
  std::vector<u64> x(kShape.m * kShape.k);
  for (auto& v : x) v = Fixed{kW, kF}.encode(rng.normal());
  return x;
}
std::vector<u64> server_weights() {
  aero::Rng rng(200);
  std::vector<u64> w(kShape.k * kShape.n);
  for (auto& v : w) v = Fixed{kW, kF}.encode(0.3 * rng.normal());
  return w;
}

// ReLU(trunc(x W)) revealed to the client.
void program(Dealer& d) {
  auto r = input_deal(d, kClient, kShape.m * kShape.k, kW);
  auto ry = matmul_w_deal(d, kShape, r, weight_mask(kModelSeed, 0, kShape.k * kShape.n, kW), kW);
  auto rt = trunc_deal(d, {kW, kF, kW, true}, ry);
  output_deal(d, kClient, relu_deal(d, {kW, kW}, rt), kW);
}

std::vector<u64> party_main(Party& p, RemoteDealer& dealer_src) {
  (void)dealer_src;
  std::vector<u64> w_hat(kShape.k * kShape.n), w_plain, x;
  {
    OpScope s(p.peer, "weights");
    if (p.id == kServer) {
      w_plain = server_weights();
      w_hat = mask_weights(w_plain, weight_mask(kModelSeed, 0, w_plain.size(), kW), kW);
      p.peer.send_ring(w_hat, kW);
    } else {
      p.peer.recv_ring(w_hat, kW);
    }
  }
  if (p.id == kClient) x = client_input();
  auto xh = input_eval(p, kClient, x, kShape.m * kShape.k, kW);
  auto yh = matmul_w_eval(p, kShape, xh, w_hat, w_plain, kW);
  auto th = trunc_eval(p, {kW, kF, kW, true}, yh);
  return output_eval(p, kClient, relu_eval(p, {kW, kW}, th), kW);
}

int run_role(const std::string& role) {
  const int pd = std::atoi(std::getenv("AERO_MPC_DEALER_PORT"));
  const int ps = std::atoi(std::getenv("AERO_MPC_SERVER_PORT"));
  const std::string out = std::getenv("AERO_MPC_OUT");
  ChannelOptions o;
  o.timeout_s = 10;
  try {
    if (role == "dealer") {
      int lfd = listen_tcp("127.0.0.1", pd);
      std::unique_ptr<Channel> ch[2];
      for (int i = 0; i < 2; ++i) {
        o.peer = "party";
        auto c = accept_channel(lfd, o);
        auto id = c->recv(8);
        ch[id[0] & 1] = std::move(c);
      }
      AERO_CHECK(ch[0] && ch[1], "dealer: both parties announced the same role");
      serve_keys(*ch[0], *ch[1], program, random_seed());
      std::ofstream(out) << "offline_bytes " << ch[0]->meter().total().bytes_sent << " "
                         << ch[1]->meter().total().bytes_sent << "\n";
      ch[0]->recv(0);  // wait for the parties to finish before closing
      ch[1]->recv(0);
      return 0;
    }
    const int id = role == "server" ? kServer : kClient;
    o.peer = "dealer";
    auto dch = connect_channel("127.0.0.1", pd, o);
    uint8_t idb[8] = {uint8_t(id)};
    dch->send(idb);
    RemoteDealer src(*dch);
    KeyReader keys = src.obtain(id, program);
    std::unique_ptr<Channel> peer;
    if (id == kServer) {
      int lfd = listen_tcp("127.0.0.1", ps);
      o.peer = "client";
      peer = accept_channel(lfd, o);
    } else {
      o.peer = "server";
      peer = connect_channel("127.0.0.1", ps, o);
    }
    Party p{id, *peer, keys};
    auto y = party_main(p, src);
    std::ofstream f(out);
    f << "rounds " << peer->meter().total().rounds << " depth " << peer->meter().total().depth << "\n";
    f << "bytes " << peer->meter().total().bytes_sent << "\n";
    for (u64 v : y) f << v << "\n";
    dch->send({});
    return 0;
  } catch (const std::exception& e) {
    std::ofstream(out) << "error " << e.what() << "\n";
    return 3;
  }
}

// Runs the role and exits before main() when this binary was started as a helper.
const int role_hook = [] {
  if (const char* r = std::getenv("AERO_MPC_ROLE")) std::_Exit(run_role(r));
  return 0;
}();

int free_port() {
  int fd = listen_tcp("127.0.0.1", 0);
  int p = bound_port(fd);
  ::close(fd);
  return p;
}

pid_t spawn(const std::string& role, int pd, int ps, const std::string& out) {
  std::vector<std::string> env = {"AERO_MPC_ROLE=" + role, "AERO_MPC_DEALER_PORT=" + std::to_string(pd),
                                  "AERO_MPC_SERVER_PORT=" + std::to_string(ps), "AERO_MPC_OUT=" + out,
                                  "OMP_NUM_THREADS=1"};
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char exe[] = "/proc/self/exe";
  char* argv[] = {exe, nullptr};
  pid_t pid;
  EXPECT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()), 0);
  return pid;
}

int wait_for(pid_t pid, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -2;
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST(MpcProcesses, DealerServerClientAsSeparateProcessesOverTcp) {
  (void)role_hook;
  const int pd = free_port(), ps = free_port();
  const std::string dir = ::testing::TempDir();
  const std::string od = dir + "/mpc_dealer.txt", os = dir + "/mpc_server.txt",
                    oc = dir + "/mpc_client.txt";
  pid_t d = spawn("dealer", pd, ps, od), s = spawn("server", pd, ps, os),
        c = spawn("client", pd, ps, oc);
  const int rc_c = wait_for(c, 30), rc_s = wait_for(s, 30), rc_d = wait_for(d, 30);
  auto lc = lines(oc), ls = lines(os), ld = lines(od);
  ASSERT_EQ(rc_c, 0) << (lc.empty() ? "" : lc[0]);
  ASSERT_EQ(rc_s, 0) << (ls.empty() ? "" : ls[0]);
  ASSERT_EQ(rc_d, 0) << (ld.empty() ? "" : ld[0]);
  // Plaintext reference: floor((x W) / 2^F), then ReLU.
  auto x = client_input(), W = server_weights();
  ASSERT_EQ(lc.size(), 2 + kShape.m * kShape.n);
  for (size_t i = 0; i < kShape.m; ++i)
    for (size_t j = 0; j < kShape.n; ++j) {
      i64 acc = 0;
      for (size_t k = 0; k < kShape.k; ++k)
        acc += to_signed(x[i * kShape.k + k], kW) * to_signed(W[k * kShape.n + j], kW);
      const i64 want = std::max<i64>(0, acc >> kF);
      EXPECT_EQ(std::stoull(lc[2 + i * kShape.n + j]), u64(want));
    }
  EXPECT_EQ(ls.size(), 2u);  // the server learns no output
  // Rounds (send-then-wait counter): the client's sends of weights-free input and matmul
  // share go out without a wait in between, so it counts 3 (matmul, trunc, relu); the server
  // waited for the input after sending the weights: 4. The causal chain is 5 one-way hops:
  // weights, input, matmul, trunc, relu, ending at the client (the server's last receive is
  // the client's relu share, depth 4).
  EXPECT_EQ(lc[0], "rounds 3 depth 5");
  EXPECT_EQ(ls[0], "rounds 4 depth 4");
}

TEST(MpcProcesses, PeerProcessDiesMidRunAndTheOtherSideErrorsOut) {
  // Server started, client never connects beyond the dealer: the dealer and server time out
  // cleanly with an error instead of hanging. Use short timeouts through a dead dealer port.
  ChannelOptions o;
  o.timeout_s = 0.5;
  o.peer = "dealer";
  const int dead = free_port();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(connect_channel("127.0.0.1", dead, o), aero::Error);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
  // A helper process that is killed mid-run: the survivor's receive fails with "closed".
  const int pd = free_port(), ps = free_port();
  pid_t d = spawn("dealer", pd, ps, ::testing::TempDir() + "/mpc_dead_dealer.txt");
  pid_t s = spawn("server", pd, ps, ::testing::TempDir() + "/mpc_dead_server.txt");
  o.timeout_s = 10;
  o.peer = "dealer";
  auto dch = connect_channel("127.0.0.1", pd, o);
  uint8_t idb[8] = {1};
  dch->send(idb);
  RemoteDealer src(*dch);
  KeyReader keys = src.obtain(kClient, program);
  o.peer = "server";
  auto peer = connect_channel("127.0.0.1", ps, o);
  kill(s, SIGKILL);
  t0 = std::chrono::steady_clock::now();
  Party p{kClient, *peer, keys};
  try {
    party_main(p, src);
    FAIL() << "expected an error";
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("server"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  dch->close();
  wait_for(s, 5);
  EXPECT_NE(wait_for(d, 15), 0);  // the dealer notices the parties are gone and fails
}
