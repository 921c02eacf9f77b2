// `aero pi ...`: private inference. `aero pi bench` prints the per-operator cost of one
// private inference (online bytes both ways, rounds, key bytes per party, estimated compute)
// and the latency under each network profile (docs/private_inference.md).
// `aero pi eval` (perplexity under the exact fixed-point arithmetic) is in cmd_pi_eval.cpp.
#include <cstdio>
#include <memory>

#include "cli/config_options.h"
#include "cli/registry.h"
#include "core/error.h"
#include "pi/pi_bench.h"

namespace {

const char* kAllRungs[] = {"SM+LN+G",    "SM+LN+R",       "SM+LN",         "SM+G",          "SM+R",
                           "SM+ScFFN",   "SM+ScFuFFN",    "SM+ScFuFFN-k6", "SM(t)+ScFuFFN", "EReg(SM(t)+ScFuFFN)-k6"};

aero::cli::Registrar reg_pi("pi", [](CLI::App& app) {
  auto* pi = app.add_subcommand("pi", "Private inference: cost benchmark, fixed-point evaluation");
  pi->require_subcommand(1);
  auto* sub = pi->add_subcommand("bench", "Per-operator cost of one private inference (cost model)");
  struct Args {
    std::string scope = "blocks", softmax = "exact_max", reveal = "token", trunc = "faithful";
    std::string lut_products = aero::pi::to_string(aero::pi::FxSpec{}.lut_products);
    int context = 0, layers = 1, qk_bits = aero::pi::FxSpec{}.qk_bits, exp_rounds = 0;
    bool json = false, all_rungs = false, measure = false;
  };
  auto a = std::make_shared<Args>();
  auto opts = aero::cli::add_config_options(sub);
  sub->add_option("--context", a->context, "Sequence length T (sets model.context)");
  sub->add_option("--scope", a->scope, "blocks (SIGMA's: blocks on embedded input) or full")->capture_default_str();
  sub->add_option("--softmax", a->softmax, "exact_max or clipped (max-free)")->capture_default_str();
  sub->add_option("--reveal", a->reveal, "full scope: logits or token (secure argmax)")->capture_default_str();
  sub->add_option("--trunc", a->trunc, "faithful (bit-exact with --pi-sim) or stochastic (no carry DCF, +-1 ulp; with --measure the engine too)")->capture_default_str();
  sub->add_option("--qk-bits", a->qk_bits,
                  "Ring of Q, K and the attention scores (52..64; logits get qk_bits - 32 bits: 60 holds |logit| < 16384, "
                  "52 the narrow plan, |logit| < 64; `aero pi eval` prints what a checkpoint needs)")
      ->capture_default_str();
  sub->add_option("--lut-products", a->lut_products,
                  "on: LayerNorm's product and the softmax normalization inside their lookups (one round less each, "
                  "more key bytes and FSS evaluation); off: a multiplication round after the lookup; auto: on with "
                  "--trunc stochastic")
      ->capture_default_str();
  sub->add_option("--exp-rounds", a->exp_rounds, "exp rounds: 1 (--trunc stochastic, --qk-bits <= 60: the free truncate-reduce of the logit difference indexes one lookup), 2, or 0 = auto (1 where valid)")->capture_default_str();
  sub->add_flag("--all-rungs", a->all_rungs, "One line per AERO rung with savings over SM+LN+G");
  sub->add_flag("--measure", a->measure, "Run the secure executor for real (loopback TCP) instead of the cost model");
  sub->add_option("--layers", a->layers, "--measure, blocks scope: blocks actually run (extrapolated to n_layer)")->capture_default_str();
  sub->add_flag("--json", a->json, "Print one JSON object");
  sub->callback([a, opts] {
    aero::pi::BenchOptions o;
    o.scope = aero::pi::scope_from_string(a->scope);
    AERO_CHECK(a->reveal == "logits" || a->reveal == "token", "--reveal '", a->reveal, "': expected logits or token");
    o.reveal_logits = a->reveal == "logits";
    o.spec = aero::pi::engine_spec(a->softmax, a->trunc, a->qk_bits, a->lut_products, a->exp_rounds);  // --measure: the same engine
    auto rates = aero::pi::measure_machine_rates();
    auto build = [&](const std::string& rung) {
      aero::cli::ConfigOptions c = *opts;
      if (c.preset.empty() && c.config_path.empty()) c.preset = "gpt2-small";
      if (!rung.empty()) c.rung = rung;
      if (a->context > 0) c.sets.push_back("model.context=" + std::to_string(a->context));
      return c.build().model;
    };
    if (a->measure) {
      auto j = aero::pi::bench_measured(build(""), o, a->layers);
      j["rung"] = opts->rung.empty() ? "(preset)" : opts->rung;
      std::printf("%s\n", j.dump(a->json ? -1 : 2).c_str());
      return;
    }
    if (!a->all_rungs) {
      auto j = aero::pi::bench_cost(build(""), o, rates);
      j["rung"] = opts->rung.empty() ? "(preset)" : opts->rung;
      if (a->json) {
        std::printf("%s\n", j.dump().c_str());
        return;
      }
      std::printf("%-20s %14s %8s %16s %10s\n", "operator", "online MiB", "rounds", "key MiB/party", "share");
      for (auto& [k, v] : j["ops"].items())
        std::printf("%-20s %14.2f %8.0f %16.1f %9.1f%%\n", k.c_str(), v["online_bytes"].get<double>() / 1048576.0,
                    v["rounds"].get<double>(), v["key_bytes_per_party"].get<double>() / 1048576.0,
                    100.0 * v["online_share"].get<double>());
      std::printf("total: online %.4f GiB, %.0f rounds, keys %.3f GiB/party; compute ~%.2f s, keygen ~%.2f s\n",
                  j["online_gib"].get<double>(), j["rounds"].get<double>(), j["key_gib_per_party"].get<double>(),
                  j["online_compute_s_estimate"].get<double>(), j["keygen_s_estimate"].get<double>());
      for (auto& [k, v] : j["latency_s"].items()) std::printf("  latency %-14s %.2f s\n", k.c_str(), v.get<double>());
      return;
    }
    nlohmann::json all = nlohmann::json::array();
    double base_bytes = 0, base_lat = 0;
    for (const char* r : kAllRungs) {
      auto j = aero::pi::bench_cost(build(r), o, rates);
      j["rung"] = r;
      double lat = j["latency_s"]["wan-100m-80ms"].get<double>();
      if (base_bytes == 0) base_bytes = j["online_bytes"].get<double>(), base_lat = lat;
      j["comm_saving_x"] = base_bytes / j["online_bytes"].get<double>();
      j["wan_latency_saving_x"] = base_lat / lat;
      all.push_back(j);
    }
    if (a->json) {
      std::printf("%s\n", all.dump().c_str());
      return;
    }
    std::printf("%-24s %11s %7s %12s %9s %9s %9s %8s %8s\n", "rung", "online GiB", "rounds", "keys GiB/p",
                "comp s", "1G s", "WAN s", "comm x", "WAN x");
    for (auto& j : all)
      std::printf("%-24s %11.4f %7.0f %12.3f %9.2f %9.2f %9.2f %8.2f %8.2f\n", j["rung"].get<std::string>().c_str(),
                  j["online_gib"].get<double>(), j["rounds"].get<double>(), j["key_gib_per_party"].get<double>(),
                  j["online_compute_s_estimate"].get<double>(), j["latency_s"]["1g"].get<double>(),
                  j["latency_s"]["wan-100m-80ms"].get<double>(), j["comm_saving_x"].get<double>(),
                  j["wan_latency_saving_x"].get<double>());
  });
});

}  // namespace
