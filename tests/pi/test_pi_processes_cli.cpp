// `aero pi dealer`, `aero pi server` and `aero pi client` as three real processes on loopback
// ports (the deployment path of docs/private_inference.md): the client's revealed logits must
// equal the fixed-point simulation of the same (random) model bit for bit, and with
// --reveal token the next token must be the simulation's argmax.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "model/config.h"
#include "pi/executors.h"
#include "pi/graph.h"
#include "pi/pi_model.h"

namespace fs = std::filesystem;
using namespace aero;

namespace {

// Starts `args` (argv[0] = the aero binary) with stdout/stderr to `log`; returns the pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> av;
    for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `seconds` for pid; kills it (only this pid) if it is still running.
int wait_for(pid_t pid, double seconds) {
  int status = 0;
  for (int i = 0; i < int(seconds * 20); ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    usleep(50000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// A port the kernel reports free right now (bound to port 0, then released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return 0;
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST(PiProcesses, DealerServerClientMatchFixedPointSimulation) {
  const std::string aero_bin = std::string(AERO_BINARY_DIR) + "/aero";
  if (!fs::exists(aero_bin)) GTEST_SKIP() << aero_bin << " not built";
  const std::string dir = (fs::temp_directory_path() / ("aero_pi_procs_" + std::to_string(::getpid()))).string();
  fs::create_directories(dir);
  const std::vector<std::string> sets = {"model.n_layer=2", "model.d_model=16", "model.n_head=2",
                                         "model.vocab_size=37", "model.context=8", "model.d_ff=32"};
  const std::vector<int32_t> ids = {3, 14, 15, 9, 26, 5};
  std::string ids_s;
  for (auto t : ids) ids_s += (ids_s.empty() ? "" : " ") + std::to_string(t);

  // The reference: the same random model (seed 5) under the fixed-point simulation.
  auto cfg = model::build_run_config("", "tiny", "SM+LN+G", sets).model;
  auto m = pi::PiModel::random(cfg, 5);
  pi::FixedExec fx;
  auto want_logits = fx.output(pi::full_forward(fx, m, ids, false));
  pi::FixedExec fx2;
  const int want_token = pi::argmax_rows(pi::full_forward(fx2, m, ids, false))[0];

  // Default engine (faithful, qk_bits 60) for both reveals; the narrow plan (--qk-bits 52,
  // faithful: still bit for bit) and stochastic truncation (within 2% of the logits' RMS) too.
  struct Case {
    std::string reveal;
    std::vector<std::string> extra;
    bool exact;
  };
  const std::vector<Case> cases = {{"logits", {}, true},
                                   {"token", {}, true},
                                   {"logits", {"--qk-bits", "52"}, true},
                                   {"logits", {"--trunc", "stochastic"}, false}};
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const std::string& reveal = cases[ci].reveal;
    const int dport = free_port(), sport = free_port();
    ASSERT_TRUE(dport > 0 && sport > 0 && dport != sport);
    std::vector<std::string> common = {"--preset", "tiny", "--rung", "SM+LN+G", "--random-weights", "5",
                                       "--reveal", reveal, "--timeout", "60"};
    for (const auto& s : sets) common.insert(common.end(), {"--set", s});
    common.insert(common.end(), cases[ci].extra.begin(), cases[ci].extra.end());
    auto with = [&](std::vector<std::string> a) {
      a.insert(a.begin(), aero_bin);
      a.insert(a.end(), common.begin(), common.end());
      return a;
    };
    const std::string tag = dir + "/" + reveal + std::to_string(ci);
    pid_t dealer = spawn(with({"pi", "dealer", "--port", std::to_string(dport), "--tokens", std::to_string(ids.size())}),
                         tag + ".dealer.log");
    pid_t server = spawn(with({"pi", "server", "--port", std::to_string(sport), "--dealer",
                               "127.0.0.1:" + std::to_string(dport), "--tokens", std::to_string(ids.size())}),
                         tag + ".server.log");
    pid_t client = spawn(with({"pi", "client", "--server", "127.0.0.1:" + std::to_string(sport), "--dealer",
                               "127.0.0.1:" + std::to_string(dport), "--ids", ids_s, "--json"}),
                         tag + ".client.log");
    const int rc_client = wait_for(client, 120), rc_server = wait_for(server, 30), rc_dealer = wait_for(dealer, 30);
    const std::string out = slurp(tag + ".client.log");
    ASSERT_EQ(rc_client, 0) << reveal << " client:\n" << out << "\nserver:\n" << slurp(tag + ".server.log")
                            << "\ndealer:\n" << slurp(tag + ".dealer.log");
    EXPECT_EQ(rc_server, 0) << slurp(tag + ".server.log");
    EXPECT_EQ(rc_dealer, 0) << slurp(tag + ".dealer.log");
    EXPECT_NE(slurp(tag + ".server.log").find("server: online"), std::string::npos);
    EXPECT_NE(slurp(tag + ".dealer.log").find("dealer: keys sent"), std::string::npos);
    auto j = nlohmann::json::parse(out.substr(out.rfind("{\"")));
    EXPECT_GT(j["rounds"].get<int>(), 10);
    EXPECT_GT(j["key_bytes"].get<double>(), 0);
    if (reveal == "logits") {
      auto got = j["logits"].get<std::vector<double>>();
      ASSERT_EQ(got.size(), want_logits.size());
      if (cases[ci].exact) {
        for (size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], want_logits[k]) << "case " << ci << " logit " << k;
        EXPECT_EQ(j["next_token"].get<int>(), want_token);
      } else {
        double ss = 0, worst = 0;
        for (size_t k = 0; k < got.size(); ++k)
          ss += want_logits[k] * want_logits[k], worst = std::max(worst, std::abs(got[k] - want_logits[k]));
        EXPECT_GT(worst, 0.0) << "stochastic truncation should differ from the faithful simulation somewhere";
        EXPECT_LT(worst, 0.02 * std::sqrt(ss / double(got.size()))) << "case " << ci;
      }
    } else {
      EXPECT_EQ(j["next_token"].get<int>(), want_token);
      EXPECT_FALSE(j.contains("logits"));
    }
  }
  fs::remove_all(dir);
}
