// GPU test of the training driver (src/cuda/gpu_train.h): a tiny EReg(SM(t)+ScFuFFN) model with
// gradient accumulation trained 12 steps; a second run stopped at step 6 and resumed from its
// checkpoint gives bit-identical losses and metrics; a checkpoint rewritten by the host-only
// writer (the one test_gpu_train_ckpt checks against aero::train's loaders) is byte-identical
// to the GPU-written one and resumes identically; the pipelined run() gives the losses of
// one synchronous step() at a time; the loss falls on the synthetic corpus; the NaN guard
// (lr 1000) stops a run with a checkpoint that resume refuses and whose weights are those
// before the failing step (the update is skipped on the GPU). SKIP (exit 0) without a GPU.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <sstream>
#include <string>
#include <vector>

#include "core/files.h"
#include "cuda/gpu_train.h"
#include "gpu_check.h"

namespace fs = std::filesystem;
using namespace aero;
using aero::cuda::test::Checker;

namespace {

model::RunConfig tiny(std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {
      "model.n_layer=2",       "model.n_head=2",        "model.d_model=32",
      "model.d_ff=64",         "model.context=32",      "model.vocab_size=64",
      "train.batch_size=4",    "train.seq_len=32",      "train.grad_accum=2",
      "train.steps=12",        "train.checkpoint_every=6", "train.eval_every=4",
      "train.eval_batches=2",  "train.lr=3e-3",         "train.warmup=2",
      "train.schedule=cosine", "train.min_lr=3e-4"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return model::build_run_config("", "tiny", "EReg(SM(t)+ScFuFFN)", sets);
}

bool same(const std::vector<double>& a, const std::vector<double>& b, size_t off = 0) {
  if (off + a.size() > b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[off + i])) return false;
  return true;
}

// Training losses of metrics.jsonl, in file order, with their steps.
std::vector<std::pair<int64_t, double>> train_lines(const std::string& dir) {
  std::vector<std::pair<int64_t, double>> out;
  std::istringstream in(read_file(dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss") && !j.contains("event"))
      out.push_back({j["step"].get<int64_t>(), j["loss"].get<double>()});
  }
  return out;
}

}  // namespace

int main() {
  if (aero::cuda::test::skip_without_gpu("test_gpu_train")) return 0;
  Checker c;
  const std::string root = (fs::temp_directory_path() / ("aero_gpu_train_" + std::to_string(::getpid()))).string();
  fs::remove_all(root);
  const std::string A = root + "/a", B = root + "/b", C = root + "/c", N = root + "/nan";
  cuda::GpuTrainOptions quiet;
  quiet.progress = false;
  try {
    const model::RunConfig cfg = tiny();
    // 1. Uninterrupted run.
    auto oa = quiet;
    oa.out_dir = A;
    cuda::GpuTrainSummary full = cuda::GpuTrainer(cfg, oa).run();
    bool finite = full.losses.size() == 12;
    for (double l : full.losses) finite = finite && std::isfinite(l);
    c.expect(full.steps_done == 12 && finite && std::isfinite(full.val_loss),
             "12 steps with finite losses and val_loss " + std::to_string(full.val_loss));
    c.expect(read_file(A + "/ckpt/latest") == "step-000012.safetensors\n",
             "ckpt/latest names step 12");
    c.expect(file_exists(A + "/ckpt/step-000006.safetensors") &&
                 file_exists(A + "/ckpt/step-000006.state.safetensors") &&
                 file_exists(A + "/ckpt/step-000012.state.safetensors") &&
                 file_exists(A + "/config.json"),
             "checkpoints at 6 and 12 (weights + state) and config.json");
    {
      auto hc = cuda::read_gpu_run_checkpoint(A);
      c.expect(hc.config == cfg && hc.state.step == 12 && hc.state.adamw_t == 12 &&
                   hc.state.stop_reason.empty() && hc.state.data_index == 12 * 4 * 2,
               "state of step 12: config, step, adamw_t, data position " +
                   std::to_string(hc.state.data_index));
    }
    // 2. Stop at 6, resume to 12: bit-identical losses and metrics.
    auto ob = quiet;
    ob.out_dir = B;
    ob.stop_after = 6;
    cuda::GpuTrainSummary first = cuda::GpuTrainer(cfg, ob).run();
    c.expect(first.losses.size() == 6 && same(first.losses, full.losses, 0),
             "first 6 losses bit-identical to the uninterrupted run");
    // metrics of the part after the checkpoint are dropped on resume: write a stray one
    {
      std::ofstream f(B + "/metrics.jsonl", std::ios::app);
      f << "{\"step\": 7, \"loss\": 123.0}\n";
    }
    auto rb = cuda::GpuTrainer::resume(B, quiet);
    c.expect(rb->steps_done() == 6, "resume starts at step 6");
    cuda::GpuTrainSummary second = rb->run();
    c.expect(second.losses.size() == 6 && same(second.losses, full.losses, 6),
             "resumed losses 7..12 bit-identical to the uninterrupted run (" +
                 std::to_string(second.losses.empty() ? 0 : second.losses.back()) + " vs " +
                 std::to_string(full.losses.back()) + ")");
    c.expect(second.val_loss == full.val_loss, "final val_loss identical after resume");
    auto la = train_lines(A), lb = train_lines(B);
    c.expect(la.size() == 12 && la == lb, "metrics.jsonl training lines identical (12, stray line dropped)");
    c.expect(read_file(A + "/ckpt/step-000012.safetensors") ==
                 read_file(B + "/ckpt/step-000012.safetensors"),
             "final weights files byte-identical");
    // 3. The host-only writer gives the same files, and they resume identically.
    {
      auto hc = cuda::read_gpu_run_checkpoint(A + "/ckpt/step-000006.safetensors");
      const std::string w = cuda::write_gpu_run_checkpoint(C, hc.layout, hc.weights, hc.m, hc.v,
                                                           hc.config, hc.state);
      c.expect(read_file(w) == read_file(A + "/ckpt/step-000006.safetensors") &&
                   read_file(train::state_path_for(w)) ==
                       read_file(A + "/ckpt/step-000006.state.safetensors"),
               "host writer's weights and state files byte-identical to the GPU trainer's");
      cuda::GpuTrainSummary sc = cuda::GpuTrainer::resume(C, quiet)->run();
      c.expect(same(sc.losses, full.losses, 6) && sc.losses.size() == 6,
               "resume from the host-written checkpoint: losses 7..12 identical");
    }
    // 3b. The pipelined loop of run() (next step queued before the last one is read back)
    // equals one synchronous step at a time.
    {
      cuda::GpuTrainer t(cfg, quiet);
      std::vector<double> ls;
      for (int i = 0; i < 12; ++i) {
        std::string bad;
        ls.push_back(t.step(&bad).loss);
        if (!bad.empty()) break;
      }
      c.expect(same(ls, full.losses) && ls.size() == 12,
               "step() one at a time: the 12 losses of the pipelined run(), bit for bit");
    }
    // 4. It learns: 80 steps at a higher rate on the synthetic corpus (ln 64 = 4.16 at start).
    {
      auto cl = tiny({"train.steps=80", "train.lr=1e-2", "train.eval_every=0", "train.warmup=5"});
      cuda::GpuTrainSummary s = cuda::GpuTrainer(cl, quiet).run();
      double tail = 0;
      for (size_t i = s.losses.size() - 5; i < s.losses.size(); ++i) tail += s.losses[i] / 5;
      char buf[160];
      std::snprintf(buf, sizeof buf, "loss falls: first %.4f, mean of last 5 %.4f, val %.4f",
                    s.losses.front(), tail, s.val_loss);
      c.expect(s.losses.size() == 80 && tail < s.losses.front() - 1.0 && s.val_loss < 3.3, buf);
    }
    // 5. NaN guard.
    {
      // lr 1000 (the largest train.lr accepted): the CPU trainer stops at step 2 on this config.
      auto cn = tiny({"train.lr=1000", "train.warmup=0", "train.steps=40"});
      auto on = quiet;
      on.out_dir = N;
      cuda::GpuTrainSummary s = cuda::GpuTrainer(cn, on).run();
      c.expect(s.diverged && s.steps_done < 40 && !s.nonfinite.empty() && !s.checkpoint.empty(),
               "NaN guard stops the run at step " + std::to_string(s.steps_done + 1) + ": " +
                   s.nonfinite);
      bool refused = false;
      try {
        cuda::GpuTrainer::resume(N, quiet);
      } catch (const std::exception& e) {
        refused = std::string(e.what()).find("stopped") != std::string::npos;
      }
      c.expect(refused, "resume refuses the stop checkpoint");
      // The failing step's update was not applied: the stop checkpoint's weights file equals
      // that of a run stopped (normally) after the steps that succeeded.
      if (s.steps_done >= 1) {
        auto o2 = quiet;
        o2.out_dir = N + "2";
        o2.stop_after = s.steps_done;
        cuda::GpuTrainSummary s2 = cuda::GpuTrainer(cn, o2).run();
        c.expect(!s2.diverged && !s2.checkpoint.empty() &&
                     read_file(s2.checkpoint) == read_file(s.checkpoint),
                 "NaN guard: stop checkpoint weights == weights after step " +
                     std::to_string(s.steps_done) + " of a run stopped there");
      } else {
        c.expect(false, "NaN guard: expected at least one finite step before the stop");
      }
    }
    // 6. A fresh run refuses a directory that holds one.
    {
      bool refused = false;
      try {
        cuda::GpuTrainer(cfg, oa);
      } catch (const std::exception& e) {
        refused = std::string(e.what()).find("already holds a run") != std::string::npos;
      }
      c.expect(refused, "fresh run refuses an existing run directory");
    }
  } catch (const std::exception& e) {
    c.expect(false, std::string("exception: ") + e.what());
  }
  fs::remove_all(root);
  return c.finish("test_gpu_train");
}
