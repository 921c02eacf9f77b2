// The paper's ladder in one call (`aero reproduce`): for each rung, train, evaluate
// perplexity, measure head entropy, count FLOPs and nonlinear operators, measure private
// inference, then write DIR/results.md (the paper's table shape), results.csv, results.json
// and the figures. A thin layer over train/, analysis/ and pi/.
//
// Resumability: each rung lives in DIR/<slug>/; a rung whose DIR/<slug>/rung.json exists is
// done and skipped; a rung with a checkpoint but no rung.json resumes training from it
// (bit-exact, train/trainer.h), so a killed run continues where it stopped.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aero::ladder {

struct LadderOptions {
  std::string preset = "tiny";
  std::string out_dir;
  std::vector<std::string> rungs;  // empty: default_rungs(n_layer of the preset)
  std::vector<std::string> sets;   // --set overrides applied to every rung
  int pi_layers = -1;              // measured 2PC run: blocks to run (-1 all, 0 cost model only)
  int entropy_batches = 4;
  bool progress = true;
  bool png = true;
  // GPU training (docs/ladder.md): the aero-gpu program; "" trains with the CPU trainer.
  // Rungs train in parallel, one process per GPU id in `gpus`; evaluation runs there too.
  std::string gpu_trainer;
  std::vector<int> gpus = {0};
  int gpus_per_rung = 1;  // > 1: each rung trains data parallel on this many of `gpus`
  // > 0: each training process stops with a checkpoint after this many seconds (a piece);
  // rungs left unfinished are reported and a rerun continues them.
  double max_seconds = 0;
  // Finished rungs: measure their private-inference cost again (the engine changed) and
  // rewrite the tables, without retraining.
  bool refresh_pi = false;
};

// The ladder of the paper's Table (SPEC 5.1), pruned forms keeping FFNs in the first
// n_layer/2 layers (k=6 of 12 in the paper).
std::vector<std::string> default_rungs(int n_layer);
// Directory name of a rung: "EReg(SM(t)+ScFuFFN)-k6" -> "EReg_SM_t_ScFuFFN_k6".
std::string rung_slug(const std::string& rung);

// Runs (or resumes) every rung and writes the results; returns results.json's content.
// With max_seconds, rungs may be left unfinished: results.json then has "unfinished" (their
// names), the tables hold the finished rungs, and a rerun of the same command continues.
nlohmann::json reproduce(const LadderOptions& o);

// The table of results.md from results.json's "rungs" array.
std::string results_markdown(const nlohmann::json& results);
std::string results_csv(const nlohmann::json& results);

}  // namespace aero::ladder
