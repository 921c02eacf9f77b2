// Fixed-point simulation against the float executor on random tiny models of every config
// family (the accuracy bound of docs/private_inference.md), and the gates against their
// real functions.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "pi/executors.h"

using namespace aero;
using namespace aero::pi;

namespace {

model::ModelConfig tiny(const std::string& rung, std::vector<std::string> sets = {}) {
  std::vector<std::string> s = {"model.n_layer=3", "model.n_head=2", "model.d_model=32",
                                "model.context=24", "model.vocab_size=97", "model.d_ff=128"};
  s.insert(s.end(), sets.begin(), sets.end());
  return model::build_run_config("", "tiny", rung, s).model;
}

struct Err {
  double max_abs = 0, rms_ref = 0, rel = 0;
};
Err compare(const std::vector<double>& a, const std::vector<double>& ref) {
  Err e;
  double ss = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    e.max_abs = std::max(e.max_abs, std::abs(a[k] - ref[k]));
    ss += ref[k] * ref[k];
  }
  e.rms_ref = std::sqrt(ss / double(a.size()));
  e.rel = e.max_abs / e.rms_ref;
  return e;
}

struct Case {
  const char* name;
  const char* rung;
  std::vector<std::string> sets;
};

const std::vector<Case> kCases = {
    {"SM+LN+G", "SM+LN+G", {}},
    {"SM+LN+R", "SM+LN+R", {}},
    {"SM+LN+LR", "SM+LN+LR", {}},
    {"SM+G", "SM+G", {}},
    {"SM+R", "SM+R", {}},
    {"SM+ScFFN", "SM+ScFFN", {}},
    {"SM+ScFuFFN", "SM+ScFuFFN", {}},
    {"SM(t)+ScFuFFN-k2", "SM(t)+ScFuFFN-k2", {}},
    {"SM(t)-offset", "SM(t)+ScFuFFN", {"model.temperature_param=offset"}},
    {"SM+WN-ffn", "SM+WN-ffn", {}},
    {"SM+SN-qkvo+ffn", "SM+SN-qkvo+ffn", {}},
    {"pythia SM+LN+G", "SM+LN+G", {"model.family=pythia", "model.rotary_pct=0.5"}},
    {"pythia SM+R", "SM+R", {"model.family=pythia", "model.rotary_pct=0.5"}},
};

}  // namespace

TEST(PiGates, GeluLutWithinBound) {
  FxSpec s;
  GeluLut lut(s);
  double worst = 0;
  for (double x = -8; x <= 8; x += 0.00137) {
    double ref = 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    double got = decode(lut.eval(encode(x, s.f), s), s.f);
    worst = std::max(worst, std::abs(got - ref));
  }
  EXPECT_LT(worst, 4.5e-3);  // stated bound: 0.5 * 2^-7 + 2^-12 + input rounding
}

TEST(PiGates, InvPowLutRelativeError) {
  InvPowLut inv(-1.0, 16, 20, 8), rs(-0.5, 24, 20, 8);
  Rng rng(3);
  for (int k = 0; k < 20000; ++k) {
    int64_t v = int64_t(1) + int64_t(rng.below(uint64_t(1) << (1 + rng.below(40))));
    double x = double(v) / 65536.0, ref = 1.0 / x;
    double got = double(inv.eval(v)) / (1 << 20);
    if (ref * (1 << 20) > 64) { EXPECT_NEAR(got / ref, 1.0, 2.0 / 512 + 1.0 / (ref * (1 << 20))); }
    double y = double(v) / double(1 << 24), rref = 1.0 / std::sqrt(y);
    double rgot = double(rs.eval(v)) / (1 << 20);
    if (rref * (1 << 20) > 64) { EXPECT_NEAR(rgot / rref, 1.0, 1.0 / 512 + 1.0 / (rref * (1 << 20))); }
  }
}

// Blocks scope (SIGMA's): embedded input -> L blocks. Bound: max |fixed - float| over the
// final hidden state <= 2% of its RMS (docs/private_inference.md, "Accuracy").
// Also with stochastic truncation (carries drawn by hash, as the engine's --trunc stochastic),
// with the products inside the lookups (FxSpec::lut_products: LayerNorm's and the softmax
// normalization's rounding by local share truncation, InvFold's 1/sum tables) and with the
// one-round exp (its index carries a stochastic carry too), apart and together (the default).
TEST(PiFixedSim, BlocksMatchFloatEveryFamily) {
  // faithful; stochastic without either; lut products with the two-round exp; the defaults
  for (int mode : {0, 1, 2, 3})
  for (auto variant : {SoftmaxVariant::exact_max, SoftmaxVariant::clipped}) {
    const bool stoch = mode > 0;
    for (const auto& c : kCases) {
      auto cfg = tiny(c.rung, c.sets);
      // The max-free variant is exact only while every logit stays below clip_hi (8): true
      // with LayerNorm, not for the growing residual stream of LN-free random models.
      if (variant == SoftmaxVariant::clipped && cfg.norm != model::Norm::layernorm) continue;
      auto m = PiModel::random(cfg, 11);
      Rng rng(5);
      int T = 20, d = cfg.d_model;
      std::vector<double> x0(size_t(T) * d);
      for (auto& v : x0) v = rng.normal();
      FloatExec fe;
      auto yf = blocks_forward(fe, m, fe.input(x0, T, d));
      FxSpec spec;
      spec.softmax = variant;
      spec.stochastic_trunc = stoch;
      spec.lut_products = mode >= 2 ? LutProducts::on : LutProducts::off;
      if (mode == 1 || mode == 2) spec.exp_rounds = 2;
      EXPECT_EQ(spec.exp_one_round(), mode == 3);
      EXPECT_EQ(spec.products_in_lookups(), mode >= 2);
      FixedExec xe(spec);
      auto yx = xe.output(blocks_forward(xe, m, xe.input(x0, T, d)));
      auto e = compare(yx, yf.v);
      EXPECT_LT(e.rel, 0.02) << c.name << " " << to_string(variant) << (stoch ? " stochastic" : "")
                             << (mode >= 2 ? " lut_products" : "") << (mode == 3 ? " one-round exp" : "")
                             << ": max abs " << e.max_abs
                             << " rms " << e.rms_ref;
      EXPECT_LE(xe.max_bits(), 50) << c.name;  // every wire fits SIGMA's 50-bit ring
      // The engine's narrower rings (docs/private_inference.md, "Width plan"): logits on
      // qk_bits - 32 bits with one spare bit for their differences, the scaled scores on the
      // qk_bits ring (default 60; the narrow plan's 52 for these random models too), and
      // (stochastic) the linears that read a LayerNorm on its 34-bit output ring with one
      // spare bit for the bounded sign extension.
      for (int qk : {FxSpec{}.qk_bits, 52}) {
        EXPECT_LE(xe.max_bits("attn.logits"), qk - 33) << c.name << " qk_bits " << qk;
        EXPECT_LE(xe.max_bits("attn.scores.acc"), qk - 1) << c.name << " qk_bits " << qk;
      }
      if (cfg.norm == model::Norm::layernorm) {
        for (const char* t : {"attn.qkv.acc", "ffn.fc.acc", "ffn.fused.acc"}) EXPECT_LE(xe.max_bits(t), 33) << c.name << " " << t;
        // LayerNorm's D: opened on 64 bits, its MSB searched in [lo_msb(eps'), 63).
        EXPECT_LE(xe.max_bits("ln.D"), 63) << c.name;
        EXPECT_GE(xe.max_bits("ln.D"), 2 + lo_msb(encode(double(d) * d * spec.ln_eps, 2 * spec.f))) << c.name;
      }
    }
  }
}

// Full scope: token ids -> logits of every position; next-token agreement and logit error.
TEST(PiFixedSim, FullScopeLogitsAndNextToken) {
  for (int mode : {0, 1, 2})
  for (const auto& c : kCases) {
    const bool stoch = mode > 0;
    auto cfg = tiny(c.rung, c.sets);
    auto m = PiModel::random(cfg, 12);
    Rng rng(9);
    std::vector<int32_t> ids(24);
    for (auto& t : ids) t = int32_t(rng.below(cfg.vocab_size));
    FloatExec fe;
    auto lf = full_forward(fe, m, ids, true);
    FxSpec spec;
    spec.stochastic_trunc = stoch;
    spec.lut_products = mode == 2 ? LutProducts::on : LutProducts::off;
    FixedExec xe(spec);
    auto lx = full_forward(xe, m, ids, true);
    auto e = compare(xe.output(lx), lf.v);
    EXPECT_LT(e.rel, 0.03) << c.name << (stoch ? " stochastic" : "") << (mode == 2 ? " lut_products" : "") << ": max abs " << e.max_abs << " rms "
                           << e.rms_ref;
    if (stoch) continue;  // the carries of a last-row run differ from the all-positions run
    // Last position only (what private inference computes) equals the all-positions row.
    FixedExec xe2;
    auto last = full_forward(xe2, m, ids, false);
    ASSERT_EQ(last.rows, 1);
    for (int v = 0; v < cfg.vocab_size; ++v) ASSERT_EQ(last.at(0, v), lx.at(lx.rows - 1, v)) << c.name;
  }
}

// LayerNorm affine folding (PiModel::fold_norms): the folded model (no LayerNorm gain/bias;
// they live in attn.qkv, the FFN's first linear and the LM head) computes the same float
// function as the unfolded one, for every family and every switch that changes what reads a
// LayerNorm output (parallel blocks, fused / pruned / absent FFNs, FFN scaling, untied head,
// no final norm, no biases).
TEST(PiFold, FoldedFloatEqualsUnfoldedFloatEveryFamily) {
  std::vector<Case> cases = kCases;
  const std::vector<Case> extra = {
      {"LN fused FFN", "SM+LN+G", {"model.ffn_kind=fused", "model.ffn_act=identity"}},
      {"LN pruned FFN", "SM+LN+G", {"model.ffn_layers=1"}},
      {"LN no FFN", "SM+LN+G", {"model.ffn_kind=none"}},
      {"LN FFN scaling", "SM+LN+G", {"model.ffn_scaling=true"}},
      {"LN no bias", "SM+LN+G", {"model.bias=false"}},
      {"LN untied head", "SM+LN+G", {"model.tie_embeddings=false"}},
      {"LN no final norm", "SM+LN+G", {"model.final_norm=false"}},
      {"pythia LN sequential", "SM+LN+G", {"model.family=pythia", "model.parallel_residual=false"}},
      {"pythia LN pruned", "SM+LN+G", {"model.family=pythia", "model.ffn_layers=2"}},
  };
  cases.insert(cases.end(), extra.begin(), extra.end());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto cfg = tiny(c.rung, c.sets);
    auto mu = PiModel::random(cfg, 13, /*fold=*/false);
    auto mf = PiModel::random(cfg, 13);
    ASSERT_TRUE(mf.norms_folded);
    for (const auto& b : mf.blocks) EXPECT_FALSE(b.ln1.affine() || b.ln2.affine());
    EXPECT_FALSE(mf.ln_f.affine());
    if (cfg.norm == model::Norm::layernorm) EXPECT_TRUE(mu.blocks[0].ln1.affine());
    Rng rng(6);
    const int T = 12, d = cfg.d_model;
    std::vector<double> x0(size_t(T) * d);
    for (auto& v : x0) v = rng.normal();
    std::vector<int32_t> ids(T);
    for (auto& t : ids) t = int32_t(rng.below(cfg.vocab_size));
    FloatExec fe;
    auto a = blocks_forward(fe, mu, fe.input(x0, T, d)).v, b = blocks_forward(fe, mf, fe.input(x0, T, d)).v;
    auto la = full_forward(fe, mu, ids, true).v, lb = full_forward(fe, mf, ids, true).v;
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(la.size(), lb.size());
    EXPECT_LT(compare(b, a).rel, 1e-10);
    EXPECT_LT(compare(lb, la).rel, 1e-10);
  }
}
