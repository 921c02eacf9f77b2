// `aero pi bench` figures (see pi_bench.h).
#include "pi/pi_bench.h"

#include <openssl/evp.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "mpc/linear.h"
#include "mpc/local_run.h"
#include "pi/secure_exec.h"
#include "pi/executors.h"

namespace aero::pi {

MachineRates measure_machine_rates() {
  using clk = std::chrono::steady_clock;
  MachineRates r;
  {  // Z_2^64 GEMM as the secure executor runs it (mpc::gemm_acc): 128 x 768 by 768 x 768.
    const size_t T = 128, d = 768;
    std::vector<mpc::u64> a(T * d, 3), b(d * d, 5), c(T * d, 0);
    mpc::gemm_acc({T, d, d}, a.data(), b.data(), c.data());
    auto t0 = clk::now();
    int reps = 3;
    for (int i = 0; i < reps; ++i) mpc::gemm_acc({T, d, d}, a.data(), b.data(), c.data());
    double s = std::chrono::duration<double>(clk::now() - t0).count();
    r.gemm_macs_per_s = double(reps) * T * d * d / s;
  }
  {  // AES-128-ECB over 4 MiB (the PRG of DPF/DCF evaluation).
    std::vector<unsigned char> in(size_t(4) << 20, 1), out(in.size() + 16);
    unsigned char key[16] = {1, 2, 3};
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nullptr, key, nullptr);
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    int len = 0;
    EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), int(in.size()));
    auto t0 = clk::now();
    int reps = 8;
    for (int i = 0; i < reps; ++i) EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), int(in.size()));
    double s = std::chrono::duration<double>(clk::now() - t0).count();
    EVP_CIPHER_CTX_free(ctx);
    r.aes_blocks_per_s = double(reps) * double(in.size() / 16) / s;
  }
  return r;
}

nlohmann::json bench_cost(const model::ModelConfig& cfg, const BenchOptions& o, const MachineRates& rates) {
  using nlohmann::json;
  PiModel m = PiModel::shapes(cfg);
  CostExec ex(o.spec, o.widths, o.reveal_logits, o.stochastic_trunc);
  const int T = cfg.context;
  if (o.scope == Scope::blocks) {
    blocks_forward(ex, m, ex.input(T, cfg.d_model));
  } else {
    std::vector<int32_t> ids(T, 0);
    full_forward(ex, m, ids, false);
  }
  OpCost tot = ex.total();
  // Per party: integer GEMMs plus FSS evaluation (AES-bound). Key generation (dealer): the
  // mask products (one GEMM of each linear's shape) plus about 4 AES blocks per 16 key bytes.
  double compute_s = tot.gemm_macs / rates.gemm_macs_per_s + tot.fss_blocks / rates.aes_blocks_per_s;
  double keygen_s = tot.gemm_macs / 3.0 / rates.gemm_macs_per_s + 2.0 * tot.key_bytes / 16.0 * 4.0 / rates.aes_blocks_per_s;
  // One-time model setup: every weight matrix masked once and sent to the client (issue 5's
  // reusable masked weights), at the accumulator-side width of 32 bits.
  double setup = 0;
  for (const auto& b : m.blocks) {
    setup += double(b.qkv.out) * b.qkv.in + double(b.proj.out) * b.proj.in;
    if (b.has_ffn) {
      if (cfg.ffn_kind == model::FfnKind::fused) setup += double(b.fused.out) * b.fused.in;
      else setup += double(b.fc.out) * b.fc.in + double(b.fc_proj.out) * b.fc_proj.in;
    }
  }
  if (o.scope == Scope::full) setup += double(cfg.vocab_size) * cfg.d_model * (cfg.tie_embeddings ? 1 : 2);
  setup *= 4.0;
  const double gib = double(1ull << 30);
  json ops = json::object();
  for (const auto& [name, c] : ex.ops()) {
    ops[name] = {{"elements", c.elements}, {"online_bytes", c.online_bytes}, {"rounds", c.rounds},
                 {"key_bytes_per_party", c.key_bytes}, {"instances", c.count},
                 {"online_share", c.online_bytes / tot.online_bytes}};
  }
  json lat = json::object();
  for (const auto& p : net_profiles()) lat[p.name] = latency_s(p, compute_s, tot.online_bytes, tot.rounds);
  json j = {{"source", "cost-model (analytic, src/pi/cost_model.cpp; not a socket measurement)"},
            {"scope", to_string(o.scope)},
            {"n_layer", cfg.n_layer}, {"d_model", cfg.d_model}, {"n_head", cfg.n_head}, {"context", T},
            {"softmax", to_string(o.spec.softmax)},
            {"truncation", o.stochastic_trunc ? "stochastic" : "faithful"},
            {"reveal", o.scope == Scope::full ? (o.reveal_logits ? "logits" : "next_token") : "hidden"},
            {"online_bytes", tot.online_bytes}, {"online_gib", tot.online_bytes / gib},
            {"rounds", tot.rounds},
            {"key_bytes_per_party", tot.key_bytes}, {"key_gib_per_party", tot.key_bytes / gib},
            {"model_setup_bytes", setup},
            {"online_compute_s_estimate", compute_s}, {"keygen_s_estimate", keygen_s},
            {"gemm_macs_per_party", tot.gemm_macs}, {"fss_aes_blocks_per_party", tot.fss_blocks},
            {"machine", {{"int64_gemm_macs_per_s", rates.gemm_macs_per_s}, {"aes_blocks_per_s", rates.aes_blocks_per_s}}},
            {"latency_s", lat},
            {"ops", ops}};
  return j;
}

nlohmann::json bench_measured(const model::ModelConfig& full_cfg, const BenchOptions& o, int layers) {
  using nlohmann::json;
  model::ModelConfig cfg = full_cfg;
  AERO_CHECK(layers >= 1 && layers <= full_cfg.n_layer, "--layers ", layers, " outside [1, ", full_cfg.n_layer, "]");
  cfg.n_layer = layers;
  if (cfg.ffn_layers > layers) cfg.ffn_layers = -1;
  PiModel m = PiModel::random(cfg, 7);
  const int T = cfg.context, d = cfg.d_model;
  Rng rng(3);
  std::vector<double> x0(size_t(T) * d);
  for (auto& v : x0) v = rng.normal();
  std::vector<int32_t> ids(T);
  for (auto& t : ids) t = int32_t(rng.below(cfg.vocab_size));
  const mpc::Block seed{0xA5, 0x5A};
  const bool full = o.scope == Scope::full;
  auto program = [&](mpc::Dealer& dl) {
    SecureExec ex(&dl, nullptr, o.spec, seed);
    ex.output_client(full ? full_forward(ex, m, ids, false) : blocks_forward(ex, m, ex.input_client({}, T, d)));
  };
  auto res = mpc::run_local(program, [&](mpc::Party& p) {
    SecureExec ex(nullptr, &p, o.spec, seed);
    bool cl = p.id == mpc::kClient;
    ex.output_client(full ? full_forward(ex, m, cl ? ids : std::vector<int32_t>(T, 0), false)
                          : blocks_forward(ex, m, ex.input_client(cl ? x0 : std::vector<double>{}, T, d)));
  }, {.timeout_s = 600, .stream_keys = true});
  const auto& per = res.meter[0].per_op();
  double setup_bytes = 0, setup_rounds = 0, setup_s = 0;
  if (auto it = per.find("weights"); it != per.end())
    setup_bytes = double(it->second.bytes_sent + it->second.bytes_recv), setup_rounds = double(it->second.rounds),
    setup_s = it->second.seconds;
  double online = double(res.online_bytes()) - setup_bytes;
  double rounds = double(res.rounds()) - setup_rounds;
  double scale = full ? 1.0 : double(full_cfg.n_layer) / layers;
  json ops = json::object();
  for (const auto& [k, v] : per)
    ops[k] = {{"online_bytes", double(v.bytes_sent + v.bytes_recv)}, {"rounds", v.rounds}, {"seconds", v.seconds}};
  const double gib = double(1ull << 30);
  double online_s = res.online_s - setup_s;
  json lat = json::object();
  for (const auto& p : net_profiles()) lat[p.name] = latency_s(p, online_s * scale, online * scale, rounds * scale);
  return {{"source", "measured: 2PC run of src/pi/secure_exec over loopback TCP (src/mpc), random weights"},
          {"scope", to_string(o.scope)}, {"softmax", to_string(o.spec.softmax)}, {"truncation", o.spec.stochastic_trunc ? "stochastic" : "faithful"},
          {"layers_run", layers}, {"n_layer", full_cfg.n_layer}, {"context", T}, {"d_model", d},
          {"extrapolated", !full && layers != full_cfg.n_layer},
          {"measured", {{"online_bytes", online}, {"rounds", rounds}, {"key_bytes_per_party", double(res.key_bytes[1])},
                        {"keygen_s", res.keygen_s}, {"online_s", online_s}, {"model_setup_bytes", setup_bytes},
                        {"keys_streamed", true}}},
          {"online_bytes", online * scale}, {"online_gib", online * scale / gib}, {"rounds", rounds * scale},
          {"key_bytes_per_party", double(res.key_bytes[1]) * scale},
          {"key_gib_per_party", double(res.key_bytes[1]) * scale / gib},
          {"keygen_s", res.keygen_s * scale}, {"online_s", online_s * scale},
          {"latency_s", lat}, {"ops", ops}};
}

}  // namespace aero::pi
