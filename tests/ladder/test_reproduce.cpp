// The ladder end to end on a micro configuration (synthetic corpus, a few steps): every rung
// gets a row, a rerun skips finished rungs, and an interrupted rung resumes from its checkpoint.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/files.h"
#include "ladder/reproduce.h"

using namespace aero;
namespace fs = std::filesystem;

namespace {
ladder::LadderOptions micro(const std::string& out) {
  ladder::LadderOptions o;
  o.preset = "tiny";
  o.out_dir = out;
  o.rungs = {"SM+LN+G", "EReg(SM(t)+ScFuFFN)-k1"};
  o.sets = {"model.n_layer=2", "model.d_model=32", "model.n_head=2", "model.context=16",
            "model.vocab_size=64", "train.steps=6", "train.batch_size=2", "train.eval_every=3",
            "train.eval_batches=1", "train.checkpoint_every=3", "data.dir=\"\""};
  o.pi_layers = 1;
  o.entropy_batches = 1;
  o.progress = false;
  o.png = false;
  return o;
}
}  // namespace

TEST(Reproduce, DefaultLadderPrunesToHalfTheLayers) {
  auto r = ladder::default_rungs(12);
  ASSERT_EQ(r.size(), 9u);
  EXPECT_EQ(r[0], "SM+LN+G");
  EXPECT_EQ(r[6], "SM+ScFuFFN-k6");
  EXPECT_EQ(r[8], "EReg(SM(t)+ScFuFFN)-k6");
  EXPECT_EQ(ladder::rung_slug("EReg(SM(t)+ScFuFFN)-k6"), "EReg_SM_t_ScFuFFN_k6");
}

TEST(Reproduce, MicroLadderWritesTablesAndSkipsFinishedRungs) {
  std::string out = (fs::temp_directory_path() / ("aero_ladder_" + std::to_string(::getpid()))).string();
  fs::remove_all(out);
  auto res = ladder::reproduce(micro(out));
  ASSERT_EQ(res["rungs"].size(), 2u);
  for (const auto& r : res["rungs"]) {
    EXPECT_EQ(r["steps"].get<int>(), 6) << r["rung"];
    EXPECT_TRUE(r["ppl"].is_number()) << r["rung"];
    EXPECT_GT(r["pi"]["measured"]["online_bytes"].get<double>(), 0) << r["rung"];
  }
  // The AERO rung has no LayerNorm and no GELU and a quarter of the FFN FLOPs (fused d x d,
  // one of two layers): its inventory is softmax only and its traffic is lower.
  const auto& base = res["rungs"][0];
  const auto& aero_rung = res["rungs"][1];
  EXPECT_EQ(aero_rung["flops"]["inventory"].get<std::string>().rfind("SM:", 0), 0u);
  EXPECT_EQ(aero_rung["flops"]["inventory"].get<std::string>().find("LN"), std::string::npos);
  EXPECT_LT(aero_rung["flops"]["ffn_flops"].get<double>(), base["flops"]["ffn_flops"].get<double>() / 4);
  EXPECT_LT(aero_rung["pi"]["measured"]["online_bytes"].get<double>(),
            base["pi"]["measured"]["online_bytes"].get<double>());
  std::string md = read_file(out + "/results.md");
  EXPECT_NE(md.find("| SM+LN+G |"), std::string::npos);
  EXPECT_NE(md.find("| EReg(SM(t)+ScFuFFN)-k1 |"), std::string::npos);
  EXPECT_TRUE(file_exists(out + "/results.csv"));
  // A rerun skips both rungs: their rung.json files are untouched.
  auto t0 = fs::last_write_time(out + "/SM_LN_G/rung.json");
  auto again = ladder::reproduce(micro(out));
  EXPECT_EQ(fs::last_write_time(out + "/SM_LN_G/rung.json"), t0);
  EXPECT_EQ(again["rungs"][0]["ppl"], res["rungs"][0]["ppl"]);
}

TEST(Reproduce, InterruptedRungResumesFromItsCheckpoint) {
  std::string out = (fs::temp_directory_path() / ("aero_ladder_rs_" + std::to_string(::getpid()))).string();
  fs::remove_all(out);
  auto o = micro(out);
  o.rungs = {"SM+LN+G"};
  auto full = ladder::reproduce(o);
  // Simulate a kill after the step-3 checkpoint: drop the finished marker and the final
  // checkpoint, point `latest` back at step 3.
  std::string d = out + "/SM_LN_G";
  fs::remove(d + "/rung.json");
  for (auto& e : fs::directory_iterator(d + "/ckpt"))
    if (e.path().filename().string().find("step-000006") == 0) fs::remove(e.path());
  write_file_atomic(d + "/ckpt/latest", "step-000003.safetensors\n");
  auto resumed = ladder::reproduce(o);
  EXPECT_EQ(resumed["rungs"][0]["steps"].get<int>(), 6);
  EXPECT_EQ(resumed["rungs"][0]["ppl"], full["rungs"][0]["ppl"]);  // bit-exact resume
}
