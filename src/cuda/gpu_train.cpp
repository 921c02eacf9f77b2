#include "cuda/gpu_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "train/data_source.h"

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
  train_data_ = train::open_split(cfg_, cfg_.data.train_split);
  valid_data_ = train::open_split(cfg_, cfg_.data.valid_split);
  model_ = std::make_unique<GpuModel>(cfg_.model, tc.batch_size, tc.seq_len, opts_.device);
  model_->init_weights(tc.seed);
  sched_ = train::LrSchedule::make(tc.lr, tc.min_lr, tc.warmup, std::max(tc.steps, 1),
                                   train::schedule_from_name(tc.schedule));
  batcher_ = std::make_unique<train::ChunkBatcher>(train_data_, tc.seq_len, tc.seed);
  tokens_.resize(size_t(tc.batch_size) * tc.seq_len);
  targets_.resize(tokens_.size());
  state_.rng = Rng(tc.seed).state();  // as the CPU trainer: its rng, saved and restored
  if (fresh && !opts_.out_dir.empty()) {
    const std::string& d = opts_.out_dir;
    std::error_code ec;
    AERO_CHECK(opts_.overwrite || !fs::exists(fs::path(d) / "ckpt" / "latest", ec),
               "run directory ", d, " already holds a run: continue it with --resume ", d,
               ", or choose another --out");
    make_dirs(d);
    write_file_atomic((fs::path(d) / "config.json").string(), model::to_json(cfg_).dump(2) + "\n");
    log_ = std::make_unique<train::MetricsLog>((fs::path(d) / "metrics.jsonl").string(), -1);
  }
}

GpuTrainer::~GpuTrainer() = default;

std::unique_ptr<GpuTrainer> GpuTrainer::resume(const std::string& run_dir, GpuTrainOptions opts) {
  const std::string w = train::resolve_checkpoint(run_dir);
  int64_t wstep = 0;
  model::RunConfig cfg = train::config_from_weights_metadata(SafeTensors::load(w).metadata, w, &wstep);
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
  t->log_ = std::make_unique<train::MetricsLog>((fs::path(run_dir) / "metrics.jsonl").string(),
                                                t->state_.step);
  return t;
}

std::unique_ptr<GpuTrainer> GpuTrainer::for_eval(const std::string& run_or_ckpt, int device) {
  const std::string w = train::resolve_checkpoint(run_or_ckpt);
  int64_t wstep = 0;
  model::RunConfig cfg = train::config_from_weights_metadata(SafeTensors::load(w).metadata, w, &wstep);
  GpuTrainOptions opts;
  opts.device = device;
  opts.progress = false;
  std::unique_ptr<GpuTrainer> t(new GpuTrainer(cfg, std::move(opts), /*fresh=*/false));
  t->model_->load_weights(w);
  t->state_.step = wstep;
  return t;
}

GpuStepStats GpuTrainer::step(std::string* nonfinite) {
  const auto& tc = cfg_.train;
  const auto t0 = Clock::now();
  GpuStepStats s;
  s.lr = sched_.at(state_.step);
  model_->zero_grad();
  const float gscale = 1.f / float(tc.grad_accum);
  for (int micro = 0; micro < tc.grad_accum; ++micro) {
    batcher_->next_batch(tc.batch_size, tokens_.data(), targets_.data());
    const GpuStats f = model_->forward(tokens_.data(), targets_.data(), tc.batch_size,
                                       tc.seq_len, /*training=*/true, gscale);
    s.loss += f.loss / tc.grad_accum;
    s.ce += f.ce / tc.grad_accum;
    s.ent_reg += f.ent_reg / tc.grad_accum;
    if (!std::isfinite(f.loss)) {
      *nonfinite = "non-finite loss at step " + std::to_string(state_.step + 1) +
                   " (micro-batch " + std::to_string(micro) + ")";
      break;
    }
    model_->backward(/*sync=*/micro + 1 == tc.grad_accum);
  }
  const auto pos = batcher_->position();
  state_.data_epoch = pos.epoch;
  state_.data_index = pos.index;
  if (nonfinite->empty()) {
    s.grad_norm = model_->optimizer_step(tc, s.lr, int(state_.adamw_t + 1));
    if (!std::isfinite(s.grad_norm)) {
      *nonfinite = "non-finite gradient at step " + std::to_string(state_.step + 1) +
                   " (the GPU's fused clip+AdamW already applied it)";
    } else {
      ++state_.adamw_t;
      ++state_.step;
    }
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  state_.elapsed_s += dt;
  s.step = state_.step;
  s.tokens_per_s = dt > 0 ? double(tc.batch_size) * tc.seq_len * tc.grad_accum / dt : 0;
  s.elapsed_s = state_.elapsed_s;
  return s;
}

GpuEval GpuTrainer::evaluate_valid(int64_t max_batches) {
  const int T = cfg_.train.seq_len, B = cfg_.train.batch_size;
  train::ChunkBatcher batcher(valid_data_, T, 0, /*shuffle=*/false);
  uint64_t n = batcher.num_chunks();
  if (max_batches > 0) n = std::min<uint64_t>(n, uint64_t(max_batches) * uint64_t(B));
  std::vector<int32_t> tok(size_t(B) * T), tgt(size_t(B) * T);
  GpuEval r;
  double ce_sum = 0;
  for (uint64_t done = 0; done < n;) {
    const int b = int(std::min<uint64_t>(uint64_t(B), n - done));
    batcher.next_batch(b, tok.data(), tgt.data());
    const GpuStats s = model_->forward(tok.data(), tgt.data(), b, T, /*training=*/false);
    AERO_CHECK(std::isfinite(s.ce), "evaluation: non-finite loss at chunk ", done);
    ce_sum += s.ce * b;
    auto e = model_->head_entropy();
    if (r.entropy.empty())
      r.entropy.assign(e.size(), std::vector<double>(e.empty() ? 0 : e[0].size(), 0.0));
    for (size_t l = 0; l < e.size(); ++l)
      for (size_t h = 0; h < e[l].size(); ++h) r.entropy[l][h] += e[l][h] * b;
    done += uint64_t(b);
  }
  r.chunks = n;
  r.ce = n ? ce_sum / double(n) : NAN;
  r.ppl = std::exp(r.ce);
  for (auto& row : r.entropy)
    for (auto& x : row) x /= double(n);
  return r;
}

std::string GpuTrainer::save_checkpoint_now() {
  if (opts_.out_dir.empty()) return "";
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
  const int64_t end =
      opts_.stop_after >= 0 ? std::min<int64_t>(opts_.stop_after, tc.steps) : tc.steps;
  const int64_t start = state_.step;
  if (opts_.progress && end > start)
    std::fprintf(stderr, "aero-gpu: %s at step %lld of %d (%lld to run), %d x %d x %d tokens/step\n",
                 start ? "resuming" : "training", (long long)start, tc.steps,
                 (long long)(end - start), tc.batch_size, tc.grad_accum, tc.seq_len);
  double tok_rate = 0, run_time = 0;
  const auto run_start = Clock::now();
  auto last_print = run_start - std::chrono::seconds(10);
  while (state_.step < end) {
    if (opts_.max_seconds > 0 && state_.step > start &&
        std::chrono::duration<double>(Clock::now() - run_start).count() >= opts_.max_seconds) {
      sum.time_limited = true;
      sum.checkpoint = save_checkpoint_now();
      if (opts_.progress)
        std::fprintf(stderr, "aero-gpu: time limit (%.0f s) reached at step %lld of %d; checkpoint %s\n",
                     opts_.max_seconds, (long long)state_.step, tc.steps, sum.checkpoint.c_str());
      break;
    }
    std::string bad;
    const GpuStepStats s = step(&bad);
    if (!bad.empty()) {
      state_.stop_reason = bad;
      sum.diverged = true;
      sum.nonfinite = bad;
      if (log_)
        log_->write({{"step", state_.step + 1}, {"event", "nonfinite"}, {"where", bad},
                     {"loss", s.loss}});
      sum.checkpoint = save_checkpoint_now();
      if (opts_.progress) std::fprintf(stderr, "stopped: %s\n", bad.c_str());
      break;
    }
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
    if (opts_.progress && (now - last_print > std::chrono::seconds(1) || s.step == end)) {
      last_print = now;
      const double per_step = run_time / double(s.step - start);
      std::fprintf(stderr, "step %lld/%d loss %.4f lr %.2e gnorm %.3f %.0f tok/s ETA %s\n",
                   (long long)s.step, tc.steps, s.loss, s.lr, s.grad_norm, tok_rate,
                   hms(per_step * double(end - s.step)).c_str());
    }
    if ((tc.eval_every > 0 && s.step % tc.eval_every == 0) || last) {
      const GpuEval e = evaluate_valid(tc.eval_batches);
      sum.val_loss = e.ce;
      if (log_)
        log_->write({{"step", s.step}, {"split", "valid"}, {"val_loss", e.ce}, {"val_ppl", e.ppl},
                     {"entropy", e.entropy}});
      if (opts_.progress)
        std::fprintf(stderr, "step %lld val_loss %.4f val_ppl %.3f\n", (long long)s.step, e.ce,
                     e.ppl);
    }
    if ((tc.checkpoint_every > 0 && s.step % tc.checkpoint_every == 0) || last || s.step == end)
      sum.checkpoint = save_checkpoint_now();
  }
  sum.steps_done = state_.step;
  return sum;
}

}  // namespace aero::cuda
