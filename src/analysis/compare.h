// Several training runs side by side (`aero compare RUN_DIR...`): architecture (the paper's
// rung name), validation perplexity, entropy overload / collapse at the last evaluation,
// nonlinear operators, FLOPs, and the private-inference cost when RUN_DIR/pi.json exists.
//
// RUN_DIR/pi.json (written by whoever measured private inference; all keys optional, the
// known ones type-checked):
//   online_bytes   number  online traffic, both directions together, bytes
//   rounds         number  online communication rounds
//   latency_s      number  online wall-clock time, seconds
//   offline_bytes  number  dealer / preprocessing material per party, bytes
//   keygen_s       number  offline (key generation) time, seconds
//   network        string  e.g. "lan", "wan 100Mbit/s 80ms"
//   scope          string  "blocks" (embedded input, no LM head) or "full"
//   tokens         number  sequence length the measurement used
//   source         string  how the numbers were obtained (e.g. "socket measurement", "cost-model")
// The output of `aero pi bench` is accepted too: latency_s may be an object {profile: seconds}
// (one profile is chosen, see read_pi_cost), key_bytes_per_party stands for offline_bytes,
// keygen_s_estimate for keygen_s, context for tokens.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/entropy.h"
#include "analysis/flops.h"
#include "analysis/run_metrics.h"
#include "model/config.h"

namespace aero::analysis {

struct PiCost {
  double online_bytes = NAN, rounds = NAN, latency_s = NAN, offline_bytes = NAN, keygen_s = NAN, tokens = NAN;
  std::string network, scope, source;
};
// Reads a pi.json; a known key with the wrong type is an error naming the file and key.
// When latency_s is an object of network profiles, `network` (else the file's "network",
// else "wan-100m-80ms", the paper's WAN, else the first profile) picks the one reported.
PiCost read_pi_cost(const std::string& path, const std::string& network = "");

struct RunSummary {
  std::string run_dir, name;  // name: the directory's base name
  model::RunConfig config;
  std::string arch;           // rung name, e.g. "EReg(SM(t)+ScFuFFN)-k6"
  std::string shape;          // e.g. "gpt2 L12 H12 d768 T128"
  int64_t last_step = 0;      // last training step logged
  double val_ppl = NAN, val_loss = NAN, best_val_ppl = NAN;
  int64_t val_step = -1;      // step of the last evaluation
  double overload = NAN, collapse = NAN;  // entropy bins of the last evaluation (fractions)
  std::array<double, 4> bins{NAN, NAN, NAN, NAN};
  int64_t nan_heads = 0;
  std::string stopped;        // the NaN guard's finding, if the run stopped on it
  FlopsReport flops;
  std::optional<PiCost> pi;
};

// Reads a run config JSON file (RUN_DIR/config.json); errors name the file and key.
model::RunConfig read_run_config(const std::string& path);

// The paper's name of a model configuration: SM+LN+G, SM+R, SM(t)+ScFuFFN,
// EReg(SM(t)+ScFuFFN)-k6, SM+WN-qk+ffn, ...
std::string architecture_name(const model::ModelConfig& c);

// Reads RUN_DIR/config.json (required), RUN_DIR/metrics.jsonl and RUN_DIR/pi.json (optional).
RunSummary summarize_run(const std::string& run_dir, const std::string& pi_network = "");

std::string compare_markdown(const std::vector<RunSummary>& runs);
std::string compare_csv(const std::vector<RunSummary>& runs);
// Validation perplexity over steps, one series per run; entropy bins per run (grouped bars).
std::vector<std::string> plot_compare(const std::vector<RunSummary>& runs,
                                      const std::vector<RunMetrics>& metrics, const std::string& out_dir,
                                      bool png = true);

}  // namespace aero::analysis
