// Config parsing: every key validated by name, presets and rungs give the documented switches,
// --set overrides apply, and to_json round-trips.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "model/config.h"

using namespace aero::model;
using nlohmann::json;

namespace {
// The message of the aero::Error thrown by f, or "" when nothing is thrown.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const aero::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsMatchDocs) {
  RunConfig c = run_config_from_json(json::object());
  EXPECT_EQ(c.model.family, Family::gpt2);
  EXPECT_EQ(c.model.d_ff, 4 * c.model.d_model);
  EXPECT_TRUE(c.model.final_norm);
  EXPECT_TRUE(c.model.tie_embeddings);
  EXPECT_FALSE(c.model.parallel_residual);
  EXPECT_EQ(c.train.seq_len, c.model.context);
  EXPECT_DOUBLE_EQ(c.model.entropy_reg.lambda, 1e-5);
  EXPECT_DOUBLE_EQ(c.model.entropy_reg.gamma, 0.2);
  EXPECT_EQ(c.model.entropy_reg.reduction, EntropyReduction::sum);
}

TEST(Config, DependentDefaults) {
  auto m = model_config_from_json(json{{"family", "pythia"}, {"norm", "none"}, {"d_model", 64},
                                       {"temperature_param", "offset"}});
  EXPECT_TRUE(m.parallel_residual);
  EXPECT_FALSE(m.tie_embeddings);
  EXPECT_FALSE(m.final_norm);  // forced off with norm=none unless set
  EXPECT_EQ(m.d_ff, 256);
  EXPECT_DOUBLE_EQ(m.temperature_init, 0.01);
  auto m2 = model_config_from_json(json{{"norm", "none"}, {"final_norm", true}});
  EXPECT_TRUE(m2.final_norm);
}

TEST(Config, ErrorsNameTheKey) {
  EXPECT_NE(error_of([] { model_config_from_json(json{{"n_heads", 4}}); }).find("model.n_heads"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"norm", "rmsnorm"}}); }).find("model.norm"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"n_layer", "four"}}); }).find("model.n_layer"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"n_layer", 0}}); }).find("model.n_layer"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"d_model", 130}, {"n_head", 4}}); }).find("model.n_head"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"weight_norm", {"qk", "w"}}}); }).find("model.weight_norm"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"entropy_reg", {{"gama", 0.2}}}}); }).find("model.entropy_reg.gama"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"ffn_kind", "fused"}, {"ffn_act", "gelu"}}); }).find("model.ffn_act"), std::string::npos);
  EXPECT_NE(error_of([] { model_config_from_json(json{{"ffn_layers", 9}, {"n_layer", 4}}); }).find("model.ffn_layers"), std::string::npos);
  EXPECT_NE(error_of([] { run_config_from_json(json{{"train", {{"lr", "fast"}}}}); }).find("train.lr"), std::string::npos);
  EXPECT_NE(error_of([] { run_config_from_json(json{{"train", {{"seq_len", 999}}}}); }).find("train.seq_len"), std::string::npos);
  EXPECT_NE(error_of([] { run_config_from_json(json{{"trian", json::object()}}); }).find("trian"), std::string::npos);
  EXPECT_NE(error_of([] { run_config_from_json(json{{"train", {{"schedule", "step"}}}}); }).find("train.schedule"), std::string::npos);
}

TEST(Config, RoundTrip) {
  for (auto& p : preset_names()) {
    for (std::string r : {"SM+LN+G", "EReg(SM(t)+ScFuFFN)", "SM+SN-qkvo+ffn"}) {
      RunConfig c = build_run_config("", p, r, {});
      RunConfig d = run_config_from_json(to_json(c));
      EXPECT_TRUE(c == d) << p << " " << r;
    }
  }
}

TEST(Config, PresetsAndRungs) {
  auto g = build_run_config("", "gpt2-small", "", {});
  EXPECT_EQ(g.model.n_layer, 12);
  EXPECT_EQ(g.model.n_head, 12);
  EXPECT_EQ(g.model.d_model, 768);
  EXPECT_EQ(g.model.context, 128);
  EXPECT_EQ(g.model.vocab_size, 50257);
  EXPECT_EQ(build_run_config("", "gpt2-18l", "", {}).model.n_layer, 18);
  auto p = build_run_config("", "pythia-70m", "", {}).model;
  EXPECT_EQ(p.family, Family::pythia);
  EXPECT_EQ(p.n_layer, 6);
  EXPECT_EQ(p.d_model, 512);
  EXPECT_EQ(p.n_head, 8);
  EXPECT_TRUE(p.parallel_residual);
  EXPECT_FALSE(p.tie_embeddings);
  EXPECT_EQ(p.rotary_dims(), 16);

  auto sm = build_run_config("", "gpt2-small", "SM", {}).model;
  EXPECT_EQ(sm.norm, Norm::none);
  EXPECT_EQ(sm.ffn_act, Activation::identity);
  EXPECT_FALSE(sm.final_norm);
  auto smr = build_run_config("", "gpt2-small", "SM+R", {}).model;
  EXPECT_EQ(smr.ffn_act, Activation::relu);
  auto k6 = build_run_config("", "gpt2-small", "EReg(SM(t)+ScFuFFN)-k6", {}).model;
  EXPECT_EQ(k6.ffn_kind, FfnKind::fused);
  EXPECT_TRUE(k6.ffn_scaling);
  EXPECT_TRUE(k6.temperature);
  EXPECT_TRUE(k6.entropy_reg.enabled);
  EXPECT_EQ(k6.ffn_layers, 6);
  EXPECT_TRUE(k6.has_ffn(5));
  EXPECT_FALSE(k6.has_ffn(6));
  auto wn = build_run_config("", "tiny", "SM+WN-qkv+ffn", {}).model;
  EXPECT_TRUE(wn.weight_norm.qk && wn.weight_norm.v && wn.weight_norm.ffn);
  EXPECT_FALSE(wn.weight_norm.o);
  EXPECT_FALSE(wn.spectral_norm.any());
  auto sn = build_run_config("", "tiny", "SM+SN-ffn", {}).model;
  EXPECT_TRUE(sn.spectral_norm.ffn && !sn.spectral_norm.qk);
  EXPECT_NE(error_of([] { rung_json("SM+XY"); }).find("unknown rung"), std::string::npos);
  EXPECT_NE(error_of([] { preset_json("huge"); }).find("unknown preset"), std::string::npos);
  // -k6 on a 4-layer model is refused by name.
  EXPECT_NE(error_of([] { build_run_config("", "tiny", "SM+ScFuFFN-k6", {}); }).find("model.ffn_layers"), std::string::npos);
}

TEST(Config, SetOverrides) {
  auto c = build_run_config("", "tiny", "SM+LN+G",
                            {"model.norm=none", "train.lr=3e-4", "model.entropy_reg.lambda=1e-4",
                             "model.weight_norm=qk,ffn", "data.dir=/tmp/x", "train.schedule=cosine"});
  EXPECT_EQ(c.model.norm, Norm::none);
  EXPECT_DOUBLE_EQ(c.train.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.model.entropy_reg.lambda, 1e-4);
  EXPECT_TRUE(c.model.weight_norm.qk && c.model.weight_norm.ffn);
  EXPECT_EQ(c.data.dir, "/tmp/x");
  EXPECT_EQ(c.train.schedule, "cosine");
  EXPECT_NE(error_of([] { build_run_config("", "tiny", "", {"model.nrom=none"}); }).find("model.nrom"), std::string::npos);
  EXPECT_NE(error_of([] { build_run_config("", "tiny", "", {"novalue"}); }).find("novalue"), std::string::npos);
}

TEST(Config, FileIsBaseAndErrorsNameIt) {
  std::string path = testing::TempDir() + "aero_cfg_test.json";
  {
    std::ofstream f(path);
    f << R"({"model": {"n_layer": 2, "d_model": 64, "n_head": 2}, "train": {"steps": 7}})";
  }
  auto c = build_run_config(path, "", "SM+R", {"train.batch_size=3"});
  EXPECT_EQ(c.model.n_layer, 2);
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.train.batch_size, 3);
  EXPECT_EQ(c.model.ffn_act, Activation::relu);
  {
    std::ofstream f(path);
    f << R"({"model": {"n_layer": 2, "bias": "yes"}})";
  }
  std::string e = error_of([&] { build_run_config(path, "", "", {}); });
  EXPECT_NE(e.find(path), std::string::npos);
  EXPECT_NE(e.find("model.bias"), std::string::npos);
  {
    std::ofstream f(path);
    f << "{ not json";
  }
  EXPECT_NE(error_of([&] { build_run_config(path, "", "", {}); }).find(path), std::string::npos);
  std::remove(path.c_str());
}
