#include "pi/cost_model.h"

#include <algorithm>

namespace aero::pi {

CostCount count_cost(const model::ModelConfig& cfg, Scope scope, const FxSpec& spec, bool reveal_logits) {
  CostCount c;
  PiModel m = PiModel::shapes(cfg);
  SecureExec ex(&c.counter, spec);
  const int T = cfg.context;
  if (scope == Scope::blocks) {
    ex.output_client(blocks_forward(ex, m, ex.input_client({}, T, cfg.d_model)));
  } else {
    auto logits = full_forward(ex, m, std::vector<int32_t>(T, 0), false);
    ex.output_client(reveal_logits ? logits : ex.argmax(logits));
  }
  const auto& per = c.counter.per_op();
  double setup_sent = 0, setup_recv = 0, setup_rounds = 0;
  if (auto it = per.find("weights"); it != per.end())
    setup_sent = it->second.bytes_sent, setup_recv = it->second.bytes_recv, setup_rounds = it->second.rounds;
  c.setup_bytes = setup_sent + setup_recv;
  c.online_bytes = c.counter.bytes() - c.setup_bytes;
  double sent = 0, recv = 0;
  for (const auto& [k, v] : per) sent += v.bytes_sent, recv += v.bytes_recv, c.gemm_macs += v.gemm_macs, c.fss_blocks += v.fss_blocks;
  c.bytes_sent = sent - setup_sent;
  c.bytes_recv = recv - setup_recv;
  c.rounds = std::max(c.counter.rounds(0), c.counter.rounds(1)) - setup_rounds;
  for (int p = 0; p < 2; ++p) c.key_bytes[p] = c.counter.key_bytes(p);
  return c;
}

const std::vector<NetProfile>& net_profiles() {
  static const std::vector<NetProfile> p = {
      {"lan-10g", 10, 0.1}, {"3g", 3, 0.8}, {"1g", 1, 1.0}, {"wan-400m", 0.4, 8.0},
      {"wan-200m", 0.2, 40.0}, {"wan-100m-80ms", 0.1, 80.0}};
  return p;
}

// SPEC 6: T = T_compute + bytes_per_direction / bandwidth + rounds x one-way delay. The
// profiles' delays are read as round-trip times (SPEC: "10 Gbit/s 0.1 ms RTT"), so the paper's
// WAN "100 Mbit/s 80 ms" has a 40 ms one-way delay.
double latency_s(const NetProfile& p, double compute_s, double online_bytes_both, double rounds) {
  double per_dir = online_bytes_both / 2.0;
  return compute_s + per_dir * 8.0 / (p.gbit_per_s * 1e9) + rounds * (p.rtt_ms / 2.0) / 1e3;
}

}  // namespace aero::pi
