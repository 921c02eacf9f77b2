// FLOPs and nonlinear-operator inventory against every FLOPs entry of the paper's tables
// (SPEC section 5), built from the project's presets and rungs.
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/flops.h"
#include "core/error.h"
#include "model/config.h"

using namespace aero::analysis;
using aero::model::build_run_config;
using aero::model::ModelConfig;

namespace {
ModelConfig cfg(const std::string& preset, const std::string& rung, std::vector<std::string> sets = {}) {
  return build_run_config("", preset, rung, sets).model;
}
// The paper prints billions with two decimals (14.50B) or one (0.9B).
void expect_billions(double flops, double paper, int decimals, const std::string& what) {
  double scale = std::pow(10.0, decimals);
  EXPECT_DOUBLE_EQ(std::round(flops / 1e9 * scale) / scale, paper) << what << ": " << flops;
}
}  // namespace

TEST(Flops, Gpt2L12T128) {
  auto base = compute_flops(cfg("gpt2-small", "SM+LN+G"), 128);
  expect_billions(base.ffn_flops, 14.50, 2, "FFN");
  expect_billions(base.attn_flops, 7.70, 2, "attention");
  EXPECT_EQ(format_gflops(base.ffn_flops), "14.50B");
  EXPECT_EQ(format_gflops(base.attn_flops), "7.70B");
  EXPECT_EQ(format_flops(base.attn_flops), "7.70B");
  EXPECT_EQ(format_flops(3.146e6), "3.15M");
  EXPECT_EQ(format_flops(512), "512");
  // exact closed forms: 12 x 16 x 128 x 768^2 and 12 x (8 x 128 x 768^2 + 3 x 128^2 x 768)
  EXPECT_DOUBLE_EQ(base.ffn_flops, 12.0 * 16 * 128 * 768 * 768);
  EXPECT_DOUBLE_EQ(base.attn_flops, 12.0 * (8.0 * 128 * 768 * 768 + 3.0 * 128 * 128 * 768));

  auto fused = compute_flops(cfg("gpt2-small", "SM+ScFuFFN"), 128);
  expect_billions(fused.ffn_flops, 1.81, 2, "fused FFN");
  expect_billions(fused.attn_flops, 7.70, 2, "attention (fused model)");
  EXPECT_DOUBLE_EQ(base.ffn_flops / fused.ffn_flops, 8.0);  // "8x fewer FFN FLOPs"

  auto pruned = compute_flops(cfg("gpt2-small", "SM+ScFuFFN-k6"), 128);
  expect_billions(pruned.ffn_flops, 0.9, 1, "fused FFN, k=6");
  EXPECT_EQ(pruned.ffn_layers, 6);
  auto ereg = compute_flops(cfg("gpt2-small", "EReg(SM(t)+ScFuFFN)-k6"), 128);
  expect_billions(ereg.ffn_flops, 0.9, 1, "EReg k=6");
  expect_billions(ereg.attn_flops, 7.7, 1, "EReg k=6 attention");

  // SM+LN+R and SM+ScFFN keep the standard FFN: 14.5B
  expect_billions(compute_flops(cfg("gpt2-small", "SM+LN+R"), 128).ffn_flops, 14.5, 1, "SM+LN+R");
  expect_billions(compute_flops(cfg("gpt2-small", "SM+ScFFN"), 128).ffn_flops, 14.5, 1, "SM+ScFFN");
}

TEST(Flops, Gpt2L12T256) {
  expect_billions(compute_flops(cfg("gpt2-small", "SM+LN+G"), 256).ffn_flops, 28.99, 2, "FFN");
  expect_billions(compute_flops(cfg("gpt2-small", "SM+ScFuFFN"), 256).ffn_flops, 3.62, 2, "fused");
  expect_billions(compute_flops(cfg("gpt2-small", "SM+LN+G"), 256).attn_flops, 16.31, 2, "attention");
  // the --context override and a config whose context is 256 agree
  auto viaset = compute_flops(cfg("gpt2-small", "SM+LN+G", {"model.context=256"}));
  EXPECT_EQ(viaset.T, 256);
  expect_billions(viaset.attn_flops, 16.31, 2, "attention via model.context");
}

TEST(Flops, Gpt2L18T128) {
  expect_billions(compute_flops(cfg("gpt2-18l", "SM+LN+G"), 128).ffn_flops, 21.74, 2, "FFN");
  expect_billions(compute_flops(cfg("gpt2-18l", "SM+ScFuFFN"), 128).ffn_flops, 2.72, 2, "fused");
  expect_billions(compute_flops(cfg("gpt2-18l", "SM+LN+G"), 128).attn_flops, 11.55, 2, "attention");
}

TEST(Flops, Gpt2L12T512) {
  expect_billions(compute_flops(cfg("gpt2-small", "SM+LN+G"), 512).ffn_flops, 57.98, 2, "FFN");
  expect_billions(compute_flops(cfg("gpt2-small", "SM+ScFuFFN"), 512).ffn_flops, 7.25, 2, "fused");
  expect_billions(compute_flops(cfg("gpt2-small", "SM+LN+G"), 512).attn_flops, 36.24, 2, "attention");
}

TEST(Flops, InventoryL12T128InThePapersNotation) {
  // The paper's counts list no final LayerNorm.
  auto r = compute_flops(cfg("gpt2-small", "SM+LN+G", {"model.final_norm=false"}), 128);
  EXPECT_EQ(inventory_string(r.inventory), "SM: 144 x R^{128x128}, LN: 24 x R^{128x768}, G: 12 x R^{128x3072}");
  // SPEC section 6 element counts: GELU 4.72M, LayerNorm 2.36M
  EXPECT_EQ(r.inventory[2].elements(), 12LL * 128 * 3072);
  EXPECT_NEAR(r.inventory[2].elements() / 1e6, 4.72, 0.005);
  EXPECT_NEAR(r.inventory[1].elements() / 1e6, 2.36, 0.005);
  // With the final LayerNorm on (the preset's default for LN models) it is counted.
  auto with_final = compute_flops(cfg("gpt2-small", "SM+LN+G"), 128);
  EXPECT_EQ(inventory_string(with_final.inventory),
            "SM: 144 x R^{128x128}, LN: 25 x R^{128x768}, G: 12 x R^{128x3072}");
  EXPECT_EQ(inventory_string(compute_flops(cfg("gpt2-small", "SM+LN+R"), 128).inventory),
            "SM: 144 x R^{128x128}, LN: 25 x R^{128x768}, R: 12 x R^{128x3072}");
  EXPECT_EQ(inventory_string(compute_flops(cfg("gpt2-small", "SM+R"), 128).inventory),
            "SM: 144 x R^{128x128}, R: 12 x R^{128x3072}");
  // The AERO model: softmax is the only nonlinearity.
  EXPECT_EQ(inventory_string(compute_flops(cfg("gpt2-small", "EReg(SM(t)+ScFuFFN)-k6"), 128).inventory),
            "SM: 144 x R^{128x128}");
  // Pruning removes activations of the deep layers.
  EXPECT_EQ(inventory_string(compute_flops(cfg("gpt2-small", "SM+LN+G", {"model.ffn_layers=6",
                                                                         "model.final_norm=false"}),
                                           128)
                                 .inventory),
            "SM: 144 x R^{128x128}, LN: 24 x R^{128x768}, G: 6 x R^{128x3072}");
}

TEST(Flops, CrossoverContext) {
  // FFN FLOPs dominate while T < 8/3 d: 2048 for d = 768.
  auto r = compute_flops(cfg("gpt2-small", "SM+LN+G"), 128);
  EXPECT_DOUBLE_EQ(r.crossover_context, 8.0 / 3.0 * 768);
  auto at = compute_flops(cfg("gpt2-small", "SM+LN+G"), 2048);
  EXPECT_NEAR(at.attn_flops / at.ffn_flops, 1.0, 1e-12);
  auto above = compute_flops(cfg("gpt2-small", "SM+LN+G"), 2049);
  EXPECT_GT(above.attn_flops, above.ffn_flops);
  // Fused FFN: attention dominates at every length.
  EXPECT_EQ(compute_flops(cfg("gpt2-small", "SM+ScFuFFN"), 128).crossover_context, 0.0);
}

TEST(Flops, PythiaAndHeads) {
  auto m = cfg("pythia-70m", "SM+LN+G", {"model.final_norm=false"});
  auto r = compute_flops(m, 128);
  // L=6, d=512: FFN 6 x 16 x 128 x 512^2, attention 6 x (8 x 128 x 512^2 + 3 x 128^2 x 512)
  EXPECT_DOUBLE_EQ(r.ffn_flops, 6.0 * 16 * 128 * 512 * 512);
  EXPECT_DOUBLE_EQ(r.attn_flops, 6.0 * (8.0 * 128 * 512 * 512 + 3.0 * 128 * 128 * 512));
  EXPECT_EQ(inventory_string(r.inventory), "SM: 48 x R^{128x128}, LN: 12 x R^{128x512}, G: 6 x R^{128x2048}");
  // Embedding / LM head: untied, reported separately, not in the totals.
  EXPECT_DOUBLE_EQ(r.lm_head_flops, 2.0 * 128 * 512 * m.vocab_size);
  EXPECT_DOUBLE_EQ(r.lm_head_last_flops, 2.0 * 512 * m.vocab_size);
  EXPECT_DOUBLE_EQ(r.total_flops, r.ffn_flops + r.attn_flops);
  bool rotary_note = false;
  for (auto& n : r.notes) rotary_note |= n.find("rotary") != std::string::npos;
  EXPECT_TRUE(rotary_note);
}

TEST(Flops, JsonHasTheNumbers) {
  auto j = to_json(compute_flops(cfg("gpt2-small", ""), 128));
  ASSERT_TRUE(j["ffn_flops"].is_number());
  ASSERT_TRUE(j["attn_flops"].is_number());
  EXPECT_DOUBLE_EQ(j["ffn_flops"].get<double>(), 12.0 * 16 * 128 * 768 * 768);
  EXPECT_EQ(j["nonlinear_ops"].size(), 3u);
  EXPECT_EQ(j["nonlinear_ops"][0]["symbol"], "SM");
  EXPECT_NE(format_report(compute_flops(cfg("gpt2-small", ""), 128)).find("14.50B"), std::string::npos);
}

TEST(Flops, BadContextIsAnError) {
  ModelConfig m;
  m.context = 0;
  EXPECT_THROW(compute_flops(m, 0), aero::Error);
}
