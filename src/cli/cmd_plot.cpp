// `aero plot RUN_DIR`: loss, validation perplexity, learning rate and per-layer attention
// entropy over training steps, from RUN_DIR/metrics.jsonl, as SVG and PNG in RUN_DIR/plots/.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "analysis/compare.h"
#include "analysis/run_metrics.h"
#include "cli/registry.h"
#include "core/error.h"
#include "core/files.h"
#include "model/config.h"

namespace {

namespace fs = std::filesystem;

aero::cli::Registrar reg("plot", [](CLI::App& app) {
  auto* sub = app.add_subcommand("plot", "Plot a training run: loss, perplexity, learning rate, entropy per layer");
  struct Args {
    std::string run_dir, out, name;
    bool no_png = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("RUN_DIR", a->run_dir, "Run directory (with metrics.jsonl; config.json is used if present)")
      ->required();
  sub->add_option("--out", a->out, "Output directory (default RUN_DIR/plots)");
  sub->add_option("--name", a->name, "Run name in the titles (default: the directory name)");
  sub->add_flag("--no-png", a->no_png, "Write SVG only (no rsvg-convert needed)");
  sub->callback([a] {
    AERO_CHECK(fs::is_directory(a->run_dir), "aero plot: run directory not found: ", a->run_dir);
    auto metrics = aero::analysis::read_metrics(a->run_dir);
    AERO_CHECK(!metrics.step.empty() || !metrics.eval_step.empty(), "aero plot: ", metrics.path,
               " has no training or evaluation records");
    int seq_len = 0;
    std::string name = a->name.empty() ? fs::path(a->run_dir).lexically_normal().filename().string() : a->name;
    std::string cfg_path = (fs::path(a->run_dir) / "config.json").string();
    if (fs::exists(cfg_path)) {
      auto cfg = aero::analysis::read_run_config(cfg_path);
      seq_len = cfg.train.seq_len;
    }
    std::string out = a->out.empty() ? (fs::path(a->run_dir) / "plots").string() : a->out;
    auto files = aero::analysis::plot_run(metrics, out, name, seq_len, !a->no_png);
    std::printf("%s: %zu training steps, %zu evaluations", metrics.path.c_str(), metrics.step.size(),
                metrics.eval_step.size());
    if (!metrics.events.empty())
      std::printf(", stopped on a non-finite value at step %lld", (long long)metrics.events.back().first);
    std::printf("\n");
    for (auto& f : files) std::printf("wrote %s\n", f.c_str());
  });
});

}  // namespace
