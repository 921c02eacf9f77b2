// `aero pi dealer|server|client|export-public`: private inference between separate processes
// (possibly separate machines): the dealer hands out correlated randomness, the server holds the
// weights, the client holds the token ids and receives the last position's logits.
//
//   aero pi export-public CKPT public.safetensors            (server side, once)
//   aero pi dealer --port 7000 --public public.safetensors --tokens 16
//   aero pi server --port 7001 --dealer HOST:7000 --checkpoint CKPT --tokens 16
//   aero pi client --server HOST:7001 --dealer HOST:7000 --public public.safetensors --ids "1 2 3 ..."
// (or --random-weights SEED with --preset/--rung/--set on all three, for cost runs and demos.)
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/config_options.h"
#include "cli/registry.h"
#include "core/error.h"
#include "mpc/keys.h"
#include "mpc/party.h"
#include "mpc/transport.h"
#include "pi/pi_model.h"
#include "pi/secure_exec.h"
#include "train/checkpoint.h"

namespace {
using namespace aero;

struct NetArgs {
  std::string host = "127.0.0.1", dealer = "127.0.0.1:7000", server = "127.0.0.1:7001";
  int port = 0, tokens = 0;
  std::string checkpoint, pub, ids, softmax = "exact_max", net = "none", reveal = "logits", trunc = "faithful";
  int qk_bits = pi::FxSpec{}.qk_bits, exp_rounds = 0;
  std::string lut_products = pi::to_string(pi::FxSpec{}.lut_products);
  long long random_seed = -1;
  double timeout = 600;
  bool json = false;
};

std::pair<std::string, int> host_port(const std::string& s) {
  auto c = s.rfind(':');
  AERO_CHECK(c != std::string::npos, "'", s, "': expected HOST:PORT");
  return {s.substr(0, c), std::stoi(s.substr(c + 1))};
}

void add_common(CLI::App* sub, NetArgs& a, bool with_public) {
  sub->add_option("--softmax", a.softmax, "exact_max or clipped (all three must agree)")->capture_default_str();
  sub->add_option("--trunc", a.trunc, "faithful (bit-exact with --pi-sim) or stochastic (all three must agree)")
      ->capture_default_str();
  sub->add_option("--qk-bits", a.qk_bits,
                  "ring of Q, K and the scores (48..64; 52 = the narrow plan, |logit| < 64; `aero pi eval` prints what "
                  "a checkpoint needs; all three must agree)")
      ->capture_default_str();
  sub->add_option("--lut-products", a.lut_products,
                  "on|off|auto (on with --trunc stochastic): LayerNorm's and the softmax normalization's products inside "
                  "their lookups (all three must agree)")
      ->capture_default_str();
  sub->add_option("--exp-rounds", a.exp_rounds, "exp rounds: 1 (--trunc stochastic, --qk-bits <= 60: the free truncate-reduce of the logit difference indexes one lookup), 2, or 0 = auto (1 where valid); all three must agree")->capture_default_str();
  sub->add_option("--net", a.net, "network emulation profile of src/mpc (none, lan, 1g, wan400, wan100)")->capture_default_str();
  sub->add_option("--timeout", a.timeout, "seconds to wait for a peer")->capture_default_str();
  sub->add_option("--reveal", a.reveal, "logits (last position) or token (secure argmax: only the next token); all three must agree")->capture_default_str();
  sub->add_option("--random-weights", a.random_seed, "use a random model of the --preset/--rung/--set config (demo, cost)");
  if (with_public) sub->add_option("--public", a.pub, "public part of the model (aero pi export-public)");
}

pi::PiModel load_public(const NetArgs& a, const cli::ConfigOptions& o) {
  if (a.random_seed >= 0) return pi::PiModel::random(o.build().model, uint64_t(a.random_seed));
  AERO_CHECK(!a.pub.empty(), "give --public FILE (aero pi export-public) or --random-weights SEED");
  return pi::PiModel::public_model(a.pub);
}

mpc::ChannelOptions chan(const NetArgs& a, const char* peer) {
  mpc::ChannelOptions o;
  o.peer = peer;
  o.timeout_s = a.timeout;
  o.net = mpc::NetProfile::named(a.net);
  return o;
}

pi::FxSpec spec_of(const NetArgs& a) {
  return pi::engine_spec(a.softmax, a.trunc, a.qk_bits, a.lut_products, a.exp_rounds);
}

const mpc::Block kModelSeedDomain{0x6165726f, 0x7069};  // R_W seed shared by server and dealer

void dealer_program(mpc::Dealer& d, const pi::PiModel& m, int T, const pi::FxSpec& s, bool token) {
  pi::SecureExec ex(&d, nullptr, s, kModelSeedDomain);
  auto y = pi::full_forward(ex, m, std::vector<int32_t>(T, 0), false);
  ex.output_client(token ? ex.argmax(y) : y);
}

aero::cli::Registrar reg("pi_net", [](CLI::App& app) {
  auto* pi = app.get_subcommand("pi");
  {
    auto* sub = pi->add_subcommand("export-public", "Write the public part of a checkpoint for the client and the dealer");
    auto a = std::make_shared<std::pair<std::string, std::string>>();
    sub->add_option("checkpoint", a->first, "checkpoint file or run directory")->required();
    sub->add_option("out", a->second, "output .safetensors")->required();
    sub->callback([a] {
      pi::PiModel::export_public(train::resolve_checkpoint(a->first), a->second);
      std::printf("wrote %s\n", a->second.c_str());
    });
  }
  {
    auto* sub = pi->add_subcommand("dealer", "Dealer process: correlated randomness for one private inference");
    auto a = std::make_shared<NetArgs>();
    auto o = cli::add_config_options(sub);
    sub->add_option("--host", a->host, "listen address")->capture_default_str();
    sub->add_option("--port", a->port, "listen port")->required();
    sub->add_option("--tokens", a->tokens, "prompt length (public)")->required();
    add_common(sub, *a, true);
    sub->callback([a, o] {
      auto m = load_public(*a, *o);
      int lfd = mpc::listen_tcp(a->host, a->port);
      std::unique_ptr<mpc::Channel> ch[2];
      for (int i = 0; i < 2; ++i) {
        auto c = mpc::accept_channel(lfd, chan(*a, "party"));
        auto id = c->recv(8);
        ch[id[0] & 1] = std::move(c);
      }
      AERO_CHECK(ch[0] && ch[1], "dealer: both parties announced the same role");
      auto t0 = std::chrono::steady_clock::now();
      auto s = spec_of(*a);
      mpc::serve_keys(*ch[0], *ch[1], [&](mpc::Dealer& d) { dealer_program(d, m, a->tokens, s, a->reveal == "token"); }, mpc::random_seed());
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("dealer: keys sent %llu B to the server, %llu B to the client, %.2f s\n",
                  (unsigned long long)ch[0]->meter().total().bytes_sent,
                  (unsigned long long)ch[1]->meter().total().bytes_sent, sec);
      ch[0]->recv(0);
      ch[1]->recv(0);
    });
  }
  for (int role : {0, 1}) {
    auto* sub = pi->add_subcommand(role == 0 ? "server" : "client",
                                   role == 0 ? "Server process: holds the weights" : "Client process: holds the token ids, receives the logits");
    auto a = std::make_shared<NetArgs>();
    auto o = cli::add_config_options(sub);
    sub->add_option("--dealer", a->dealer, "dealer HOST:PORT")->capture_default_str();
    if (role == 0) {
      sub->add_option("--host", a->host, "listen address")->capture_default_str();
      sub->add_option("--port", a->port, "listen port for the client")->required();
      sub->add_option("--tokens", a->tokens, "prompt length (public)")->required();
      sub->add_option("--checkpoint", a->checkpoint, "the model (file or run directory)");
    } else {
      sub->add_option("--server", a->server, "server HOST:PORT")->capture_default_str();
      sub->add_option("--ids", a->ids, "prompt token ids, space separated")->required();
      sub->add_flag("--json", a->json, "print one JSON object");
    }
    add_common(sub, *a, role == 1);
    sub->callback([a, o, role] {
      std::vector<int32_t> ids;
      if (role == 1) {
        std::istringstream is(a->ids);
        for (int32_t t; is >> t;) ids.push_back(t);
        a->tokens = int(ids.size());
        AERO_CHECK(!ids.empty(), "--ids: no token id given");
      }
      pi::PiModel m = role == 0 && !a->checkpoint.empty() && a->random_seed < 0
                          ? pi::PiModel::load(train::resolve_checkpoint(a->checkpoint))
                          : load_public(*a, *o);
      AERO_CHECK(a->tokens <= m.cfg.context, "prompt of ", a->tokens, " tokens exceeds the context ", m.cfg.context);
      for (auto t : ids) AERO_CHECK(t >= 0 && t < m.cfg.vocab_size, "token id ", t, " outside the vocabulary");
      auto s = spec_of(*a);
      auto [dh, dp] = host_port(a->dealer);
      auto dch = mpc::connect_channel(dh, dp, chan(*a, "dealer"));
      uint8_t idb[8] = {uint8_t(role)};
      dch->send(idb);
      mpc::RemoteDealer src(*dch);
      const int T = a->tokens;
      auto t0 = std::chrono::steady_clock::now();
      mpc::KeyReader keys = src.obtain(role, [&](mpc::Dealer& d) { dealer_program(d, m, T, s, a->reveal == "token"); });
      auto t1 = std::chrono::steady_clock::now();
      std::unique_ptr<mpc::Channel> peer;
      if (role == 0) {
        peer = mpc::accept_channel(mpc::listen_tcp(a->host, a->port), chan(*a, "client"));
        uint8_t tb[8] = {};
        std::memcpy(tb, &a->tokens, 4);
        peer->send(tb);
      } else {
        auto [sh, sp] = host_port(a->server);
        peer = mpc::connect_channel(sh, sp, chan(*a, "server"));
        auto tb = peer->recv(8);
        int st = 0;
        std::memcpy(&st, tb.data(), 4);
        AERO_CHECK(st == T, "the server runs ", st, " tokens, the client has ", T);
      }
      mpc::Party p{role, *peer, keys};
      pi::SecureExec ex(nullptr, &p, s, kModelSeedDomain);
      auto y = pi::full_forward(ex, m, role == 1 ? ids : std::vector<int32_t>(T, 0), false);
      const bool token = a->reveal == "token";
      auto logits = ex.output_client(token ? ex.argmax(y) : y);
      double online = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
      double offline = std::chrono::duration<double>(t1 - t0).count();
      const auto tot = peer->meter().total();
      keys.finish();  // the rest of the streamed keys (the end marker); all must be used
      u_int64_t setup = 0;
      if (auto it = peer->meter().per_op().find("weights"); it != peer->meter().per_op().end())
        setup = it->second.bytes_sent + it->second.bytes_recv;
      dch->send({});
      if (role == 0) {
        std::printf("server: online %llu B sent, %llu B received (model setup %llu B), %llu rounds, %.2f s; keys %zu B in %.2f s\n",
                    (unsigned long long)tot.bytes_sent, (unsigned long long)tot.bytes_recv, (unsigned long long)setup,
                    (unsigned long long)tot.rounds, online, keys.size(), offline);
        return;
      }
      int best = 0;
      if (token) {
        best = int(std::lround(logits[0] * (1 << s.f)));  // the index wire carries an integer
      } else {
        for (size_t v = 1; v < logits.size(); ++v)
          if (logits[v] > logits[best]) best = int(v);
      }
      nlohmann::json j = {{"next_token", best}, {"reveal", a->reveal}, {"online_bytes_sent", tot.bytes_sent},
                          {"online_bytes_recv", tot.bytes_recv}, {"model_setup_bytes", setup}, {"rounds", tot.rounds},
                          {"online_s", online}, {"key_bytes", keys.size()}, {"offline_s", offline}};
      if (a->json && !token) j["logits"] = logits;
      std::printf("%s\n", a->json ? j.dump().c_str() : j.dump(2).c_str());
    });
  }
});

}  // namespace
