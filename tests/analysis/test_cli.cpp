// The analysis commands as a user runs them (the `aero` binary of this build tree): output
// format of `aero flops --json`, files of `aero plot`, CSV of `aero compare`, error exits.
// Skipped when the binary has not been built beside this test program.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "model/config.h"

namespace fs = std::filesystem;

namespace {
const std::string kAero = std::string(AERO_BINARY_DIR) + "/aero";

struct Result {
  int status = -1;
  std::string out;
};
// Runs `aero ARGS` (stderr folded into stdout unless ARGS redirects it), returns its exit
// status and output.
Result run_aero(const std::string& args) {
  Result r;
  std::string cmd = "OMP_NUM_THREADS=1 '" + kAero + "' " + args + (args.find("2>") == std::string::npos ? " 2>&1" : "");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kAero)) GTEST_SKIP() << kAero << " not built";
    dir_ = (fs::temp_directory_path() / ("aero_test_cli_" + std::to_string(getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // A run directory with config.json and a short metrics log.
  std::string run(const std::string& name, const std::string& rung) {
    std::string d = dir_ + "/" + name;
    fs::create_directories(d);
    auto cfg = aero::model::build_run_config("", "tiny", rung, {});
    aero::write_file_atomic(d + "/config.json", aero::model::to_json(cfg).dump());
    std::ostringstream o;
    for (int s = 1; s <= 20; ++s) {
      o << nlohmann::json{{"step", s}, {"loss", 5.0 - 0.1 * s}, {"lr", 1e-3}}.dump() << "\n";
      if (s % 10 == 0) {
        nlohmann::json ent = nlohmann::json::array();
        for (int l = 0; l < 4; ++l) ent.push_back({0.5 * l, 1.0, 2.0, 3.0});
        o << nlohmann::json{{"step", s}, {"split", "valid"}, {"val_loss", 3.0}, {"val_ppl", 20.0}, {"entropy", ent}}
                 .dump()
          << "\n";
      }
    }
    aero::write_file_atomic(d + "/metrics.jsonl", o.str());
    return d;
  }
  std::string dir_;
};
}  // namespace

TEST_F(Cli, FlopsJsonHasTheNumbers) {
  auto r = run_aero("flops --preset gpt2-small --context 128 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j["ffn_flops"].is_number());
  ASSERT_TRUE(j["attn_flops"].is_number());
  EXPECT_DOUBLE_EQ(j["ffn_flops"].get<double>(), 12.0 * 16 * 128 * 768 * 768);
  EXPECT_DOUBLE_EQ(j["attn_flops"].get<double>(), 12.0 * (8.0 * 128 * 768 * 768 + 3.0 * 128 * 128 * 768));
  EXPECT_EQ(j["architecture"], "SM+LN+G");

  auto t = run_aero("flops --preset gpt2-small --rung SM+ScFuFFN-k6 -T 256");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("T=256"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("SM: 144 x R^{256x256}"), std::string::npos) << t.out;

  auto bad = run_aero("flops --preset nope");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("unknown preset 'nope'"), std::string::npos) << bad.out;
}

TEST_F(Cli, PlotAndCompare) {
  std::string a = run("a", "SM+LN+G"), b = run("b", "SM");
  auto p = run_aero("plot '" + a + "' --no-png");
  ASSERT_EQ(p.status, 0) << p.out;
  for (std::string f : {"loss", "perplexity", "lr", "entropy_layers", "entropy_heatmap", "entropy_bins"})
    EXPECT_TRUE(fs::exists(a + "/plots/" + f + ".svg")) << f << "\n" << p.out;
  EXPECT_FALSE(fs::exists(a + "/plots/loss.png"));

  auto c = run_aero("compare '" + a + "' '" + b + "' --csv");
  ASSERT_EQ(c.status, 0) << c.out;
  std::istringstream in(c.out);
  std::string header, r1, r2;
  std::getline(in, header);
  std::getline(in, r1);
  std::getline(in, r2);
  EXPECT_EQ(header.rfind("run,architecture,", 0), 0u) << header;
  EXPECT_EQ(r1.rfind("a,SM+LN+G,", 0), 0u) << r1;
  EXPECT_EQ(r2.rfind("b,SM,", 0), 0u) << r2;

  auto missing = run_aero("plot '" + dir_ + "/none'");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("run directory not found"), std::string::npos) << missing.out;
}

#include "model/model.h"
#include "train/checkpoint.h"

TEST_F(Cli, EntropyOfACheckpoint) {
  auto cfg = aero::model::build_run_config(
      "", "tiny", "SM",
      {"model.n_layer=2", "model.n_head=2", "model.d_model=16", "model.context=16", "model.vocab_size=64",
       "train.batch_size=2"});
  aero::model::Model m(cfg.model, 2, 16);
  m.init_weights(5);
  std::string run = dir_ + "/run";
  fs::create_directories(run + "/ckpt");
  std::string w = aero::train::checkpoint_path(run, 30);
  aero::train::save_checkpoint(w, m, cfg, 30);
  aero::write_file_atomic(run + "/ckpt/latest", fs::path(w).filename().string() + "\n");

  auto r = run_aero("entropy '" + w + "' --batches 2 --json --no-png 2>/dev/null");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_layer"], 2);
  EXPECT_EQ(j["n_head"], 2);
  EXPECT_EQ(j["samples"], 4);  // 2 forwards of 2 sequences
  EXPECT_EQ(j["step"], 30);
  EXPECT_EQ(j["architecture"], "SM");
  EXPECT_EQ(j["data"], "synthetic");
  EXPECT_NEAR(j["max_theoretical"].get<double>(), std::lgamma(17.0) / 16, 1e-12);
  int64_t binned = 0;
  for (auto& b : j["bins"]) binned += b["count"].get<int64_t>();
  EXPECT_EQ(binned + j["nan_heads"].get<int64_t>(), 4);
  ASSERT_TRUE(j.contains("paper_bin_fractions"));  // SM: 33% bottom, 45% top (SPEC section 3)
  EXPECT_DOUBLE_EQ(j["paper_bin_fractions"][0].get<double>(), 0.33);
  EXPECT_TRUE(j["paper_bin_fractions"][1].is_null());
  std::string out = run + "/entropy/step-000030";
  EXPECT_TRUE(fs::exists(out + "/entropy.json"));
  EXPECT_TRUE(fs::exists(out + "/entropy.txt"));
  EXPECT_TRUE(fs::exists(out + "/entropy_heatmap.svg"));
  EXPECT_TRUE(fs::exists(out + "/entropy_bins.svg"));

  // a run directory means its latest checkpoint; the table names the bins
  auto t = run_aero("entropy '" + run + "' --batches 1 --no-png --out '" + dir_ + "/e' 2>/dev/null");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("[3Max/4, Max]"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("ln(T!)/T = 1.917"), std::string::npos) << t.out;  // ln(16!)/16
}
