// Tiny model configurations of the ladder rungs shared by the GPU tests and the CPU cross-check
// of the test oracle (tests/cuda/test_reference_vs_cpu_model.cpp).
#pragma once
#include "model/config.h"

namespace aero::cuda::test {
using aero::model::ModelConfig;

inline ModelConfig tiny_base() {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  c.context = 16;
  c.vocab_size = 37;
  c.d_ff = 40;
  c.init_std = 0.2;
  return c;
}
// SM+LN+G (GPT-2 baseline)
inline ModelConfig cfg_baseline() { return tiny_base(); }
// EReg(SM(t)+ScFuFFN): no LN, fused d x d FFN without activation, FFN scaling, learnable
// temperature (exp), entropy regularizer (sum)
inline ModelConfig cfg_aero() {
  ModelConfig c = tiny_base();
  c.norm = aero::model::Norm::none;
  c.final_norm = false;
  c.ffn_kind = aero::model::FfnKind::fused;
  c.ffn_act = aero::model::Activation::identity;
  c.ffn_scaling = true;
  c.ffn_alpha_init = 1.5;
  c.ffn_beta_init = 0.8;
  c.temperature = true;
  c.temperature_init = 1.2;
  c.entropy_reg.enabled = true;
  c.entropy_reg.lambda = 0.05;  // large, so that its gradient is visible in the check
  c.entropy_reg.gamma = 0.05;
  c.entropy_reg.theta_init = 0.35;
  return c;
}
// Other switches: LN-free with a final LN, leaky ReLU, FFN pruned to the first layer, direct
// temperature, mean-reduced regularizer, FFN scaling over a standard FFN.
inline ModelConfig cfg_mixed() {
  ModelConfig c = tiny_base();
  c.n_layer = 3;
  c.norm = aero::model::Norm::none;
  c.final_norm = true;
  c.ffn_act = aero::model::Activation::leaky_relu;
  c.leaky_slope = 0.1;
  c.ffn_layers = 1;
  c.ffn_scaling = true;
  c.ffn_alpha_init = 0.9;
  c.temperature = true;
  c.temperature_param = aero::model::TemperatureParam::direct;
  c.temperature_init = 0.9;
  c.entropy_reg.enabled = true;
  c.entropy_reg.lambda = 0.5;
  c.entropy_reg.gamma = 0.05;
  c.entropy_reg.reduction = aero::model::EntropyReduction::mean;
  return c;
}

}  // namespace aero::cuda::test
