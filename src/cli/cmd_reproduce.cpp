// aero reproduce --preset NAME --out DIR: the paper's ladder, trained, evaluated, measured.
#include <cstdio>

#include "cli/registry.h"
#include "core/files.h"
#include "ladder/reproduce.h"

namespace {

aero::cli::Registrar reg("reproduce", [](CLI::App& app) {
  auto* sub = app.add_subcommand(
      "reproduce",
      "Train every rung of the AERO ladder, evaluate perplexity and entropy, count FLOPs and nonlinear "
      "ops, measure private inference, and write DIR/results.md/.csv/.json and figures. Reruns skip "
      "finished rungs and resume an interrupted one.");
  auto o = std::make_shared<aero::ladder::LadderOptions>();
  sub->add_option("--preset", o->preset, "tiny (CPU, minutes), small (one GPU-size run), gpt2-small, "
                                         "gpt2-18l, pythia-70m")->capture_default_str();
  sub->add_option("--out", o->out_dir, "Output directory")->required();
  sub->add_option("--rung", o->rungs, "Rungs to run (repeatable; default: the paper's ladder)");
  sub->add_option("--set", o->sets, "key=value override for every rung (e.g. train.steps=200)");
  sub->add_option("--pi-layers", o->pi_layers,
                  "Blocks of the measured 2PC run (-1 all, 0: cost model only)")->capture_default_str();
  sub->add_option("--entropy-batches", o->entropy_batches, "Validation batches for the entropy statistics")
      ->capture_default_str();
  sub->add_flag("!--no-png", o->png, "SVG figures only");
  sub->callback([o] {
    auto res = aero::ladder::reproduce(*o);
    std::fputs(aero::read_file(o->out_dir + "/results.md").c_str(), stdout);
    std::fprintf(stderr, "wrote %s/results.md, results.csv, results.json, figures/\n", o->out_dir.c_str());
  });
});

}  // namespace
