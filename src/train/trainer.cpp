#include "train/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/blas.h"
#include "core/error.h"
#include "core/files.h"
#include "core/progress.h"
#include "train/data_source.h"
#include "train/grad_clip.h"

namespace aero::train {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);
}  // namespace

void request_stop() { g_stop_requested.store(true); }

Trainer::Trainer(const model::RunConfig& cfg, TrainOptions opts)
    : Trainer(cfg, std::move(opts), /*fresh=*/true) {}

Trainer::Trainer(const model::RunConfig& cfg, TrainOptions opts, bool fresh)
    : cfg_(cfg), opts_(std::move(opts)), rng_(cfg.train.seed) {
  const auto& tc = cfg_.train;
  AERO_CHECK(tc.batch_size >= 1, "train.batch_size must be >= 1");
  AERO_CHECK(tc.grad_accum >= 1, "train.grad_accum must be >= 1");
  AERO_CHECK(tc.seq_len >= 1 && tc.seq_len <= cfg_.model.context, "train.seq_len ", tc.seq_len,
             " must be in [1, model.context = ", cfg_.model.context, "]");
  if (tc.threads > 0) set_num_threads(tc.threads);
  train_data_ = open_split(cfg_, cfg_.data.train_split);
  valid_data_ = open_split(cfg_, cfg_.data.valid_split);
  model_ = std::make_unique<model::Model>(cfg_.model, tc.batch_size, tc.seq_len);
  model_->init_weights(tc.seed);
  opt_ = std::make_unique<AdamW>(model_->params(),
                                 AdamWConfig{tc.beta1, tc.beta2, tc.eps, tc.weight_decay});
  sched_ = LrSchedule::make(tc.lr, tc.min_lr, tc.warmup, std::max(tc.steps, 1),
                            schedule_from_name(tc.schedule));
  batcher_ = std::make_unique<ChunkBatcher>(train_data_, tc.seq_len, tc.seed);
  tokens_.resize(size_t(tc.batch_size) * tc.seq_len);
  targets_.resize(tokens_.size());
  state_.rng = rng_.state();
  if (fresh && !opts_.out_dir.empty()) {
    const std::string& d = opts_.out_dir;
    check_fresh_run_dir(d, opts_.overwrite);
    make_dirs(d);
    write_file_atomic((fs::path(d) / "config.json").string(), model::to_json(cfg_).dump(2) + "\n");
    log_ = std::make_unique<MetricsLog>((fs::path(d) / "metrics.jsonl").string(), -1);
  }
}

Trainer::~Trainer() = default;

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir, TrainOptions opts) {
  const std::string w = resolve_checkpoint(run_dir);
  model::RunConfig cfg = read_checkpoint_config(w);
  opts.out_dir = run_dir;
  std::unique_ptr<Trainer> t(new Trainer(cfg, std::move(opts), /*fresh=*/false));
  load_weights(w, *t->model_);
  load_trainer_state(w, *t->opt_, t->state_);
  AERO_CHECK(t->state_.stop_reason.empty(), w, " was written when the run stopped: ",
             t->state_.stop_reason, "; change the configuration (e.g. a lower train.lr) and start a new run");
  t->batcher_->set_position(t->state_.data);
  t->rng_.set_state(t->state_.rng);
  t->log_ = std::make_unique<MetricsLog>((fs::path(run_dir) / "metrics.jsonl").string(),
                                         t->state_.step);
  return t;
}

std::string Trainer::describe_nonfinite(const char* what) {
  std::string where = model_->find_nonfinite();
  if (where.empty()) {
    // The model saw nothing itself: name the first parameter whose gradient is bad.
    for (const auto& p : model_->params()) {
      if (!p.trainable || !p.grad) continue;
      for (size_t j = 0; j < p.size; ++j)
        if (!std::isfinite(p.grad[j])) {
          where = "gradient of " + p.name;
          break;
        }
      if (!where.empty()) break;
    }
  }
  return std::string("non-finite ") + what + " at step " + std::to_string(state_.step + 1) +
         (where.empty() ? "" : ": " + where);
}

StepStats Trainer::step(std::string* nonfinite) {
  const auto& tc = cfg_.train;
  const auto t0 = Clock::now();
  StepStats s;
  s.lr = sched_.at(state_.step);
  model_->zero_grad();
  for (int micro = 0; micro < tc.grad_accum; ++micro) {
    batcher_->next_batch(tc.batch_size, tokens_.data(), targets_.data());
    const model::ForwardStats f =
        model_->forward(tokens_.data(), targets_.data(), tc.batch_size, tc.seq_len, true);
    s.loss += f.loss / tc.grad_accum;
    s.ce += f.ce / tc.grad_accum;
    s.ent_reg += f.ent_reg / tc.grad_accum;
    if (!std::isfinite(f.loss)) {
      *nonfinite = describe_nonfinite("loss");
      break;
    }
    if (micro == 0) {
      model_->backward();
    } else {
      // Sum micro-batch gradients here, in a fixed order, rather than letting backward()
      // accumulate onto non-zero gradients: some model kernels reduce per-thread partial
      // sums in arrival order, which is exact only when they start from zero, and bit-exact
      // resume needs every step reproducible.
      auto& ps = model_->params();
      if (accum_.size() != ps.size()) accum_.resize(ps.size());
      for (size_t i = 0; i < ps.size(); ++i)
        if (ps[i].grad) accum_[i].assign(ps[i].grad, ps[i].grad + ps[i].size);
      model_->zero_grad();
      model_->backward();
      for (size_t i = 0; i < ps.size(); ++i) {
        if (!ps[i].grad) continue;
        float* g = ps[i].grad;
        const float* a = accum_[i].data();
        for (size_t j = 0; j < ps[i].size; ++j) g[j] = a[j] + g[j];
      }
    }
  }
  state_.data = batcher_->position();
  if (nonfinite->empty()) {
    if (tc.grad_accum > 1) scale_grads(model_->params(), 1.0f / float(tc.grad_accum));
    s.grad_norm = clip_grad_norm(model_->params(), tc.grad_clip);
    if (!std::isfinite(s.grad_norm)) *nonfinite = describe_nonfinite("gradient");
  }
  if (nonfinite->empty()) {
    opt_->step(s.lr);
    ++state_.step;
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  state_.elapsed_s += dt;
  s.step = state_.step;
  s.tokens_per_s = dt > 0 ? double(tc.batch_size) * tc.seq_len * tc.grad_accum / dt : 0;
  s.elapsed_s = state_.elapsed_s;
  return s;
}

EvalResult Trainer::evaluate_valid(int64_t max_batches) {
  return evaluate(*model_, valid_data_, cfg_.train.seq_len, cfg_.train.batch_size, max_batches);
}

std::string Trainer::save_checkpoint_now() {
  if (opts_.out_dir.empty()) return "";
  state_.rng = rng_.state();
  state_.data = batcher_->position();
  return save_run_checkpoint(opts_.out_dir, *model_, cfg_, *opt_, state_);
}

TrainSummary Trainer::run() {
  const auto& tc = cfg_.train;
  TrainSummary sum;
  const int64_t end = opts_.stop_after >= 0 ? std::min<int64_t>(opts_.stop_after, tc.steps) : tc.steps;
  const int64_t start = state_.step;
  std::unique_ptr<Progress> prog;
  if (opts_.progress && end > start)
    prog = std::make_unique<Progress>(start ? "train (resumed at step " + std::to_string(start) + ")" : "train",
                                      double(end - start), "step");
  double tok_rate = 0;
  while (state_.step < end) {
    std::string bad;
    const StepStats s = step(&bad);
    if (!bad.empty()) {
      state_.stop_reason = bad;
      sum.diverged = true;
      sum.nonfinite = bad;
      if (log_) log_->write({{"step", state_.step + 1}, {"event", "nonfinite"}, {"where", bad}, {"loss", s.loss}});
      sum.checkpoint = save_checkpoint_now();
      if (prog) prog->finish("stopped: " + bad);
      break;
    }
    sum.losses.push_back(s.loss);
    tok_rate = tok_rate == 0 ? s.tokens_per_s : 0.9 * tok_rate + 0.1 * s.tokens_per_s;
    if (log_)
      log_->write({{"step", s.step}, {"loss", s.loss}, {"ce", s.ce}, {"ent_reg", s.ent_reg},
                   {"lr", s.lr}, {"grad_norm", s.grad_norm}, {"tokens_per_s", s.tokens_per_s},
                   {"elapsed_s", s.elapsed_s}});
    if (opts_.on_step) opts_.on_step(s);
    char extra[160];
    std::snprintf(extra, sizeof extra, "step %lld loss %.4f lr %.2e %.0f tok/s",
                  (long long)s.step, s.loss, s.lr, tok_rate);
    if (prog) prog->update(double(s.step - start), extra);
    const bool last = s.step == tc.steps;
    if ((tc.eval_every > 0 && s.step % tc.eval_every == 0) || last) {
      const EvalResult e = evaluate_valid(tc.eval_batches);
      sum.val_loss = e.ce;
      if (log_)
        log_->write({{"step", s.step}, {"split", "valid"}, {"val_loss", e.ce}, {"val_ppl", e.ppl},
                     {"entropy", e.entropy}});
      if (opts_.progress && !prog) std::fprintf(stderr, "step %lld val_loss %.4f\n", (long long)s.step, e.ce);
    }
    const bool interrupted = g_stop_requested.load();
    if ((tc.checkpoint_every > 0 && s.step % tc.checkpoint_every == 0) || last ||
        s.step == end || interrupted)
      sum.checkpoint = save_checkpoint_now();
    if (interrupted) {
      sum.interrupted = true;
      if (prog) prog->finish("interrupted: checkpoint " + sum.checkpoint);
      break;
    }
  }
  if (prog && !sum.diverged && !sum.interrupted) prog->finish();
  sum.steps_done = state_.step;
  return sum;
}

}  // namespace aero::train
