// Metrics-log reading, run plots (aero plot) and run comparison (aero compare) on synthetic
// run directories written by the test itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/compare.h"
#include "analysis/run_metrics.h"
#include "core/error.h"
#include "core/files.h"
#include "model/config.h"
#include "xml_check.h"

using namespace aero::analysis;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name) {
    path = (fs::temp_directory_path() / ("aero_test_" + name + "_" + std::to_string(getpid()))).string();
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A run directory like `aero train --out` leaves: config.json and metrics.jsonl with `steps`
// training records and an evaluation every `every` steps (entropy L x H decaying with depth).
std::string make_run(const std::string& root, const std::string& name, const std::string& rung, int steps, int every,
                     bool nan_at_end = false) {
  std::string dir = root + "/" + name;
  fs::create_directories(dir);
  auto cfg = aero::model::build_run_config("", "tiny", rung, {});
  aero::write_file_atomic(dir + "/config.json", aero::model::to_json(cfg).dump(2));
  std::ostringstream o;
  const int L = cfg.model.n_layer, H = cfg.model.n_head;
  for (int s = 1; s <= steps; ++s) {
    double loss = 2 + 8 * std::exp(-s / 20.0);
    o << json{{"step", s},           {"loss", loss},          {"ce", loss},     {"ent_reg", 0.0},
              {"lr", 1e-3 * s / steps}, {"grad_norm", 1.0}, {"tokens_per_s", 1000.0}, {"elapsed_s", s * 0.1}}
             .dump()
      << "\n";
    if (s % every == 0) {
      json ent = json::array();
      for (int l = 0; l < L; ++l) {
        json row = json::array();
        for (int h = 0; h < H; ++h) row.push_back(3.8 * (1.0 - double(l) / L) * (0.5 + 0.1 * h) + 0.001 * s);
        ent.push_back(row);
      }
      double vl = loss + 0.1;
      o << json{{"step", s}, {"split", "valid"}, {"val_loss", vl}, {"val_ppl", std::exp(vl)}, {"entropy", ent}}.dump()
        << "\n";
    }
  }
  if (nan_at_end)
    o << R"({"step": )" << steps + 1 << R"(, "event": "nonfinite", "where": "layer 3 head 1: attention logits", "loss": null})"
      << "\n";
  aero::write_file_atomic(dir + "/metrics.jsonl", o.str());
  return dir;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool q = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (q) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (c == '"') q = false;
      else cur += c;
    } else if (c == '"') {
      q = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

TEST(RunMetrics, ReadsTrainingEvaluationAndEventRecords) {
  TempDir t("metrics");
  std::string dir = make_run(t.path, "run", "SM+LN+G", 40, 10, true);
  auto m = read_metrics(dir);
  EXPECT_EQ(m.step.size(), 40u);
  EXPECT_EQ(m.eval_step, (std::vector<double>{10, 20, 30, 40}));
  ASSERT_EQ(m.eval_entropy.size(), 4u);
  EXPECT_EQ(m.eval_entropy[0].size(), 4u);     // tiny: L = 4
  EXPECT_EQ(m.eval_entropy[0][0].size(), 4u);  // H = 4
  EXPECT_NEAR(m.val_ppl[1], std::exp(m.val_loss[1]), 1e-9);
  ASSERT_EQ(m.events.size(), 1u);
  EXPECT_EQ(m.events[0].first, 41);
  EXPECT_NE(m.events[0].second.find("layer 3"), std::string::npos);
}

TEST(RunMetrics, NullIsNaNAndBadLinesNameFileAndLine) {
  TempDir t("metrics_bad");
  std::string p = t.path + "/metrics.jsonl";
  aero::write_file_atomic(p, "{\"step\":1,\"loss\":null,\"lr\":0.1}\n\n{\"step\":2,\"loss\":1.5}\n");
  auto m = read_metrics(p);
  ASSERT_EQ(m.loss.size(), 2u);
  EXPECT_TRUE(std::isnan(m.loss[0]));
  EXPECT_TRUE(std::isnan(m.lr[1]));  // absent
  EXPECT_EQ(m.skipped_lines, 1u);

  aero::write_file_atomic(p, "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":\n");
  try {
    read_metrics(p);
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2"), std::string::npos) << e.what();
  }
  aero::write_file_atomic(p, "{\"loss\":2}\n");
  EXPECT_THROW(read_metrics(p), aero::Error);  // no step
  aero::write_file_atomic(p, "{\"step\":1,\"loss\":\"high\"}\n");
  try {
    read_metrics(p);
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"loss\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_metrics(t.path + "/nope"), aero::Error);
}

TEST(RunPlots, WritesEveryPlotWithLabelsAndSeries) {
  TempDir t("plots");
  std::string dir = make_run(t.path, "run", "SM+LN+G", 120, 20);
  auto m = read_metrics(dir);
  auto files = plot_run(m, dir + "/plots", "run", 128, true);
  for (std::string f : {"loss", "perplexity", "lr", "entropy_layers", "entropy_heatmap", "entropy_bins"}) {
    EXPECT_TRUE(aero::file_exists(dir + "/plots/" + f + ".svg")) << f;
    EXPECT_TRUE(aero::file_exists(dir + "/plots/" + f + ".png")) << f;
    EXPECT_EQ(aero::test::xml_problem(aero::read_file(dir + "/plots/" + f + ".svg")), "") << f;
  }
  EXPECT_EQ(files.size(), 12u);
  std::string loss = aero::read_file(dir + "/plots/loss.svg");
  EXPECT_NE(loss.find(">loss (nats/token)<"), std::string::npos);
  EXPECT_NE(loss.find(">step<"), std::string::npos);
  // raw loss, smoothed loss (more than 50 steps), validation CE
  EXPECT_EQ(aero::test::count_of(loss, "class=\"series\""), 3u);
  std::string ent = aero::read_file(dir + "/plots/entropy_layers.svg");
  // one series per layer plus the ln(T!)/T reference line
  EXPECT_EQ(aero::test::count_of(ent, "class=\"series\""), 5u);
  EXPECT_NE(ent.find("ln(T!)/T = 3.878"), std::string::npos);
  EXPECT_NE(ent.find(">entropy (nats)<"), std::string::npos);
}

TEST(RunPlots, LayerEntropyIsTheMeanOverHeads) {
  RunMetrics m;
  m.eval_step = {10, 20};
  m.val_loss = m.val_ppl = {1, 1};
  m.eval_entropy = {{{1, 3}, {0, 2}}, {{2, 2}, {NAN, 1}}};
  auto c = layer_entropy_chart(m, "", 0);
  ASSERT_EQ(c.series.size(), 2u);
  EXPECT_EQ(c.series[0].y, (std::vector<double>{2, 2}));
  EXPECT_DOUBLE_EQ(c.series[1].y[0], 1);
  EXPECT_TRUE(std::isnan(c.series[1].y[1]));  // a NaN head makes its layer's point a gap
}

TEST(Compare, ArchitectureNamesRoundTripTheRungs) {
  for (auto& rung : aero::model::rung_names()) {
    if (rung.find("LR") != std::string::npos) continue;  // leaky variants print as LR too, checked below
    auto c = aero::model::build_run_config("", "gpt2-small", rung, {});
    EXPECT_EQ(architecture_name(c.model), rung);
  }
  EXPECT_EQ(architecture_name(aero::model::build_run_config("", "gpt2-small", "SM+LN+LR", {}).model), "SM+LN+LR");
  EXPECT_EQ(architecture_name(aero::model::build_run_config("", "gpt2-small", "SM+ScFuFFN-k6", {}).model),
            "SM+ScFuFFN-k6");
}

TEST(Compare, SummarizesRunsIntoMarkdownAndCsv) {
  TempDir t("compare");
  std::string a = make_run(t.path, "baseline", "SM+LN+G", 60, 20);
  std::string b = make_run(t.path, "aero", "EReg(SM(t)+ScFuFFN)-k2", 60, 20, true);
  aero::write_file_atomic(b + "/pi.json",
                          R"({"online_bytes": 350000000, "rounds": 250, "latency_s": 1.25, "network": "lan", "scope": "blocks"})");
  auto ra = summarize_run(a), rb = summarize_run(b);
  EXPECT_EQ(ra.arch, "SM+LN+G");
  EXPECT_EQ(rb.arch, "EReg(SM(t)+ScFuFFN)-k2");
  EXPECT_EQ(ra.last_step, 60);
  EXPECT_NEAR(ra.val_ppl, std::exp(2 + 8 * std::exp(-3.0) + 0.1), 1e-9);
  EXPECT_NEAR(ra.best_val_ppl, ra.val_ppl, 1e-12);  // loss decreases: the last is the best
  // layer entropies 3.8 (1 - l/4)(0.5 + 0.1 h) + 0.06: Max = 3.8 * 0.8 + 0.06 = 3.1;
  // top bin [2.325, 3.1]: 2.34, 2.72, 3.10 (layer 0) and 2.34 (layer 1) -> 4 of 16;
  // bottom bin [0, 0.775): 0.535, 0.63, 0.725 (layer 3) -> 3 of 16
  EXPECT_NEAR(ra.overload, 4.0 / 16, 1e-12);
  EXPECT_NEAR(ra.collapse, 3.0 / 16, 1e-12);
  EXPECT_FALSE(ra.pi.has_value());
  ASSERT_TRUE(rb.pi.has_value());
  EXPECT_DOUBLE_EQ(rb.pi->rounds, 250);
  EXPECT_NE(rb.stopped.find("step 61"), std::string::npos);
  EXPECT_EQ(inventory_string(rb.flops.inventory), "SM: 16 x R^{128x128}");

  std::string md = compare_markdown({ra, rb});
  EXPECT_NE(md.find("| baseline | SM+LN+G |"), std::string::npos) << md;
  EXPECT_NE(md.find("EReg(SM(t)+ScFuFFN)-k2"), std::string::npos);
  EXPECT_NE(md.find("| 0.350 | 250 | 1.250 | lan |"), std::string::npos) << md;
  EXPECT_EQ(aero::test::count_of(md, "\n|"), 3u);  // separator + 2 rows after the header

  std::string csv = compare_csv({ra, rb});
  std::istringstream in(csv);
  std::string header, r1, r2, extra;
  std::getline(in, header);
  std::getline(in, r1);
  std::getline(in, r2);
  EXPECT_FALSE(std::getline(in, extra));
  auto h = split_csv_line(header), c1 = split_csv_line(r1), c2 = split_csv_line(r2);
  EXPECT_EQ(h.size(), c1.size());
  EXPECT_EQ(h.size(), c2.size());
  auto col = [&](const std::string& name) { return size_t(std::find(h.begin(), h.end(), name) - h.begin()); };
  ASSERT_LT(col("ffn_flops"), h.size());
  EXPECT_DOUBLE_EQ(std::stod(c1[col("ffn_flops")]), ra.flops.ffn_flops);
  EXPECT_EQ(c2[col("pi_rounds")], "250");
  EXPECT_EQ(c1[col("pi_rounds")], "");
  EXPECT_EQ(c1[col("nonlinear_ops")], inventory_string(ra.flops.inventory));  // quoted: has commas

  auto files = plot_compare({ra, rb}, {read_metrics(a), read_metrics(b)}, t.path + "/cmp", false);
  ASSERT_EQ(files.size(), 2u);
  std::string ppl = aero::read_file(t.path + "/cmp/compare_ppl.svg");
  EXPECT_EQ(aero::test::xml_problem(ppl), "");
  EXPECT_EQ(aero::test::count_of(ppl, "class=\"series\""), 2u);
}

TEST(Compare, BadInputsNameTheFile) {
  TempDir t("compare_bad");
  std::string a = make_run(t.path, "r", "SM+LN+G", 10, 5);
  aero::write_file_atomic(a + "/pi.json", R"({"rounds": "many"})");
  try {
    summarize_run(a);
    FAIL();
  } catch (const aero::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("pi.json"), std::string::npos) << m;
    EXPECT_NE(m.find("rounds"), std::string::npos) << m;
  }
  fs::remove(a + "/pi.json");
  aero::write_file_atomic(a + "/config.json", R"({"model": {"n_layer": "x"}})");
  try {
    summarize_run(a);
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_layer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(summarize_run(t.path + "/missing"), aero::Error);
  fs::create_directories(t.path + "/empty");
  EXPECT_THROW(summarize_run(t.path + "/empty"), aero::Error);
}

TEST(Compare, ReadsTheCostModelFormatWithLatencyPerNetwork) {
  TempDir t("pi_bench");
  std::string p = t.path + "/pi.json";
  aero::write_file_atomic(p, R"({"source": "cost-model", "scope": "blocks", "context": 128,
    "online_bytes": 4.0e8, "rounds": 300, "key_bytes_per_party": 1.5e10, "keygen_s_estimate": 12.5,
    "latency_s": {"lan-10g": 0.8, "wan-100m-80ms": 29.5}, "ops": {"gelu": {"rounds": 2}}})");
  auto c = read_pi_cost(p);
  EXPECT_DOUBLE_EQ(c.latency_s, 29.5);  // the paper's WAN by default
  EXPECT_EQ(c.network, "wan-100m-80ms");
  EXPECT_DOUBLE_EQ(c.offline_bytes, 1.5e10);
  EXPECT_DOUBLE_EQ(c.keygen_s, 12.5);
  EXPECT_DOUBLE_EQ(c.tokens, 128);
  EXPECT_EQ(c.source, "cost-model");
  auto lan = read_pi_cost(p, "lan-10g");
  EXPECT_DOUBLE_EQ(lan.latency_s, 0.8);
  EXPECT_EQ(lan.network, "lan-10g");
  try {
    read_pi_cost(p, "wan-1m");
    FAIL();
  } catch (const aero::Error& e) {
    EXPECT_NE(std::string(e.what()).find("lan-10g, wan-100m-80ms"), std::string::npos) << e.what();
  }
}
