// `aero compare RUN_DIR...`: runs side by side (perplexity, entropy bins, nonlinear operators,
// FLOPs, private-inference cost from RUN_DIR/pi.json), as a markdown table and CSV.
#include <cstdio>
#include <filesystem>

#include "analysis/compare.h"
#include "cli/registry.h"
#include "core/error.h"
#include "core/files.h"

namespace {

namespace fs = std::filesystem;

aero::cli::Registrar reg("compare", [](CLI::App& app) {
  auto* sub = app.add_subcommand("compare", "Compare training runs: perplexity, nonlinear ops, FLOPs, PI cost");
  struct Args {
    std::vector<std::string> runs;
    std::string out, csv, md, network;
    bool csv_stdout = false, no_png = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("RUN_DIR", a->runs, "Run directories (each with config.json; metrics.jsonl, pi.json if present)")
      ->required();
  sub->add_flag("--csv", a->csv_stdout, "Print CSV instead of the markdown table");
  sub->add_option("--out", a->out,
                  "Directory for compare.md, compare.csv and the plots compare_ppl, compare_entropy_bins");
  sub->add_flag("--no-png", a->no_png, "With --out: SVG plots only");
  sub->add_option("--pi-network", a->network,
                  "Network profile to report when pi.json lists latency per profile (default wan-100m-80ms)");
  sub->callback([a] {
    std::vector<aero::analysis::RunSummary> runs;
    std::vector<aero::analysis::RunMetrics> metrics;
    for (auto& d : a->runs) {
      runs.push_back(aero::analysis::summarize_run(d, a->network));
      if (!a->out.empty())
        metrics.push_back(fs::exists(fs::path(d) / "metrics.jsonl") ? aero::analysis::read_metrics(d)
                                                                    : aero::analysis::RunMetrics{});
    }
    std::string md = aero::analysis::compare_markdown(runs), csv = aero::analysis::compare_csv(runs);
    std::fputs((a->csv_stdout ? csv : md).c_str(), stdout);
    if (!a->out.empty()) {
      aero::make_dirs(a->out);
      aero::write_file_atomic(a->out + "/compare.md", md);
      aero::write_file_atomic(a->out + "/compare.csv", csv);
      std::fprintf(stderr, "wrote %s/compare.md\nwrote %s/compare.csv\n", a->out.c_str(), a->out.c_str());
      for (auto& f : aero::analysis::plot_compare(runs, metrics, a->out, !a->no_png))
        std::fprintf(stderr, "wrote %s\n", f.c_str());
    }
  });
});

}  // namespace
