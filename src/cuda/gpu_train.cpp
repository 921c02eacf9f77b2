#include "cuda/gpu_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "train/data_source.h"

#ifdef AERO_HAVE_NCCL
#include <nccl.h>
#endif

namespace aero::cuda {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {
std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = long(s + 0.5);
  char b[32];
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
  return b;
}
}  // namespace

GpuTrainer::GpuTrainer(const model::RunConfig& cfg, GpuTrainOptions opts)
    : GpuTrainer(cfg, std::move(opts), /*fresh=*/true) {}

GpuTrainer::GpuTrainer(const model::RunConfig& cfg, GpuTrainOptions opts, bool fresh)
    : cfg_(cfg), opts_(std::move(opts)) {
  const auto& tc = cfg_.train;
  AERO_CHECK(tc.batch_size >= 1, "train.batch_size must be >= 1");
  AERO_CHECK(tc.grad_accum >= 1, "train.grad_accum must be >= 1");
  AERO_CHECK(tc.seq_len >= 1 && tc.seq_len <= cfg_.model.context, "train.seq_len ", tc.seq_len,
             " must be in [1, model.context = ", cfg_.model.context, "]");
  const std::string why = gpu_unsupported(cfg_.model);
  AERO_CHECK(why.empty(), why, " (train this configuration with `aero train` on the CPU)");
  world_ = opts_.world;
  rank_ = opts_.rank;
  AERO_CHECK(world_ >= 1 && rank_ >= 0 && rank_ < world_, "data parallel: rank ", rank_,
             " is not in [0, world = ", world_, ")");
  AERO_CHECK(tc.batch_size % world_ == 0, "data parallel: train.batch_size ", tc.batch_size,
             " (the global batch) must be divisible by the number of processes ", world_);
  local_batch_ = tc.batch_size / world_;
  train_data_ = train::open_split(cfg_, cfg_.data.train_split);
  valid_data_ = train::open_split(cfg_, cfg_.data.valid_split);
  model_ = std::make_unique<GpuModel>(cfg_.model, local_batch_, tc.seq_len, opts_.device);
  model_->init_weights(tc.seed);
  rec_stride_ = size_t(tc.grad_accum) * model_->loss_sums_size() + 1;
  rec_ = model_->host_buffer(kSlots * rec_stride_);
  sched_ = train::LrSchedule::make(tc.lr, tc.min_lr, tc.warmup, std::max(tc.steps, 1),
                                   train::schedule_from_name(tc.schedule));
  batcher_ = std::make_unique<train::ChunkBatcher>(train_data_, tc.seq_len, tc.seed);
  tokens_.resize(size_t(tc.batch_size) * tc.seq_len);
  targets_.resize(tokens_.size());
  state_.rng = Rng(tc.seed).state();  // as the CPU trainer: its rng, saved and restored
  if (fresh && !opts_.out_dir.empty()) train::check_fresh_run_dir(opts_.out_dir, opts_.overwrite);
  // Every rank has checked the directory before any joins (rank 0 writes only after this).
  if (world_ > 1) init_data_parallel();
  if (fresh && !opts_.out_dir.empty() && rank0()) {
    const std::string& d = opts_.out_dir;
    make_dirs(d);
    write_file_atomic((fs::path(d) / "config.json").string(), model::to_json(cfg_).dump(2) + "\n");
    log_ = std::make_unique<train::MetricsLog>((fs::path(d) / "metrics.jsonl").string(), -1);
  }
}

GpuTrainer::~GpuTrainer() {
#ifdef AERO_HAVE_NCCL
  if (comm_) {
    try {
      model_->synchronize();
    } catch (...) {
    }
    ncclCommDestroy(static_cast<ncclComm_t>(comm_));
  }
#endif
}

void GpuTrainer::init_data_parallel() {
#ifdef AERO_HAVE_NCCL
  AERO_CHECK(!opts_.id_file.empty(), "data parallel (world ", world_,
             ") needs an id file (--id-file) shared by the processes");
  // (the model's constructor made opts_.device current)
  ncclUniqueId id;
  const std::string& f = opts_.id_file;
  if (rank0()) {
    AERO_CHECK(ncclGetUniqueId(&id) == ncclSuccess, "ncclGetUniqueId failed");
    const std::string tmp = f + ".tmp";
    {
      std::ofstream o(tmp, std::ios::binary);
      o.write(reinterpret_cast<const char*>(&id), sizeof id);
      AERO_CHECK(bool(o), "cannot write the NCCL id file ", tmp);
    }
    AERO_CHECK(std::rename(tmp.c_str(), f.c_str()) == 0, "cannot rename ", tmp, " to ", f);
  } else {
    for (int i = 0;; ++i) {
      std::ifstream in(f, std::ios::binary);
      if (in && in.read(reinterpret_cast<char*>(&id), sizeof id)) break;
      AERO_CHECK(i < 1200, "data parallel: no NCCL id in ", f, " after 120 s (is rank 0 running?)");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ncclComm_t nc = nullptr;
  const ncclResult_t r = ncclCommInitRank(&nc, world_, id, rank_);
  AERO_CHECK(r == ncclSuccess, "ncclCommInitRank: ", ncclGetErrorString(r));
  comm_ = nc;
  model_->set_data_parallel(comm_, world_);
  if (rank0()) std::remove(f.c_str());  // every rank has joined, so every rank has read it
#else
  fail("data parallel (world ", world_, "): this build has no NCCL");
#endif
}

std::unique_ptr<GpuTrainer> GpuTrainer::resume(const std::string& run_dir, GpuTrainOptions opts) {
  const std::string w = train::resolve_checkpoint(run_dir);
  int64_t wstep = 0;
  model::RunConfig cfg = train::config_from_weights_metadata(SafeTensors::load_metadata(w), w, &wstep);
  opts.out_dir = run_dir;
  std::unique_ptr<GpuTrainer> t(new GpuTrainer(cfg, std::move(opts), /*fresh=*/false));
  t->model_->load_weights(w);
  const std::string sp = train::state_path_for(w);
  AERO_CHECK(file_exists(sp), "optimizer state '", sp, "' is missing: cannot resume from ", w);
  t->state_ = gpu_state_from_metadata(t->model_->load_optimizer_state(sp), sp);
  AERO_CHECK(t->state_.step == wstep, sp, " is for step ", t->state_.step, " but ", w,
             " holds step ", wstep);
  AERO_CHECK(t->state_.stop_reason.empty(), w, " was written when the run stopped: ",
             t->state_.stop_reason,
             "; change the configuration (e.g. a lower train.lr) and start a new run");
  t->batcher_->set_position({t->state_.data_epoch, t->state_.data_index});
  if (t->rank0())
    t->log_ = std::make_unique<train::MetricsLog>((fs::path(run_dir) / "metrics.jsonl").string(),
                                                  t->state_.step);
  return t;
}

std::unique_ptr<GpuTrainer> GpuTrainer::for_eval(const std::string& run_or_ckpt, int device) {
  const std::string w = train::resolve_checkpoint(run_or_ckpt);
  int64_t wstep = 0;
  model::RunConfig cfg = train::config_from_weights_metadata(SafeTensors::load_metadata(w), w, &wstep);
  GpuTrainOptions opts;
  opts.device = device;
  opts.progress = false;
  std::unique_ptr<GpuTrainer> t(new GpuTrainer(cfg, std::move(opts), /*fresh=*/false));
  t->model_->load_weights(w);
  t->state_.step = wstep;
  return t;
}

// Queues one optimizer step: zero_grad; grad_accum micro-batches (each forward's gradient
// scaled by 1/grad_accum); clip + AdamW at the schedule's rate. Nothing waits for the GPU; the
// loss sums and the gradient norm land in the step's record of rec_.
void GpuTrainer::launch_step(float time_request) {
  const auto& tc = cfg_.train;
  Launched st;
  const int64_t k = state_.step + int64_t(pending_.size());  // 0-based index of this step
  st.step = k + 1;
  st.lr = sched_.at(k);
  st.slot = next_slot_;
  next_slot_ = (next_slot_ + 1) % kSlots;
  float* rec = rec_ + size_t(st.slot) * rec_stride_;
  const int S = model_->loss_sums_size();
  model_->zero_grad();
  const float gscale = 1.f / float(tc.grad_accum);
  const size_t off = size_t(rank_) * size_t(local_batch_) * size_t(tc.seq_len);
  for (int micro = 0; micro < tc.grad_accum; ++micro) {
    // the global batch (same order on every rank); this rank trains on its slice
    batcher_->next_batch(tc.batch_size, tokens_.data(), targets_.data());
    st.pos.push_back(batcher_->position());
    model_->forward_async(tokens_.data() + off, targets_.data() + off, local_batch_, tc.seq_len,
                          gscale, rec + size_t(micro) * S, micro == 0 ? time_request : 0.f);
    model_->backward(/*sync=*/micro + 1 == tc.grad_accum);
  }
  // AdamW's counter assumes the steps queued before this one succeed (if one does not, the
  // guard skips every later update and the run stops).
  model_->optimizer_step_async(tc, st.lr, int(state_.adamw_t + int64_t(pending_.size()) + 1),
                               rec + size_t(tc.grad_accum) * S);
  st.fence = model_->fence();
  pending_.push_back(std::move(st));
}

// Waits for the oldest queued step and books it: losses, gradient norm, data position, step
// count, time. The step time runs from the previous step's end (or the last pause of the
// pipeline: evaluation, checkpoint, start), so it is the GPU's step time in steady state.
GpuStepStats GpuTrainer::finish_step(std::string* nonfinite, bool* time_request) {
  const auto& tc = cfg_.train;
  AERO_CHECK(!pending_.empty(), "GpuTrainer: no step in flight");
  const Launched st = std::move(pending_.front());
  pending_.pop_front();
  model_->wait_fence(st.fence);
  const float* rec = rec_ + size_t(st.slot) * rec_stride_;
  const int S = model_->loss_sums_size();
  GpuStepStats s;
  s.lr = st.lr;
  size_t used = st.pos.size();
  for (int micro = 0; micro < tc.grad_accum; ++micro) {
    // the sums are over the global batch (summed over the ranks)
    const GpuStats f = model_->stats_from_sums(rec + size_t(micro) * S, tc.batch_size, tc.seq_len);
    s.loss += f.loss / tc.grad_accum;
    s.ce += f.ce / tc.grad_accum;
    s.ent_reg += f.ent_reg / tc.grad_accum;
    if (!std::isfinite(f.loss)) {
      *nonfinite = "non-finite loss at step " + std::to_string(st.step) + " (micro-batch " +
                   std::to_string(micro) + ")";
      used = size_t(micro) + 1;  // as if the batches after it had not been drawn
      break;
    }
  }
  *time_request = rec[3] > 0.f;
  state_.data_epoch = st.pos[used - 1].epoch;
  state_.data_index = st.pos[used - 1].index;
  if (nonfinite->empty()) {
    s.grad_norm = rec[size_t(tc.grad_accum) * S];
    if (!std::isfinite(s.grad_norm)) {
      *nonfinite = "non-finite gradient at step " + std::to_string(st.step) +
                   " (the update was not applied)";
    } else {
      ++state_.adamw_t;
      ++state_.step;
    }
  }
  const auto now = Clock::now();
  const double dt = std::chrono::duration<double>(now - mark_).count();
  mark_ = now;
  state_.elapsed_s += dt;
  s.step = state_.step;
  s.tokens_per_s = dt > 0 ? double(tc.batch_size) * tc.seq_len * tc.grad_accum / dt : 0;
  s.elapsed_s = state_.elapsed_s;
  return s;
}

// Waits for the steps still queued and discards them (after a non-finite step: the guard has
// kept them from changing the weights).
void GpuTrainer::drain() {
  while (!pending_.empty()) {
    model_->wait_fence(pending_.front().fence);
    pending_.pop_front();
  }
}

GpuStepStats GpuTrainer::step(std::string* nonfinite) {
  AERO_CHECK(pending_.empty(), "GpuTrainer::step: steps are in flight");
  model_->reset_guard();
  mark_ = Clock::now();
  launch_step(0.f);
  bool time_request = false;
  return finish_step(nonfinite, &time_request);
}

GpuEval GpuTrainer::evaluate_valid(int64_t max_batches) {
  const int T = cfg_.train.seq_len, B = cfg_.train.batch_size;
  train::ChunkBatcher batcher(valid_data_, T, 0, /*shuffle=*/false);
  uint64_t n = batcher.num_chunks();
  if (max_batches > 0) n = std::min<uint64_t>(n, uint64_t(max_batches) * uint64_t(B));
  std::vector<int32_t> tok(size_t(B) * T), tgt(size_t(B) * T);
  GpuEval r;
  r.entropy.assign(size_t(cfg_.model.n_layer), std::vector<double>(size_t(cfg_.model.n_head), 0.0));
  double ce_sum = 0;
  for (uint64_t done = 0; done < n;) {
    const int b = int(std::min<uint64_t>(uint64_t(B), n - done));
    batcher.next_batch(b, tok.data(), tgt.data());
    // data parallel: this rank's share of the batch (all of it on one GPU)
    const int lo = int(int64_t(rank_) * b / world_), hi = int(int64_t(rank_ + 1) * b / world_);
    const int bl = hi - lo;
    if (bl > 0) {
      const GpuStats s = model_->forward(tok.data() + size_t(lo) * T, tgt.data() + size_t(lo) * T,
                                         bl, T, /*training=*/false);
      AERO_CHECK(std::isfinite(s.ce), "evaluation: non-finite loss at chunk ", done + uint64_t(lo));
      ce_sum += s.ce * bl;
      auto e = model_->head_entropy();
      for (size_t l = 0; l < e.size() && l < r.entropy.size(); ++l)
        for (size_t h = 0; h < e[l].size() && h < r.entropy[l].size(); ++h)
          r.entropy[l][h] += e[l][h] * bl;
    }
    done += uint64_t(b);
  }
  if (world_ > 1) {
    std::vector<double> v{ce_sum};
    for (auto& row : r.entropy) v.insert(v.end(), row.begin(), row.end());
    model_->allreduce_sum(v);
    ce_sum = v[0];
    size_t i = 1;
    for (auto& row : r.entropy)
      for (auto& x : row) x = v[i++];
  }
  r.chunks = n;
  r.ce = n ? ce_sum / double(n) : NAN;
  r.ppl = std::exp(r.ce);
  for (auto& row : r.entropy)
    for (auto& x : row) x /= double(n);
  return r;
}

std::string GpuTrainer::save_checkpoint_now() {
  if (opts_.out_dir.empty() || !rank0()) return "";
  const std::string path = train::checkpoint_path(opts_.out_dir, state_.step);
  make_dirs((fs::path(opts_.out_dir) / "ckpt").string());
  model_->save_optimizer_state(train::state_path_for(path), gpu_state_metadata(state_));
  model_->save_weights(path, train::weights_metadata(cfg_, state_.step));
  train::write_latest(opts_.out_dir, path);
  return path;
}

GpuTrainSummary GpuTrainer::run() {
  const auto& tc = cfg_.train;
  GpuTrainSummary sum;
  sum.val_loss = NAN;
  AERO_CHECK(pending_.empty(), "GpuTrainer::run: steps are in flight");
  const int64_t end =
      opts_.stop_after >= 0 ? std::min<int64_t>(opts_.stop_after, tc.steps) : tc.steps;
  const int64_t start = state_.step;
  const bool show = opts_.progress && rank0();
  if (show && end > start)
    std::fprintf(stderr, "aero-gpu: %s at step %lld of %d (%lld to run), %d x %d x %d tokens/step%s\n",
                 start ? "resuming" : "training", (long long)start, tc.steps,
                 (long long)(end - start), tc.batch_size, tc.grad_accum, tc.seq_len,
                 world_ > 1 ? (", " + std::to_string(world_) + " GPUs").c_str() : "");
  // After these steps the host needs the model: the pipeline is drained before them.
  auto host_work = [&](int64_t k) {
    return (tc.eval_every > 0 && k % tc.eval_every == 0) ||
           (tc.checkpoint_every > 0 && k % tc.checkpoint_every == 0) || k == tc.steps || k == end;
  };
  double tok_rate = 0, run_time = 0;
  const auto run_start = Clock::now();
  auto last_print = run_start - std::chrono::seconds(10);
  mark_ = run_start;
  model_->reset_guard();
  bool stop_launching = false, time_up = false;
  while (true) {
    // Keep up to two steps queued: the GPU works on one while the host books the other.
    while (!stop_launching && pending_.size() < 2) {
      const int64_t next = state_.step + int64_t(pending_.size()) + 1;
      if (next > end || (!pending_.empty() && host_work(pending_.back().step))) break;
      float request = 0.f;
      if (opts_.max_seconds > 0 && next - 1 > start &&
          std::chrono::duration<double>(Clock::now() - run_start).count() >= opts_.max_seconds) {
        if (world_ == 1) {
          time_up = stop_launching = true;
          break;
        }
        // Data parallel: rank 0's clock decides; the request reaches every rank through the
        // step's loss reduction, so all stop after the same step.
        if (rank0()) request = 1.f;
      }
      launch_step(request);
    }
    if (pending_.empty()) break;
    std::string bad;
    bool time_request = false;
    const GpuStepStats s = finish_step(&bad, &time_request);
    if (!bad.empty()) {
      drain();
      state_.stop_reason = bad;
      sum.diverged = true;
      sum.nonfinite = bad;
      if (log_)
        log_->write({{"step", state_.step + 1}, {"event", "nonfinite"}, {"where", bad},
                     {"loss", s.loss}});
      sum.checkpoint = save_checkpoint_now();
      if (show) std::fprintf(stderr, "stopped: %s\n", bad.c_str());
      break;
    }
    if (time_request) time_up = stop_launching = true;
    sum.losses.push_back(s.loss);
    tok_rate = tok_rate == 0 ? s.tokens_per_s : 0.9 * tok_rate + 0.1 * s.tokens_per_s;
    run_time += double(tc.batch_size) * tc.seq_len * tc.grad_accum / std::max(s.tokens_per_s, 1e-9);
    if (log_)
      log_->write({{"step", s.step}, {"loss", s.loss}, {"ce", s.ce}, {"ent_reg", s.ent_reg},
                   {"lr", s.lr}, {"grad_norm", s.grad_norm}, {"tokens_per_s", s.tokens_per_s},
                   {"elapsed_s", s.elapsed_s}});
    if (opts_.on_step) opts_.on_step(s);
    const bool last = s.step == tc.steps;
    const auto now = Clock::now();
    if (show && (now - last_print > std::chrono::seconds(1) || s.step == end)) {
      last_print = now;
      const double per_step = run_time / double(s.step - start);
      std::fprintf(stderr, "step %lld/%d loss %.4f lr %.2e gnorm %.3f %.0f tok/s ETA %s\n",
                   (long long)s.step, tc.steps, s.loss, s.lr, s.grad_norm, tok_rate,
                   hms(per_step * double(end - s.step)).c_str());
    }
    bool paused = false;
    if ((tc.eval_every > 0 && s.step % tc.eval_every == 0) || last) {
      const GpuEval e = evaluate_valid(tc.eval_batches);
      sum.val_loss = e.ce;
      if (log_)
        log_->write({{"step", s.step}, {"split", "valid"}, {"val_loss", e.ce}, {"val_ppl", e.ppl},
                     {"entropy", e.entropy}});
      if (show)
        std::fprintf(stderr, "step %lld val_loss %.4f val_ppl %.3f\n", (long long)s.step, e.ce,
                     e.ppl);
      paused = true;
    }
    if ((tc.checkpoint_every > 0 && s.step % tc.checkpoint_every == 0) || last || s.step == end) {
      sum.checkpoint = save_checkpoint_now();
      paused = true;
    }
    if (paused) mark_ = Clock::now();  // evaluation and checkpoints are not step time
  }
  if (time_up && !sum.diverged && state_.step < end) {
    sum.time_limited = true;
    sum.checkpoint = save_checkpoint_now();
    if (show)
      std::fprintf(stderr, "aero-gpu: time limit (%.0f s) reached at step %lld of %d; checkpoint %s\n",
                   opts_.max_seconds, (long long)state_.step, tc.steps, sum.checkpoint.c_str());
  }
  sum.steps_done = state_.step;
  return sum;
}

}  // namespace aero::cuda
