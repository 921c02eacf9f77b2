// The GPU training loop (aero-gpu train): the CPU trainer's semantics (src/train/trainer.h,
// docs/training.md) on aero::cuda::GpuModel. One optimizer step: zero_grad; grad_accum
// micro-batches of batch_size chunks (each forward's gradient scaled by 1/grad_accum, so the
// step equals one batch of grad_accum*batch_size sequences); global-norm clip; AdamW with the
// schedule's learning rate for the 0-based step. Same data order (ChunkBatcher over data.dir's
// shards or the built-in synthetic corpus), same metrics.jsonl records, evaluation every
// eval_every steps and at the end, checkpoints every checkpoint_every steps, at the end and at
// a stop, in the CPU format (gpu_train_ckpt.h), and bit-exact resume (GPU reductions are
// deterministic). NaN guard: a non-finite micro-batch loss or gradient norm stops the run; the
// update of that step is never applied (a device-side flag makes AdamW skip it, see
// GpuModel::forward_async) and the stop checkpoint holds the weights and moments that produced
// it, with stop_reason set (resume then refuses).
//
// Speed: steps are pipelined. Step k+1 (its batches prepared on the host, copied through
// pinned memory, its kernels queued) is launched before the host reads step k's loss and
// gradient norm, so the GPU never waits for the host; the loss of step k is read once the GPU
// has finished it. Steps after which the host needs the model (evaluation, checkpoint, the
// last step, --stop-after) drain the pipeline first. The numbers are those of the one-step-at-
// a-time loop: same kernels, same order, same data.
//
// Data parallel (options world/rank/id_file): one process per GPU, NCCL; every rank draws the
// same global batch from its own ChunkBatcher and trains on its slice (batch_size/world
// sequences), gradients are averaged during backward (GpuModel::set_data_parallel) and the
// loss sums are summed over the ranks, so the step equals single-GPU training with batch_size.
// Rank 0 alone writes config.json, metrics.jsonl and checkpoints.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
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
  // Data parallel: world processes (one per GPU), this one of rank `rank`; the NCCL id goes
  // through id_file (a path that does not exist yet, written by rank 0, removed once all have
  // joined). train.batch_size is the global batch and must be divisible by world.
  int world = 1, rank = 0;
  std::string id_file;
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
  // One step, synchronously (launch + finish).
  GpuStepStats step(std::string* nonfinite);
  GpuEval evaluate_valid(int64_t max_batches);
  std::string save_checkpoint_now();
  GpuModel& model() { return *model_; }
  const model::RunConfig& config() const { return cfg_; }
  int64_t steps_done() const { return state_.step; }

 private:
  GpuTrainer(const model::RunConfig& cfg, GpuTrainOptions opts, bool fresh);
  struct Launched {  // a step queued on the GPU, not yet read back
    int64_t step = 0;  // the step count once it is done
    double lr = 0;
    int slot = 0;  // its record in rec_
    uint64_t fence = 0;
    std::vector<train::ChunkBatcher::Position> pos;  // data position after each micro-batch
  };
  void init_data_parallel();
  void launch_step(float time_request);
  GpuStepStats finish_step(std::string* nonfinite, bool* time_request);
  void drain();
  bool rank0() const { return rank_ == 0; }
  model::RunConfig cfg_;
  GpuTrainOptions opts_;
  std::unique_ptr<GpuModel> model_;
  train::LrSchedule sched_;
  text::TokenDataset train_data_, valid_data_;
  std::unique_ptr<train::ChunkBatcher> batcher_;
  GpuTrainState state_;
  std::unique_ptr<train::MetricsLog> log_;
  std::vector<int32_t> tokens_, targets_;
  int world_ = 1, rank_ = 0, local_batch_ = 0;
  void* comm_ = nullptr;  // ncclComm_t
  static constexpr int kSlots = 3;
  float* rec_ = nullptr;  // pinned: kSlots x (grad_accum loss-sum records + gradient norm)
  size_t rec_stride_ = 0;
  int next_slot_ = 0;
  std::deque<Launched> pending_;
  std::chrono::steady_clock::time_point mark_;  // end of the last step's accounting
};

}  // namespace aero::cuda
