// `aero pi bench` figures (see pi_bench.h).
#include "pi/pi_bench.h"

#include <openssl/evp.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "mpc/linear.h"
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

}  // namespace aero::pi
