// The training loop: AdamW with parameter groups, warmup + decay, global-norm clipping,
// gradient accumulation, evaluation every N steps, checkpoints, the metrics log, a live
// progress line, bit-exact resume, and the NaN guard.
//
// One optimizer step: zero_grad; for each of grad_accum micro-batches forward + backward
// (gradients of each micro-batch's mean loss add up); scale by 1/grad_accum (so the step
// equals one batch of grad_accum*batch_size sequences); clip; AdamW.
// NaN guard: a non-finite loss (micro-batch) or gradient norm stops the run before the
// update, saves a checkpoint of the weights that produced it, and reports the first
// non-finite tensor (Model::find_nonfinite: layer, head, tensor) instead of training on.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/config.h"
#include "model/model.h"
#include "text/shard.h"
#include "train/batcher.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"

namespace aero::train {

struct StepStats {
  int64_t step = 0;  // 1-based: the number of optimizer steps done after this one
  double loss = 0, ce = 0, ent_reg = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, elapsed_s = 0;
};

struct TrainOptions {
  std::string out_dir;      // run directory; "" = keep nothing on disk (tests, benchmarks)
  bool progress = true;     // live progress line on stderr
  bool overwrite = false;   // allow a fresh run in a directory that already holds one
  int64_t stop_after = -1;  // stop (with a checkpoint) once this many steps are done
  std::function<void(const StepStats&)> on_step;  // called after every step
};

struct TrainSummary {
  int64_t steps_done = 0;
  bool diverged = false;    // stopped by the NaN guard
  bool interrupted = false; // stopped by request_stop()
  std::string nonfinite;    // its finding ("" otherwise)
  std::string checkpoint;   // last checkpoint written ("" without out_dir)
  double val_loss = NAN;    // last evaluation
  std::vector<double> losses;  // training loss of each step run in this call
};

// Asks every running Trainer::run to stop after the current step, with a checkpoint
// (async-signal-safe: `aero train` calls it from its SIGINT/SIGTERM handler).
void request_stop();

class Trainer {
 public:
  // A fresh run. With out_dir: refuses a directory that already holds a run (unless
  // overwrite), writes config.json and starts metrics.jsonl.
  Trainer(const model::RunConfig& cfg, TrainOptions opts);
  // Continues the run in run_dir from its latest checkpoint, bit-exactly. Options other
  // than out_dir (which is run_dir) are taken from opts.
  static std::unique_ptr<Trainer> resume(const std::string& run_dir, TrainOptions opts);
  ~Trainer();

  // Runs to train.steps (or opts.stop_after), evaluating and checkpointing on schedule.
  TrainSummary run();
  // One optimizer step; sets *nonfinite (and does not update) when the NaN guard fires.
  StepStats step(std::string* nonfinite);
  EvalResult evaluate_valid(int64_t max_batches);
  std::string save_checkpoint_now();  // "" without out_dir

  model::Model& model() { return *model_; }
  const model::RunConfig& config() const { return cfg_; }
  int64_t steps_done() const { return state_.step; }

 private:
  Trainer(const model::RunConfig& cfg, TrainOptions opts, bool fresh);
  std::string describe_nonfinite(const char* what);

  model::RunConfig cfg_;
  TrainOptions opts_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<AdamW> opt_;
  LrSchedule sched_;
  text::TokenDataset train_data_, valid_data_;
  std::unique_ptr<ChunkBatcher> batcher_;
  TrainerState state_;
  Rng rng_;
  std::unique_ptr<MetricsLog> log_;
  std::vector<int32_t> tokens_, targets_;
  std::vector<std::vector<float>> accum_;  // gradient sum of earlier micro-batches
};

}  // namespace aero::train
