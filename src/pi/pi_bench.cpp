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

namespace {
// The engine configuration a cost figure belongs to (both the counted and the measured JSON).
nlohmann::json engine_fields(const BenchOptions& o) {
  const FxSpec& spec = o.spec;
  return {{"scope", to_string(o.scope)}, {"softmax", to_string(spec.softmax)},
          {"truncation", spec.stochastic_trunc ? "stochastic" : "faithful"}, {"qk_bits", spec.qk_bits},
          {"lut_products", spec.products_in_lookups()}, {"exp_rounds", spec.exp_one_round() ? 1 : 2},
          {"reveal", o.scope == Scope::full ? (o.reveal_logits ? "logits" : "next_token") : "hidden"}};
}
}  // namespace

nlohmann::json bench_cost(const model::ModelConfig& cfg, const BenchOptions& o, const MachineRates& rates) {
  using nlohmann::json;
  const FxSpec& spec = o.spec;
  const CostCount c = count_cost(cfg, o.scope, spec, o.reveal_logits);
  const int T = cfg.context;
  // Per party: integer GEMMs plus FSS evaluation (AES-bound). Key generation (dealer): the
  // mask products (one GEMM of each product's shape) plus about 4 AES blocks per 16 key bytes.
  double compute_s = c.gemm_macs / rates.gemm_macs_per_s + c.fss_blocks / rates.aes_blocks_per_s;
  double keygen_s = c.gemm_macs / 2.0 / rates.gemm_macs_per_s +
                    (c.key_bytes[0] + c.key_bytes[1]) / 16.0 * 4.0 / rates.aes_blocks_per_s;
  const double gib = double(1ull << 30);
  json ops = json::object();
  for (const auto& [name, v] : c.counter.per_op()) {
    if (name == "weights") continue;  // model setup, reported as model_setup_bytes
    const double b = v.bytes_sent + v.bytes_recv;
    ops[name] = {{"elements", v.elements}, {"online_bytes", b}, {"bytes_sent", v.bytes_sent},
                 {"bytes_recv", v.bytes_recv}, {"rounds", v.rounds}, {"key_bytes_per_party", v.key_bytes[1]},
                 {"key_bytes_party0", v.key_bytes[0]}, {"instances", v.count},
                 {"online_share", c.online_bytes > 0 ? b / c.online_bytes : 0.0}};
  }
  json lat = json::object();
  for (const auto& p : net_profiles()) lat[p.name] = latency_s(p, compute_s, c.online_bytes, c.rounds);
  json j = {{"source", "cost-model (src/pi/cost_model.cpp: the secure executor in count mode, exact bytes / rounds / "
                       "keys of the engine; times are estimates)"},
            {"n_layer", cfg.n_layer}, {"d_model", cfg.d_model}, {"n_head", cfg.n_head}, {"context", T},
            {"online_bytes", c.online_bytes}, {"online_gib", c.online_bytes / gib},
            {"online_bytes_sent", c.bytes_sent}, {"online_bytes_recv", c.bytes_recv},
            {"rounds", c.rounds},
            {"key_bytes_per_party", c.key_bytes[1]}, {"key_gib_per_party", c.key_bytes[1] / gib},
            {"key_bytes_party0", c.key_bytes[0]},
            {"model_setup_bytes", c.setup_bytes},
            {"online_compute_s_estimate", compute_s}, {"keygen_s_estimate", keygen_s},
            {"gemm_macs_per_party", c.gemm_macs}, {"fss_aes_blocks_per_party", c.fss_blocks},
            {"machine", {{"int64_gemm_macs_per_s", rates.gemm_macs_per_s}, {"aes_blocks_per_s", rates.aes_blocks_per_s}}},
            {"latency_s", lat},
            {"ops", ops}};
  j.update(engine_fields(o));
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
  const FxSpec& spec = o.spec;
  // Full scope: logits, or only the next token (secure argmax) revealed to the client.
  auto reveal = [&](SecureExec& ex, const SWire& y) {
    ex.output_client(!full || o.reveal_logits ? y : ex.argmax(y));
  };
  std::map<std::string, double> key_by_op;  // party 1's key bytes per operator tag
  auto program = [&](mpc::Dealer& dl) {
    SecureExec ex(&dl, nullptr, spec, seed);
    reveal(ex, full ? full_forward(ex, m, ids, false) : blocks_forward(ex, m, ex.input_client({}, T, d)));
    key_by_op = ex.key_bytes_by_op();
  };
  auto res = mpc::run_local(program, [&](mpc::Party& p) {
    SecureExec ex(nullptr, &p, spec, seed);
    bool cl = p.id == mpc::kClient;
    reveal(ex, full ? full_forward(ex, m, cl ? ids : std::vector<int32_t>(T, 0), false)
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
    ops[k] = {{"online_bytes", double(v.bytes_sent + v.bytes_recv)}, {"bytes_sent", double(v.bytes_sent)},
              {"bytes_recv", double(v.bytes_recv)}, {"rounds", v.rounds}, {"seconds", v.seconds},
              {"key_bytes_per_party", 0.0}};
  for (const auto& [k, v] : key_by_op) {
    if (v <= 0) continue;
    if (!ops.contains(k))  // keys without online traffic (e.g. the output mask)
      ops[k] = {{"online_bytes", 0.0}, {"bytes_sent", 0.0}, {"bytes_recv", 0.0}, {"rounds", 0}, {"seconds", 0.0}};
    ops[k]["key_bytes_per_party"] = v;
  }
  const double gib = double(1ull << 30);
  double online_s = res.online_s - setup_s;
  json lat = json::object();
  for (const auto& p : net_profiles()) lat[p.name] = latency_s(p, online_s * scale, online * scale, rounds * scale);
  json j = {{"source", "measured: 2PC run of src/pi/secure_exec over loopback TCP (src/mpc), random weights"},
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
  j.update(engine_fields(o));
  return j;
}

}  // namespace aero::pi
