// CPU only (GoogleTest, project build with -DAERO_CUDA=ON): the run-directory checkpoints of
// aero-gpu (src/cuda/gpu_train_ckpt.h) against the CPU trainer's own loaders and writer.
// GPU -> CPU: files from write_gpu_run_checkpoint load with aero::train::load_model and
// load_trainer_state bit-exactly, and `Trainer::resume` continues the run. CPU -> GPU: a
// checkpoint written by aero::train::Trainer reads back into GPU arenas bit-exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/files.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "cuda/gpu_train_ckpt.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace aero;

namespace {

model::RunConfig tiny(int steps) {
  return model::build_run_config(
      "", "tiny", "EReg(SM(t)+ScFuFFN)",
      {"model.n_layer=2", "model.n_head=2", "model.d_model=16", "model.d_ff=32",
       "model.context=16", "model.vocab_size=40", "train.batch_size=2", "train.seq_len=16",
       "train.grad_accum=2", "train.steps=" + std::to_string(steps), "train.eval_every=0",
       "train.eval_batches=1", "train.checkpoint_every=0", "train.warmup=1", "train.threads=1"});
}

struct TmpDir {
  std::string path;
  explicit TmpDir(const std::string& tag)
      : path((fs::temp_directory_path() /
              ("aero_gpu_ckpt_" + tag + "_" + std::to_string(::getpid())))
                 .string()) {
    fs::remove_all(path);
  }
  ~TmpDir() { fs::remove_all(path); }
};

std::vector<float> random_arena(size_t n, uint64_t seed, bool positive) {
  Rng r(seed);
  std::vector<float> a(n);
  for (auto& x : a) x = float(positive ? std::fabs(r.normal()) : r.normal());
  return a;
}

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace

TEST(GpuTrainCkpt, GpuWrittenCheckpointLoadsAndResumesOnCpu) {
  TmpDir d("g2c");
  const model::RunConfig cfg = tiny(9);
  const cuda::GpuLayout lay = cuda::gpu_param_layout(cfg.model);
  const auto w = random_arena(lay.size, 1, false), m = random_arena(lay.size, 2, false),
             v = random_arena(lay.size, 3, true);
  Rng rng(99);
  for (int i = 0; i < 3; ++i) rng.normal();  // leaves a cached spare
  cuda::GpuTrainState st;
  st.step = 7;
  st.adamw_t = 7;
  st.data_epoch = 0;
  st.data_index = 28;
  st.rng = rng.state();
  st.elapsed_s = 1.25;
  const std::string path = cuda::write_gpu_run_checkpoint(d.path, lay, w, m, v, cfg, st);
  EXPECT_EQ(path, train::checkpoint_path(d.path, 7));
  EXPECT_EQ(train::resolve_checkpoint(d.path), path);

  train::LoadedModel lm = train::load_model(d.path, 2, 16);
  EXPECT_EQ(lm.step, 7);
  EXPECT_TRUE(lm.config == cfg);
  auto& ps = lm.model->params();
  ASSERT_EQ(ps.size(), lay.params.size());
  for (const auto& gp : lay.params) {
    const auto& p = lm.model->param(gp.name);
    ASSERT_EQ(p.shape, gp.shape) << gp.name;
    EXPECT_TRUE(same_bits(p.data, w.data() + gp.offset, gp.size)) << gp.name;
  }

  train::AdamW opt(ps, {cfg.train.beta1, cfg.train.beta2, cfg.train.eps, cfg.train.weight_decay});
  train::TrainerState ts;
  train::load_trainer_state(path, opt, ts);
  EXPECT_EQ(ts.step, 7);
  EXPECT_EQ(opt.steps_taken(), 7);
  EXPECT_EQ(ts.data.epoch, 0u);
  EXPECT_EQ(ts.data.index, 28u);
  EXPECT_EQ(ts.rng.s, st.rng.s);
  EXPECT_EQ(std::memcmp(&ts.rng.spare, &st.rng.spare, 8), 0);
  EXPECT_TRUE(ts.rng.has_spare);
  EXPECT_EQ(ts.elapsed_s, 1.25);
  EXPECT_EQ(ts.stop_reason, "");
  for (size_t i = 0; i < ps.size(); ++i) {
    const cuda::GpuParam* q = nullptr;
    for (const auto& x : lay.params)
      if (x.name == ps[i].name) q = &x;
    ASSERT_NE(q, nullptr) << ps[i].name;
    const cuda::GpuParam& gp = *q;
    EXPECT_TRUE(same_bits(opt.first_moment(i).data(), m.data() + gp.offset, gp.size)) << gp.name;
    EXPECT_TRUE(same_bits(opt.second_moment(i).data(), v.data() + gp.offset, gp.size)) << gp.name;
  }

  // The CPU trainer continues the GPU-written run to train.steps.
  train::TrainOptions to;
  to.progress = false;
  auto t = train::Trainer::resume(d.path, to);
  EXPECT_EQ(t->steps_done(), 7);
  train::TrainSummary s = t->run();
  EXPECT_EQ(s.steps_done, 9);
  ASSERT_EQ(s.losses.size(), 2u);
  EXPECT_TRUE(std::isfinite(s.losses[0]) && std::isfinite(s.losses[1]));
}

TEST(GpuTrainCkpt, CpuWrittenCheckpointReadsIntoGpuArenas) {
  TmpDir d("c2g");
  const model::RunConfig cfg = tiny(3);
  train::TrainOptions to;
  to.progress = false;
  to.out_dir = d.path;
  {
    train::Trainer t(cfg, to);
    t.run();
  }
  const cuda::HostCheckpoint hc = cuda::read_gpu_run_checkpoint(d.path);
  EXPECT_EQ(hc.path, train::checkpoint_path(d.path, 3));
  EXPECT_TRUE(hc.config == cfg);
  EXPECT_EQ(hc.state.step, 3);
  EXPECT_EQ(hc.state.adamw_t, 3);
  EXPECT_EQ(hc.state.data_index, 3u * 2 * 2);
  EXPECT_EQ(hc.state.rng.s, Rng(cfg.train.seed).state().s);
  EXPECT_GT(hc.state.elapsed_s, 0.0);

  train::LoadedModel lm = train::load_model(d.path, 2, 16);
  auto& ps = lm.model->params();
  train::AdamW opt(ps, {cfg.train.beta1, cfg.train.beta2, cfg.train.eps, cfg.train.weight_decay});
  train::TrainerState ts;
  train::load_trainer_state(hc.path, opt, ts);
  double msum = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    const cuda::GpuParam* gp = nullptr;
    for (const auto& q : hc.layout.params)
      if (q.name == ps[i].name) gp = &q;
    ASSERT_NE(gp, nullptr) << ps[i].name;
    EXPECT_TRUE(same_bits(ps[i].data, hc.weights.data() + gp->offset, gp->size)) << gp->name;
    EXPECT_TRUE(same_bits(opt.first_moment(i).data(), hc.m.data() + gp->offset, gp->size));
    EXPECT_TRUE(same_bits(opt.second_moment(i).data(), hc.v.data() + gp->offset, gp->size));
    for (size_t j = 0; j < gp->size; ++j) msum += std::fabs(hc.m[gp->offset + j]);
  }
  EXPECT_GT(msum, 0.0);  // the moments are real, not zeros

  // Written back by the GPU-side writer, the CPU files are reproduced byte for byte.
  TmpDir d2("c2g2");
  const std::string w2 =
      cuda::write_gpu_run_checkpoint(d2.path, hc.layout, hc.weights, hc.m, hc.v, hc.config, hc.state);
  EXPECT_EQ(read_file(w2), read_file(hc.path));
  EXPECT_EQ(read_file(train::state_path_for(w2)), read_file(train::state_path_for(hc.path)));
}

TEST(GpuTrainCkpt, RefusesBadFiles) {
  TmpDir d("bad");
  const model::RunConfig cfg = tiny(4);
  const cuda::GpuLayout lay = cuda::gpu_param_layout(cfg.model);
  std::vector<float> z(lay.size, 0.f);
  cuda::GpuTrainState st;
  st.step = 2;
  st.adamw_t = 2;
  const std::string path = cuda::write_gpu_run_checkpoint(d.path, lay, z, z, z, cfg, st);
  auto expect_throw = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no exception; expected one containing '" << needle << "'";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // state: a key missing
  SafeTensors s = SafeTensors::load(train::state_path_for(path));
  s.metadata.erase("rng");
  s.save(train::state_path_for(path));
  expect_throw([&] { cuda::read_gpu_run_checkpoint(d.path); }, "'rng'");
  // weights: wrong format
  SafeTensors w = SafeTensors::load(path);
  w.metadata["format"] = "something-else";
  w.save(path);
  expect_throw([&] { cuda::read_gpu_run_checkpoint(d.path); }, "format");
  // state missing
  cuda::write_gpu_run_checkpoint(d.path, lay, z, z, z, cfg, st);
  fs::remove(train::state_path_for(path));
  expect_throw([&] { cuda::read_gpu_run_checkpoint(d.path); }, "missing");
  // a directory without a run
  expect_throw([&] { train::resolve_checkpoint(d.path + "/nothing"); }, "does not exist");
}
