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
  // --refresh-pi measures the private-inference cost again without retraining: same costs
  // (same engine), same perplexity, no new checkpoint; a doctored cost is replaced.
  auto doctored = nlohmann::json::parse(read_file(out + "/SM_LN_G/rung.json"));
  doctored["pi"]["measured"]["online_bytes"] = 1;
  write_file_atomic(out + "/SM_LN_G/rung.json", doctored.dump());
  auto o = micro(out);
  o.refresh_pi = true;
  auto refreshed = ladder::reproduce(o);
  EXPECT_EQ(refreshed["rungs"][0]["pi"]["measured"]["online_bytes"],
            res["rungs"][0]["pi"]["measured"]["online_bytes"]);
  EXPECT_EQ(refreshed["rungs"][0]["ppl"], res["rungs"][0]["ppl"]);
  EXPECT_EQ(refreshed["rungs"][0]["steps"], res["rungs"][0]["steps"]);
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

namespace {
// A stand-in for aero-gpu that speaks its command line and forwards to the CPU `aero`
// (train / eval --json); --max-seconds becomes --stop-after 3; each call is logged to
// DIR/calls.log with the CUDA_VISIBLE_DEVICES it got.
std::string write_fake_gpu_trainer(const std::string& out) {
  const std::string fake = out + "/fake-aero-gpu";
  const std::string aero = std::string(AERO_BINARY_DIR) + "/aero";
  write_file_atomic(fake,
                    "#!/bin/sh\n"
                    "cmd=$1; shift\n"
                    "echo \"fake-aero-gpu $cmd $* [CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES]\" >> \"" + out + "/calls.log\"\n"
                    "args=\"\"; json=\"\"\n"
                    "while [ $# -gt 0 ]; do case $1 in\n"
                    "  --device|--gpus) shift;;\n"
                    "  --max-seconds) shift; args=\"$args --stop-after 3\";;\n"
                    "  --json) shift; json=$1;;\n"
                    "  *) args=\"$args $1\";;\n"
                    "esac; shift; done\n"
                    "if [ \"$cmd\" = eval ]; then exec " + aero + " eval $args --json > \"$json\"; fi\n"
                    "exec " + aero + " train $args\n");
  fs::permissions(fake, fs::perms::owner_all);
  return fake;
}
}  // namespace

// The GPU path's orchestration (train processes per device, pieces under a time limit, resume,
// evaluation by the trainer program), on a machine without a GPU: a stand-in for aero-gpu that
// speaks its command line and forwards to the CPU `aero` (train/eval --json). --max-seconds is
// mapped to --stop-after of half the steps, so the first call leaves each rung unfinished.
TEST(Reproduce, GpuTrainerPathRunsInPiecesAndResumes) {
  const std::string out =
      (fs::temp_directory_path() / ("aero_ladder_gpu_" + std::to_string(::getpid()))).string();
  fs::remove_all(out);
  make_dirs(out);
  const std::string fake = write_fake_gpu_trainer(out);
  auto o = micro(out + "/ladder");
  o.gpu_trainer = fake;
  o.gpus = {0, 1};
  o.max_seconds = 100;
  auto first = ladder::reproduce(o);
  EXPECT_EQ(first["rungs"].size(), 0u);
  ASSERT_EQ(first["unfinished"].size(), 2u);
  EXPECT_NE(read_file(out + "/ladder/results.md").find("rerun"), std::string::npos);
  // Second piece: both rungs resume from step 3 and finish (the fake stops at step 3 again
  // only when it starts below it), are evaluated by the trainer program and get table rows.
  o.max_seconds = 0;
  auto second = ladder::reproduce(o);
  ASSERT_EQ(second["rungs"].size(), 2u);
  EXPECT_EQ(second["unfinished"].size(), 0u);
  for (const auto& r : second["rungs"]) {
    EXPECT_EQ(r["steps"].get<int>(), 6) << r["rung"];
    EXPECT_EQ(r["trained_on"], "gpu");
    EXPECT_TRUE(r["ppl"].is_number()) << r["rung"];
    EXPECT_EQ(r["entropy"]["nan_heads"].get<int>(), 0);
  }
  const std::string calls = read_file(out + "/calls.log");
  EXPECT_NE(calls.find("train --resume"), std::string::npos) << calls;
  EXPECT_NE(calls.find("eval "), std::string::npos) << calls;
  EXPECT_NE(calls.find("--device 1"), std::string::npos) << calls;  // two GPUs in use
  // The table's perplexity and entropy are what the trainer program's evaluation reported.
  const auto ev = nlohmann::json::parse(read_file(out + "/ladder/SM_LN_G/eval.json"));
  EXPECT_EQ(second["rungs"][0]["ppl"], ev["val_ppl"]);
  const auto ent = nlohmann::json::parse(read_file(out + "/ladder/SM_LN_G/entropy.json"));
  EXPECT_EQ(ent["entropy"], ev["entropy"]);
  EXPECT_NE(read_file(out + "/ladder/results.md").find("| EReg(SM(t)+ScFuFFN)-k1 |"), std::string::npos);
  fs::remove_all(out);
}

// The ladder on Pythia's block (rotary, parallel attention + MLP, untied head): every rung's
// patches apply to the pythia family, trains and gets a row; LayerNorm-free rungs drop LN.
TEST(Reproduce, PythiaLadderRuns) {
  const std::string out =
      (fs::temp_directory_path() / ("aero_ladder_py_" + std::to_string(::getpid()))).string();
  fs::remove_all(out);
  auto o = micro(out);
  o.preset = "pythia-tiny";
  o.rungs = {"SM+LN+G", "SM+R", "EReg(SM(t)+ScFuFFN)-k1"};
  auto res = ladder::reproduce(o);
  ASSERT_EQ(res["rungs"].size(), 3u);
  for (const auto& r : res["rungs"]) {
    EXPECT_EQ(r["steps"].get<int>(), 6) << r["rung"];
    EXPECT_TRUE(r["ppl"].is_number()) << r["rung"];
    const auto cfg = nlohmann::json::parse(read_file(r["run_dir"].get<std::string>() + "/config.json"));
    EXPECT_EQ(cfg["model"]["family"], "pythia") << r["rung"];
    EXPECT_FALSE(cfg["model"]["tie_embeddings"].get<bool>());
  }
  EXPECT_NE(read_file(out + "/results.md").find("Model: pythia"), std::string::npos);
  EXPECT_NE(res["rungs"][0]["flops"]["inventory"].get<std::string>().find("LN"), std::string::npos);
  EXPECT_EQ(res["rungs"][1]["flops"]["inventory"].get<std::string>().find("LN"), std::string::npos);
  EXPECT_EQ(res["base_config"]["model"]["family"], "pythia");
  fs::remove_all(out);
}

// --gpus-per-rung K: each rung trains data parallel on K devices (aero-gpu --gpus K), the
// process seeing exactly its group through CUDA_VISIBLE_DEVICES.
TEST(Reproduce, GpuTrainerGroupsDevicesPerRung) {
  const std::string out =
      (fs::temp_directory_path() / ("aero_ladder_gpg_" + std::to_string(::getpid()))).string();
  fs::remove_all(out);
  make_dirs(out);
  auto o = micro(out + "/ladder");
  o.rungs = {"SM+LN+G", "SM+R"};
  o.gpu_trainer = write_fake_gpu_trainer(out);
  o.gpus = {4, 5, 6, 7};
  o.gpus_per_rung = 2;
  auto res = ladder::reproduce(o);
  ASSERT_EQ(res["rungs"].size(), 2u);
  const std::string calls = read_file(out + "/calls.log");
  EXPECT_NE(calls.find("--gpus 2 [CUDA_VISIBLE_DEVICES=4,5]"), std::string::npos) << calls;
  EXPECT_NE(calls.find("--gpus 2 [CUDA_VISIBLE_DEVICES=6,7]"), std::string::npos) << calls;
  EXPECT_EQ(calls.find("--device 5"), std::string::npos) << calls;
  o.gpus = {0, 1, 2};
  o.rungs = {"SM+LN+R"};
  EXPECT_THROW(ladder::reproduce(o), std::exception);  // 3 ids are not groups of 2
  fs::remove_all(out);
}
