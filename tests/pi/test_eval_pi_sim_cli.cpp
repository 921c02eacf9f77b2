// `aero eval --pi-sim` end to end: a checkpoint trained for a few steps is evaluated by the
// aero binary in float and under the fixed-point arithmetic of private inference; both report
// the same chunks, and the two losses agree within the fixed-point bound (docs/private_inference.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd << "\n" << out;
  return out;
}

}  // namespace

TEST(EvalPiSimCli, FixedPointLossTracksFloatLoss) {
  const std::string aero = std::string(AERO_BINARY_DIR) + "/aero";
  if (!fs::exists(aero)) GTEST_SKIP() << aero << " not built";
  const std::string dir = (fs::temp_directory_path() / ("aero_pisim_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  auto cfg = aero::model::build_run_config(
      "", "tiny", "SM+LN+G",
      {"model.n_layer=2", "model.d_model=32", "model.n_head=2", "model.context=32", "model.vocab_size=256",
       "train.steps=40", "train.batch_size=4", "train.eval_every=1000", "train.checkpoint_every=1000",
       "data.dir=\"\""});
  aero::train::TrainOptions o;
  o.out_dir = dir;
  o.progress = false;
  aero::train::Trainer(cfg, o).run();

  auto fl = nlohmann::json::parse(run("OMP_NUM_THREADS=1 " + aero + " eval " + dir + " --json --max-batches 3 2>/dev/null"));
  auto fx = nlohmann::json::parse(run("OMP_NUM_THREADS=1 " + aero + " eval " + dir + " --pi-sim --json --max-batches 3 2>/dev/null"));
  EXPECT_EQ(fx["pi_sim"], true);
  EXPECT_EQ(fx["chunks"], fl["chunks"]);
  const double a = fl["val_loss"].get<double>(), b = fx["val_loss"].get<double>();
  EXPECT_TRUE(std::isfinite(b));
  EXPECT_LT(std::fabs(a - b), 0.02 * a) << "float " << a << " vs pi-sim " << b;
  EXPECT_NE(a, b) << "pi-sim returned the float result unchanged";  // the arithmetic differs
  fs::remove_all(dir);
}
