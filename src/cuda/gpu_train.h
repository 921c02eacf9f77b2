// The GPU training loop (aero-gpu train): the CPU trainer's semantics (src/train/trainer.h,
// docs/training.md) on aero::cuda::GpuModel. One optimizer step: zero_grad; grad_accum
// micro-batches of batch_size chunks (each forward's gradient scaled by 1/grad_accum, so the
// step equals one batch of grad_accum*batch_size sequences); global-norm clip; AdamW with the
// schedule's learning rate for the 0-based step. Same data order (ChunkBatcher over data.dir's
// shards or the built-in synthetic corpus), same metrics.jsonl records, evaluation every
// eval_every steps and at the end, checkpoints every checkpoint_every steps, at the end and at
// a stop, in the CPU format (gpu_train_ckpt.h), and bit-exact resume (GPU reductions are
// deterministic). NaN guard: a non-finite micro-batch loss stops the run before the update and
// checkpoints the weights that produced it, with stop_reason set (resume then refuses); a
// non-finite gradient norm with a finite loss is seen only after the fused clip+AdamW update,
// so that stop checkpoint holds the updated (non-finite) weights.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda/gpu_model.h"
#include "cuda/gpu_train_ckpt.h"
#include "model/config.h"
#include "text/shard.h"
#include "train/batcher.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"

namespace aero::cuda {

struct GpuStepStats {
  int64_t step = 0;  // steps done after this one
  double loss = 0, ce = 0, ent_reg = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, elapsed_s = 0;
};

struct GpuTrainOptions {
  std::string out_dir;      // run directory; "" = nothing on disk
  bool progress = true;     // progress line on stderr (step, loss, lr, tok/s, ETA)
  bool overwrite = false;   // allow a fresh run in a directory that holds one
  int64_t stop_after = -1;  // stop (with a checkpoint) once this many steps are done
  double max_seconds = 0;   // > 0: stop (with a checkpoint) after this much wall time
  int device = 0;
  std::function<void(const GpuStepStats&)> on_step;
};

struct GpuTrainSummary {
  int64_t steps_done = 0;
  bool diverged = false;
  bool time_limited = false;  // stopped by max_seconds before the last step (resumable)
  std::string nonfinite;
  std::string checkpoint;
  double val_loss = 0;  // last evaluation (NaN if none)
  std::vector<double> losses;
};

struct GpuEval {
  double ce = 0, ppl = 0;
  uint64_t chunks = 0;
  std::vector<std::vector<double>> entropy;  // [L][H]
};

class GpuTrainer {
 public:
  GpuTrainer(const model::RunConfig& cfg, GpuTrainOptions opts);  // fresh run
  // Continues RUN_DIR from its latest checkpoint (CPU- or GPU-written), with its stored config.
  static std::unique_ptr<GpuTrainer> resume(const std::string& run_dir, GpuTrainOptions opts);
  // The weights of RUN_DIR's latest checkpoint (or of a checkpoint file) for evaluation only:
  // nothing in the run directory is written.
  static std::unique_ptr<GpuTrainer> for_eval(const std::string& run_or_ckpt, int device);
  ~GpuTrainer();

  GpuTrainSummary run();
  GpuStepStats step(std::string* nonfinite);
  GpuEval evaluate_valid(int64_t max_batches);
  std::string save_checkpoint_now();
  GpuModel& model() { return *model_; }
  const model::RunConfig& config() const { return cfg_; }
  int64_t steps_done() const { return state_.step; }

 private:
  GpuTrainer(const model::RunConfig& cfg, GpuTrainOptions opts, bool fresh);
  model::RunConfig cfg_;
  GpuTrainOptions opts_;
  std::unique_ptr<GpuModel> model_;
  train::LrSchedule sched_;
  text::TokenDataset train_data_, valid_data_;
  std::unique_ptr<train::ChunkBatcher> batcher_;
  GpuTrainState state_;
  std::unique_ptr<train::MetricsLog> log_;
  std::vector<int32_t> tokens_, targets_;
};

}  // namespace aero::cuda
