// A training run's metrics log (RUN_DIR/metrics.jsonl, docs/config.md) read into columns,
// and the plots of `aero plot RUN_DIR`: loss, validation perplexity, learning rate and the
// per-layer mean attention entropy over steps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/entropy.h"
#include "analysis/plot.h"

namespace aero::analysis {

struct RunMetrics {
  std::string path;  // the metrics.jsonl read
  // Training records {"step","loss","ce","ent_reg","lr","grad_norm","tokens_per_s","elapsed_s"}.
  std::vector<double> step, loss, ce, ent_reg, lr, grad_norm, tokens_per_s, elapsed_s;
  // Evaluation records {"step","split":"valid","val_loss","val_ppl","entropy":[[H] x L]}.
  std::vector<double> eval_step, val_loss, val_ppl;
  std::vector<Matrix> eval_entropy;  // one [L][H] per evaluation (empty if not logged)
  // {"step","event":"nonfinite","where":...}: where the NaN guard stopped the run.
  std::vector<std::pair<double, std::string>> events;
  size_t skipped_lines = 0;  // blank lines
};

// Reads a metrics.jsonl file (or RUN_DIR, meaning RUN_DIR/metrics.jsonl). JSON null in a
// number field reads as NaN (the trainer writes NaN as null). A line that is not a JSON
// object, or lacks "step", is an error naming the file and line.
RunMetrics read_metrics(const std::string& path_or_run_dir);

// Writes OUT_DIR/{loss,perplexity,lr,entropy_layers}.{svg,png} (and, when the last
// evaluation logged entropies, OUT_DIR/entropy_heatmap and entropy_bins of that evaluation).
// seq_len (> 0) draws the ln(T!)/T reference line on the entropy plot. Returns the files.
std::vector<std::string> plot_run(const RunMetrics& m, const std::string& out_dir, const std::string& run_name,
                                  int seq_len = 0, bool png = true);

// The entropy plot alone: per-layer mean over heads of each evaluation's entropy.
LineChart layer_entropy_chart(const RunMetrics& m, const std::string& run_name, int seq_len);

}  // namespace aero::analysis
