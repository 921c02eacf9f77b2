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
  sub->add_option("--preset", o->preset,
                  "tiny (CPU, minutes), small (GPT-2 small shape, minutes per rung on an H200), paper (the "
                  "paper's GPT-2 budgets), gpt2-small, gpt2-18l, pythia-tiny (CPU), pythia-70m")
      ->capture_default_str();
  sub->add_option("--out", o->out_dir, "Output directory")->required();
  sub->add_option("--rung", o->rungs, "Rungs to run (repeatable; default: the paper's ladder)");
  sub->add_option("--set", o->sets, "key=value override for every rung (e.g. train.steps=200)");
  sub->add_option("--pi-layers", o->pi_layers,
                  "Blocks of the measured 2PC run (-1 all, 0: cost model only)")->capture_default_str();
  sub->add_option("--entropy-batches", o->entropy_batches, "Validation batches for the entropy statistics")
      ->capture_default_str();
  sub->add_flag("!--no-png", o->png, "SVG figures only");
  sub->add_option("--gpu-trainer", o->gpu_trainer,
                  "Train and evaluate on NVIDIA GPUs with this aero-gpu program (docs/gpu.md); rungs run in "
                  "parallel, one per GPU");
  sub->add_option("--gpus", o->gpus, "GPU ids for --gpu-trainer (repeatable or comma-separated)")
      ->delimiter(',');
  sub->add_option("--gpus-per-rung", o->gpus_per_rung,
                  "With --gpu-trainer: train each rung data parallel on this many GPUs (NCCL; the ids of --gpus "
                  "in consecutive groups), e.g. the paper preset on 8 GPUs as 8 per rung")
      ->capture_default_str();
  sub->add_flag("--refresh-pi", o->refresh_pi,
               "Measure the private-inference cost of finished rungs again with this build (no retraining) "
               "and rewrite the tables");
  sub->add_option("--max-seconds", o->max_seconds,
                  "With --gpu-trainer: stop each training process after this many seconds with a checkpoint "
                  "(run in pieces; rerun the same command to continue)");
  sub->callback([o] {
    auto res = aero::ladder::reproduce(*o);
    std::fputs(aero::read_file(o->out_dir + "/results.md").c_str(), stdout);
    std::fprintf(stderr, "wrote %s/results.md, results.csv, results.json, figures/\n", o->out_dir.c_str());
    if (!res["unfinished"].empty()) {
      std::fprintf(stderr, "%zu rung(s) not finished: rerun the same command to continue\n",
                   res["unfinished"].size());
      std::exit(3);
    }
  });
});

}  // namespace
