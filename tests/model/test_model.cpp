// Model behaviour beyond gradients: causal masking, float against double, parameter layout,
// head entropy, non-finite detection, spectral-norm power iteration, input validation.
#include <gtest/gtest.h>

#include <cmath>

#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/fast_math.h"
#include "model/layers.h"
#include "model/model.h"

using namespace aero::model;
using nlohmann::json;

namespace {

ModelConfig cfg_of(const json& patch) {
  json j = {{"n_layer", 2}, {"n_head", 3}, {"d_model", 24}, {"context", 19}, {"vocab_size", 37},
            {"d_ff", 40}, {"init_std", 0.2}};
  for (auto& [k, v] : patch.items()) j[k] = v;
  return model_config_from_json(j);
}

std::vector<int32_t> random_tokens(int n, int V, uint64_t seed) {
  aero::Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng.below(V));
  return t;
}

const json kVariants[] = {
    json::object(),
    {{"family", "pythia"}, {"rotary_pct", 0.5}},
    {{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"}, {"ffn_scaling", true},
     {"temperature", true}, {"entropy_reg", {{"enabled", true}}}},
    {{"norm", "none"}, {"ffn_act", "relu"}, {"spectral_norm", {"qk", "ffn"}}, {"weight_norm", {"o"}}},
};

}  // namespace

TEST(Model, CausalMasking) {
  for (const auto& v : kVariants) {
    SCOPED_TRACE(v.dump());
    ModelConfig c = cfg_of(v);
    Model m(c, 2, 17);
    m.init_weights(3);
    auto tok = random_tokens(2 * 17, c.vocab_size, 9);
    m.forward(tok.data(), nullptr, 2, 17, false);
    std::vector<float> before(m.logits(), m.logits() + 2 * 17 * c.vocab_size);
    const int t_change = 11;
    tok[17 + t_change] = (tok[17 + t_change] + 5) % c.vocab_size;  // batch row 1
    m.forward(tok.data(), nullptr, 2, 17, false);
    const float* after = m.logits();
    for (int b = 0; b < 2; b++)
      for (int t = 0; t < 17; t++) {
        float maxdiff = 0;
        for (int k = 0; k < c.vocab_size; k++) {
          size_t i = (size_t(b) * 17 + t) * c.vocab_size + k;
          maxdiff = std::max(maxdiff, std::fabs(before[i] - after[i]));
        }
        if (b == 0 || t < t_change) {
          EXPECT_LT(maxdiff, 1e-5f) << "b " << b << " t " << t;
        } else if (t == t_change) {
          EXPECT_GT(maxdiff, 1e-4f) << "the changed position must change";
        }
      }
    // probabilities: rows sum to 1, upper triangle exactly 0.
    const float* P = m.attn_probs(1);
    for (int bh = 0; bh < 2 * c.n_head; bh++)
      for (int i = 0; i < 17; i++) {
        double s = 0;
        for (int j = 0; j < 17; j++) {
          float p = P[(size_t(bh) * 17 + i) * 17 + j];
          if (j > i) {
            EXPECT_EQ(p, 0.0f);
          }
          s += p;
        }
        EXPECT_NEAR(s, 1.0, 1e-5);
      }
  }
}

// The float model (all threads) agrees with the double model (one thread) on random
// weights: logits, loss and every gradient.
TEST(Model, FloatMatchesDouble) {
  for (const auto& v : kVariants) {
    SCOPED_TRACE(v.dump());
    json pv = v;
    pv["context"] = 48;  // T = 45 spans two causal blocks
    ModelConfig c = cfg_of(pv);
    const int B = 3, T = 45;
    Model mf(c, B, 48);
    BasicModel<double> md(c, B, 48);
    md.init_weights(5);
    md.set_spectral_norm_frozen(true);
    mf.set_spectral_norm_frozen(true);
    ASSERT_EQ(mf.params().size(), md.params().size());
    for (size_t k = 0; k < md.params().size(); k++) {
      auto& pd = md.params()[k];
      auto& pf = mf.params()[k];
      ASSERT_EQ(pd.name, pf.name);
      for (size_t i = 0; i < pd.size; i++) pf.data[i] = float(pd.data[i]);
      for (size_t i = 0; i < pd.size; i++) pd.data[i] = double(pf.data[i]);  // same rounding
    }
    auto tok = random_tokens(B * T, c.vocab_size, 1), tgt = random_tokens(B * T, c.vocab_size, 2);
    int saved = aero::num_threads();
    aero::set_num_threads(1);
    md.zero_grad();
    auto sd = md.forward(tok.data(), tgt.data(), B, T, true);
    std::vector<double> ld(md.logits(), md.logits() + size_t(B) * T * c.vocab_size);
    md.backward();
    aero::set_num_threads(saved);
    // The float side runs every loop threaded, however small (no work threshold).
    long saved_min = omp_min_work;
    omp_min_work = 0;
    struct Restore {
      long v;
      ~Restore() { omp_min_work = v; }
    } restore{saved_min};
    mf.zero_grad();
    auto sf = mf.forward(tok.data(), tgt.data(), B, T, true);
    EXPECT_NEAR(sf.loss, sd.loss, 1e-5 * std::fabs(sd.loss));
    EXPECT_NEAR(sf.ent_reg, sd.ent_reg, 1e-4 * std::fabs(sd.ent_reg) + 1e-9);
    for (size_t i = 0; i < ld.size(); i++) ASSERT_NEAR(mf.logits()[i], ld[i], 1e-4 * (1 + std::fabs(ld[i])));
    mf.backward();
    for (size_t k = 0; k < md.params().size(); k++) {
      auto& pd = md.params()[k];
      auto& pf = mf.params()[k];
      if (!pd.grad) continue;
      double gmax = 0;
      for (size_t i = 0; i < pd.size; i++) gmax = std::max(gmax, std::fabs(pd.grad[i]));
      for (size_t i = 0; i < pd.size; i++)
        ASSERT_NEAR(pf.grad[i], pd.grad[i], 1e-4 * gmax + 1e-7) << pd.name << "[" << i << "]";
    }
  }
}

TEST(Model, ParameterLayoutFollowsDocs) {
  ModelConfig c = cfg_of({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"},
                          {"ffn_scaling", true}, {"temperature", true}, {"ffn_layers", 1},
                          {"weight_norm", {"qk"}}, {"spectral_norm", {"ffn"}},
                          {"entropy_reg", {{"enabled", true}}}});
  Model m(c, 1, 8);
  auto shape = [&](const std::string& n) { return m.param(n).shape; };
  EXPECT_EQ(shape("wte"), (std::vector<int64_t>{37, 24}));
  EXPECT_EQ(shape("wpe"), (std::vector<int64_t>{19, 24}));
  EXPECT_EQ(shape("blocks.0.attn.qkv.weight_g"), (std::vector<int64_t>{72}));
  EXPECT_EQ(shape("blocks.0.attn.qkv.weight_v"), (std::vector<int64_t>{72, 24}));
  EXPECT_EQ(shape("blocks.0.attn.temp"), (std::vector<int64_t>{3, 19}));
  EXPECT_EQ(shape("blocks.0.ffn.fused.weight"), (std::vector<int64_t>{24, 24}));
  EXPECT_EQ(shape("blocks.0.ffn.fused.sn_u"), (std::vector<int64_t>{1, 24}));
  EXPECT_FALSE(m.param("blocks.0.ffn.fused.sn_u").trainable);
  EXPECT_EQ(m.param("blocks.0.ffn.fused.sn_u").grad, nullptr);
  EXPECT_EQ(shape("blocks.0.ffn_scale.alpha"), (std::vector<int64_t>{1}));
  EXPECT_EQ(shape("entropy_theta"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m.find_param("blocks.1.ffn.fused.weight"), nullptr);  // pruned (k = 1)
  EXPECT_EQ(m.find_param("blocks.1.ffn_scale.alpha"), nullptr);
  EXPECT_EQ(m.find_param("ln_f.weight"), nullptr);                // norm none
  EXPECT_EQ(m.find_param("lm_head.weight"), nullptr);             // tied
  EXPECT_TRUE(m.param("wte").decay);
  EXPECT_TRUE(m.param("blocks.0.attn.qkv.weight_v").decay);
  EXPECT_FALSE(m.param("blocks.0.attn.qkv.weight_g").decay);
  EXPECT_FALSE(m.param("blocks.0.attn.temp").decay);
  EXPECT_FALSE(m.param("entropy_theta").decay);
  EXPECT_FALSE(m.param("blocks.0.attn.proj.bias").decay);
  std::string err;
  try {
    m.param("blocks.0.ln1.weight");
  } catch (const aero::Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("blocks.0.ln1.weight"), std::string::npos);
  // Initial values of the documented init.
  m.init_weights(1);
  EXPECT_FLOAT_EQ(m.param("entropy_theta").data[0], 0.5f);
  EXPECT_FLOAT_EQ(m.param("blocks.0.attn.temp").data[0], 0.0f);  // exp: s = ln 1
  auto t = m.temperature(0);
  EXPECT_FLOAT_EQ(t[5], 1.0f);
  // WN: g = ||v|| so the effective weight starts equal to v.
  auto w = m.effective_weight("blocks.0.attn.qkv");
  const float* v = m.param("blocks.0.attn.qkv.weight_v").data;
  for (int i = 0; i < 72 * 24; i++) ASSERT_NEAR(w[i], v[i], 1e-6f);
  size_t n = 0;
  for (auto& p : m.params()) n += p.trainable ? p.size : 0;
  EXPECT_EQ(m.num_parameters(), n);
}

TEST(Model, TemperatureParameterizationsStartAtOne) {
  for (const char* tp : {"exp", "direct", "offset"}) {
    ModelConfig c = cfg_of({{"temperature", true}, {"temperature_param", tp}});
    Model m(c, 1, 4);
    m.init_weights(1);
    float expect = std::string(tp) == "offset" ? 1.01f : 1.0f;
    EXPECT_NEAR(m.temperature(1)[7], expect, 1e-6f) << tp;
  }
}

// Uniform attention (all-zero queries) gives row entropy ln(i+1); the model's mean over rows
// must be their average.
TEST(Model, HeadEntropyOfUniformAttention) {
  ModelConfig c = cfg_of({{"norm", "none"}});
  Model m(c, 2, 9);
  m.init_weights(2);
  // Zero the query rows of layer 0 (and their bias): every score is 0.
  auto& w = m.param("blocks.0.attn.qkv.weight");
  std::fill(w.data, w.data + 24 * 24, 0.0f);
  auto& b = m.param("blocks.0.attn.qkv.bias");
  std::fill(b.data, b.data + 24, 0.0f);
  auto tok = random_tokens(18, c.vocab_size, 4);
  m.forward(tok.data(), nullptr, 2, 9, false);
  double expect = 0;
  for (int i = 0; i < 9; i++) expect += std::log(i + 1.0) * (1 - 1e-9 * (i + 1));  // ln(1/n + 1e-9) ~ -ln n
  expect /= 9;
  auto e = m.head_entropy();
  ASSERT_EQ(e.size(), 2u);
  for (int h = 0; h < 3; h++) EXPECT_NEAR(e[0][h], expect, 1e-5);
  for (int h = 0; h < 3; h++) EXPECT_LT(e[1][h], expect + 1e-6);  // never above uniform
}

TEST(Model, FindNonfiniteNamesLayerAndHead) {
  ModelConfig c = cfg_of({{"norm", "none"}, {"ffn_act", "identity"}, {"temperature", true},
                          {"temperature_param", "direct"}});
  Model m(c, 1, 6);
  m.init_weights(1);
  auto tok = random_tokens(6, c.vocab_size, 4), tgt = random_tokens(6, c.vocab_size, 5);
  m.forward(tok.data(), tgt.data(), 1, 6, true);
  EXPECT_EQ(m.find_nonfinite(), "");
  // A huge key weight in head 2 of layer 1 makes that head's scores overflow.
  auto& w = m.param("blocks.1.attn.qkv.weight");
  for (int r = 24 + 16; r < 24 + 24; r++)
    for (int i = 0; i < 24; i++) w.data[r * 24 + i] = 1e30f;
  m.forward(tok.data(), tgt.data(), 1, 6, true);
  std::string where = m.find_nonfinite();
  EXPECT_NE(where.find("layer 1 head 2"), std::string::npos) << where;
  // A zero temperature (direct parameterization) is named as such.
  m.init_weights(1);
  m.param("blocks.0.attn.temp").data[1 * 19 + 3] = 0.0f;
  m.forward(tok.data(), tgt.data(), 1, 6, true);
  where = m.find_nonfinite();
  EXPECT_NE(where.find("layer 0 head 1: softmax temperature"), std::string::npos) << where;
}

TEST(Model, RejectsBadInput) {
  ModelConfig c = cfg_of({});
  Model m(c, 2, 8);
  m.init_weights(1);
  std::vector<int32_t> tok(16, 1);
  tok[5] = 37;
  auto msg = [&](auto f) {
    try {
      f();
    } catch (const aero::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([&] { m.forward(tok.data(), nullptr, 2, 8, false); }).find("position 5"), std::string::npos);
  tok[5] = 0;
  EXPECT_NE(msg([&] { m.forward(tok.data(), nullptr, 3, 8, false); }).find("max_batch"), std::string::npos);
  EXPECT_NE(msg([&] { m.forward(tok.data(), nullptr, 1, 9, false); }).find("max_seq"), std::string::npos);
  m.forward(tok.data(), nullptr, 2, 8, false);
  EXPECT_NE(msg([&] { m.backward(); }).find("targets"), std::string::npos);
  EXPECT_NE(msg([&] { Model bad(c, 1, 20); }).find("context"), std::string::npos);
}

// One power iteration per training forward converges to the largest singular value.
TEST(Layers, SpectralNormPowerIteration) {
  const int h = 7, I = 5;
  aero::Rng rng(3);
  std::vector<double> W(h * I), weff(h * I), u(h), v(I);
  for (auto& x : W) x = rng.normal();
  for (auto& x : u) x = rng.normal();
  double sigma = 0;
  for (int it = 0; it < 200; it++) sigma = spectral_norm_forward(weff.data(), u.data(), v.data(), W.data(), h, I, true);
  // sigma_max^2 is the largest eigenvalue of W^T W: check ||W^T W v - sigma^2 v|| ~ 0.
  std::vector<double> WtWv(I, 0.0), Wv(h, 0.0);
  for (int r = 0; r < h; r++)
    for (int i = 0; i < I; i++) Wv[r] += W[r * I + i] * v[i];
  for (int r = 0; r < h; r++)
    for (int i = 0; i < I; i++) WtWv[i] += W[r * I + i] * Wv[r];
  for (int i = 0; i < I; i++) EXPECT_NEAR(WtWv[i], sigma * sigma * v[i], 1e-8);
  // The Frobenius norm bounds it from above, and the effective weight has norm 1.
  double fro = 0;
  for (double x : W) fro += x * x;
  EXPECT_LT(sigma, std::sqrt(fro));
  double s2 = spectral_norm_forward(weff.data(), u.data(), v.data(), W.data(), h, I, false);
  EXPECT_NEAR(s2, sigma, 1e-10);
}

// The batched per-head attention against a plain triple loop, awkward sizes.
TEST(Layers, AttentionMatchesNaive) {
  // T = 71 spans three causal blocks (32 + 32 + 7).
  const int B = 2, T = 71, H = 3, C = 15, D = 5;
  aero::Rng rng(8);
  std::vector<double> qkv(B * T * 3 * C), scale(H * 80);
  for (auto& x : qkv) x = rng.normal();
  for (auto& x : scale) x = 0.2 + rng.uniform();
  std::vector<double> out(B * T * C), probs(B * H * T * T);
  attention_forward<double>(out.data(), probs.data(), qkv.data(), scale.data(), 80, B, T, C, H, nullptr);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < T; i++) {
        std::vector<double> s(i + 1);
        double m = -1e300, z = 0;
        for (int j = 0; j <= i; j++) {
          double dot = 0;
          for (int d = 0; d < D; d++)
            dot += qkv[(b * T + i) * 3 * C + h * D + d] * qkv[(b * T + j) * 3 * C + C + h * D + d];
          s[j] = dot * scale[h * 80 + i];
          m = std::max(m, s[j]);
        }
        for (int j = 0; j <= i; j++) z += std::exp(s[j] - m);
        for (int d = 0; d < D; d++) {
          double y = 0;
          for (int j = 0; j <= i; j++)
            y += std::exp(s[j] - m) / z * qkv[(b * T + j) * 3 * C + 2 * C + h * D + d];
          EXPECT_NEAR(out[(b * T + i) * C + h * D + d], y, 1e-12);
        }
        for (int j = 0; j <= i; j++)
          EXPECT_NEAR(probs[((b * H + h) * T + i) * T + j], std::exp(s[j] - m) / z, 1e-12);
      }
}

// The vectorizable exp of the float model against std::exp, including the IEEE ends.
TEST(Layers, FastExp) {
  double worst = 0;
  for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
    double ref = std::exp(double(x));
    worst = std::max(worst, std::fabs(fast_expf(x) - ref) / ref);
  }
  EXPECT_LT(worst, 4e-7);
  EXPECT_TRUE(std::isnan(fast_expf(NAN)));
  EXPECT_EQ(fast_expf(INFINITY), INFINITY);
  EXPECT_EQ(fast_expf(-INFINITY), 0.0f);
  EXPECT_EQ(fast_expf(-200.0f), 0.0f);
  for (float u = -9.0f; u < 9.0f; u += 0.01f) ASSERT_NEAR(fast_tanhf(u), std::tanh(u), 2e-7f) << u;
}

// Training forwards advance the spectral-norm power iteration; evaluation forwards and frozen
// models leave u alone. After many steps sigma is the largest singular value of W.
TEST(Model, SpectralNormIteratesOnlyWhenTraining) {
  ModelConfig c = cfg_of({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"},
                          {"spectral_norm", {"ffn"}}});
  Model m(c, 1, 5);
  m.init_weights(4);
  auto tok = random_tokens(5, c.vocab_size, 1);
  auto& u = m.param("blocks.0.ffn.fused.sn_u");
  std::vector<float> u0(u.data, u.data + u.size);
  m.forward(tok.data(), nullptr, 1, 5, false);
  EXPECT_TRUE(std::equal(u0.begin(), u0.end(), u.data));
  m.set_spectral_norm_frozen(true);
  m.forward(tok.data(), nullptr, 1, 5, true);
  EXPECT_TRUE(std::equal(u0.begin(), u0.end(), u.data));
  m.set_spectral_norm_frozen(false);
  for (int i = 0; i < 100; i++) m.forward(tok.data(), nullptr, 1, 5, true);
  EXPECT_FALSE(std::equal(u0.begin(), u0.end(), u.data));
  // The effective weight then has spectral norm ~1: ||W_eff x|| <= ||x|| for random x, and
  // ||W_eff v|| ~ 1 along the converged direction is implied by u being a unit vector.
  auto w = m.effective_weight("blocks.0.ffn.fused");
  aero::Rng rng(2);
  for (int trial = 0; trial < 20; trial++) {
    std::vector<double> x(24);
    double xn = 0, yn = 0;
    for (auto& e : x) {
      e = rng.normal();
      xn += e * e;
    }
    for (int r = 0; r < 24; r++) {
      double y = 0;
      for (int i = 0; i < 24; i++) y += w[r * 24 + i] * x[i];
      yn += y * y;
    }
    EXPECT_LE(std::sqrt(yn), std::sqrt(xn) * (1 + 1e-4));
  }
}
