// Finite-difference gradient checks of the whole model in double precision, one tiny model
// (L2 H2 d8 T5 V11, batch 2, awkward d_ff) per switch combination that changes the math.
// Every trainable tensor is checked at a few random elements. Points where the loss is not
// smooth (ReLU kinks, the entropy band edges) are recognised by two step sizes disagreeing
// and skipped; a test fails if more than a few are skipped.
#include <gtest/gtest.h>

#include <cmath>

#include "core/blas.h"
#include "core/rng.h"
#include "model/model.h"

using namespace aero::model;
using nlohmann::json;

namespace {

ModelConfig tiny_config(const json& patch) {
  json j = {{"n_layer", 2}, {"n_head", 2}, {"d_model", 8}, {"context", 6}, {"vocab_size", 11},
            {"d_ff", 12}, {"init_std", 0.3}};
  for (auto& [k, v] : patch.items()) j[k] = v;
  return model_config_from_json(j);
}

// Moves every parameter away from its special initial value (unit gains, zero biases,
// thresholds, temperatures) so that every gradient path carries signal.
template <typename T>
void perturb(BasicModel<T>& m, uint64_t seed) {
  aero::Rng rng(seed);
  for (auto& p : m.params()) {
    if (!p.trainable) continue;
    bool special = p.name.find("temp") != std::string::npos || p.name.find("alpha") != std::string::npos ||
                   p.name.find("beta") != std::string::npos || p.name.find("slope") != std::string::npos ||
                   p.name.find("theta") != std::string::npos || p.name.find("weight_g") != std::string::npos ||
                   p.name.find("ln") != std::string::npos;
    for (size_t i = 0; i < p.size; i++) {
      double r = rng.uniform() * 2 - 1;
      if (p.name == "entropy_theta") p.data[i] = T(0.2 + 0.6 * rng.uniform());  // band edges vary
      else if (special) p.data[i] += T(0.3 * r);
      else p.data[i] += T(0.1 * r);
    }
  }
}

struct Batch {
  std::vector<int32_t> tokens, targets;
  int B, T;
};

Batch make_batch(int B, int T, int V, uint64_t seed) {
  aero::Rng rng(seed);
  Batch b{{}, {}, B, T};
  for (int i = 0; i < B * T; i++) {
    b.tokens.push_back(int32_t(rng.below(V)));
    b.targets.push_back(int32_t(rng.below(V)));
  }
  b.targets[1] = -1;  // an ignored target
  return b;
}

void gradcheck(const json& patch, int samples_per_tensor = 4) {
  SCOPED_TRACE(patch.dump());
  // One thread: these models are tiny (thread start-up would dominate); the threaded code
  // paths are compared against this one in test_model.cpp (FloatMatchesDouble).
  struct OneThread {
    int saved = aero::num_threads();
    OneThread() { aero::set_num_threads(1); }
    ~OneThread() { aero::set_num_threads(saved); }
  } one_thread;
  ModelConfig cfg = tiny_config(patch);
  BasicModel<double> m(cfg, 2, 5);
  m.init_weights(7);
  perturb(m, 11);
  m.set_spectral_norm_frozen(true);
  Batch bt = make_batch(2, 5, cfg.vocab_size, 3);
  auto loss = [&]() { return m.forward(bt.tokens.data(), bt.targets.data(), bt.B, bt.T, true).loss; };
  m.zero_grad();
  double l0 = loss();
  ASSERT_TRUE(std::isfinite(l0));
  if (cfg.entropy_reg.enabled) EXPECT_GT(m.forward(bt.tokens.data(), bt.targets.data(), 2, 5, true).ent_reg, 0.0);
  m.forward(bt.tokens.data(), bt.targets.data(), bt.B, bt.T, true);
  m.backward();
  ASSERT_EQ(m.find_nonfinite(), "");
  aero::Rng rng(5);
  int checked = 0, skipped = 0, tensors = 0;
  for (auto& p : m.params()) {
    if (!p.trainable) continue;
    tensors++;
    std::vector<double> grad(p.grad, p.grad + p.size);
    double gmax = 0;
    for (double g : grad) gmax = std::max(gmax, std::fabs(g));
    for (int s = 0; s < samples_per_tensor; s++) {
      size_t i = rng.below(p.size);
      double old = p.data[i];
      auto fd = [&](double h) {
        p.data[i] = old + h;
        double lp = loss();
        p.data[i] = old - h;
        double lm = loss();
        p.data[i] = old;
        return (lp - lm) / (2 * h);
      };
      double f1 = fd(1e-5), f2 = fd(5e-6);
      if (std::fabs(f1 - f2) > 1e-6 * (1 + std::fabs(f1))) {
        skipped++;
        continue;
      }
      checked++;
      double an = grad[i];
      EXPECT_NEAR(an, f1, 1e-7 + 1e-5 * std::max(std::fabs(f1), gmax))
          << p.name << "[" << i << "]";
    }
  }
  EXPECT_GT(checked, tensors * samples_per_tensor * 3 / 4);
  EXPECT_LE(skipped, 3);
}

}  // namespace

TEST(GradCheck, Gpt2LayerNormGelu) { gradcheck({{"norm", "layernorm"}, {"ffn_act", "gelu"}}); }
TEST(GradCheck, Gpt2LayerNormRelu) { gradcheck({{"ffn_act", "relu"}}); }
TEST(GradCheck, Gpt2LayerNormIdentity) { gradcheck({{"ffn_act", "identity"}}); }
TEST(GradCheck, NoNormGelu) { gradcheck({{"norm", "none"}, {"ffn_act", "gelu"}}); }
TEST(GradCheck, NoNormReluFinalNorm) { gradcheck({{"norm", "none"}, {"ffn_act", "relu"}, {"final_norm", true}}); }
TEST(GradCheck, SoftmaxOnly) { gradcheck({{"norm", "none"}, {"ffn_act", "identity"}}); }
TEST(GradCheck, GeluExact) {
  gradcheck({{"ffn_act", "gelu_exact"}});
  gradcheck({{"family", "pythia"}, {"ffn_act", "gelu_exact"}, {"rotary_pct", 0.5}});  // real Pythia
}
TEST(GradCheck, LeakyRelu) { gradcheck({{"ffn_act", "leaky_relu"}, {"leaky_slope", 0.2}}); }
TEST(GradCheck, LearnableLeakyPerLayer) {
  gradcheck({{"norm", "none"}, {"ffn_act", "learnable_leaky_relu"}, {"leaky_slope", 0.1}});
}
TEST(GradCheck, LearnableLeakyGlobal) {
  gradcheck({{"ffn_act", "learnable_leaky_relu"}, {"slope_scope", "global"}, {"leaky_slope", 0.1}});
}
TEST(GradCheck, FfnScaling) { gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_scaling", true}, {"ffn_alpha_init", 1.5}}); }
TEST(GradCheck, ScaledFusedFfn) {
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_scaling", true}, {"ffn_kind", "fused"}});
}
TEST(GradCheck, PrunedFfnAndNoFfn) {
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"}, {"ffn_layers", 1}, {"ffn_scaling", true}});
  gradcheck({{"ffn_kind", "none"}});
}
TEST(GradCheck, TemperatureExpEntropySum) {
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"}, {"ffn_scaling", true},
             {"temperature", true}, {"entropy_reg", {{"enabled", true}, {"lambda", 0.3}, {"gamma", 0.1}}}});
}
TEST(GradCheck, TemperatureDirectEntropyMean) {
  gradcheck({{"temperature", true}, {"temperature_param", "direct"},
             {"entropy_reg", {{"enabled", true}, {"lambda", 0.5}, {"gamma", 0.05}, {"reduction", "mean"}}}});
}
TEST(GradCheck, TemperatureOffset) { gradcheck({{"temperature", true}, {"temperature_param", "offset"}}); }
TEST(GradCheck, WeightNormGroups) {
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"weight_norm", {"qk"}}});
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"weight_norm", {"v", "o"}}});
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"weight_norm", {"qk", "v", "o", "ffn"}}});
}
TEST(GradCheck, SpectralNormGroups) {
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"spectral_norm", {"qk"}}});
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"spectral_norm", {"v", "ffn"}}});
  gradcheck({{"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"}, {"spectral_norm", {"o", "ffn"}}});
}
TEST(GradCheck, PythiaRotaryParallelUntied) {
  gradcheck({{"family", "pythia"}, {"rotary_pct", 0.5}});
  gradcheck({{"family", "pythia"}, {"rotary_pct", 1.0}, {"norm", "none"}, {"ffn_act", "identity"}, {"ffn_scaling", true}});
}
TEST(GradCheck, Gpt2ParallelUntiedNoBias) {
  gradcheck({{"parallel_residual", true}, {"tie_embeddings", false}, {"bias", false}});
}
TEST(GradCheck, PythiaFullAero) {
  gradcheck({{"family", "pythia"}, {"norm", "none"}, {"ffn_act", "identity"}, {"ffn_kind", "fused"},
             {"ffn_scaling", true}, {"temperature", true}, {"weight_norm", {"qk"}},
             {"entropy_reg", {{"enabled", true}, {"lambda", 0.3}, {"gamma", 0.1}}}});
}
