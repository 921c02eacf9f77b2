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

// Pythia-70M's block in small: rotary on half of each head's 12 dims (R = 6, an odd half),
// parallel attention + MLP residual, untied LM head, exact (erf) GELU, no position table.
inline ModelConfig cfg_pythia() {
  ModelConfig c = tiny_base();
  c.family = aero::model::Family::pythia;
  c.d_model = 24;
  c.n_head = 2;
  c.d_ff = 44;
  c.rotary_pct = 0.5;
  c.parallel_residual = true;
  c.tie_embeddings = false;
  c.ffn_act = aero::model::Activation::gelu_exact;
  return c;
}
// The AERO stack on pythia: full rotary, LN-free, FFN scaling over a standard FFN with a
// learnable leaky ReLU (one global slope), temperature and the regularizer, no biases.
inline ModelConfig cfg_pythia_aero() {
  ModelConfig c = cfg_pythia();
  c.rotary_pct = 1.0;
  c.norm = aero::model::Norm::none;
  c.final_norm = false;
  c.bias = false;
  c.ffn_act = aero::model::Activation::learnable_leaky_relu;
  c.slope_scope = aero::model::SlopeScope::global;
  c.leaky_slope = 0.2;
  c.ffn_scaling = true;
  c.ffn_alpha_init = 1.3;
  c.temperature = true;
  c.temperature_param = aero::model::TemperatureParam::offset;
  c.temperature_init = 0.1;
  c.entropy_reg.enabled = true;
  c.entropy_reg.lambda = 0.05;
  c.entropy_reg.gamma = 0.05;
  return c;
}
// gpt2 with the pythia-only switches elsewhere: bias-free, untied, parallel residual, learnable
// leaky ReLU per layer, FFN pruned to the first two of three layers.
inline ModelConfig cfg_nobias_untied() {
  ModelConfig c = tiny_base();
  c.n_layer = 3;
  c.bias = false;
  c.tie_embeddings = false;
  c.parallel_residual = true;
  c.ffn_act = aero::model::Activation::learnable_leaky_relu;
  c.slope_scope = aero::model::SlopeScope::per_layer;
  c.leaky_slope = 0.3;
  c.ffn_layers = 2;
  return c;
}
// Weight norm on q,k rows of qkv (v rows plain, their g entries without gradient), the
// attention output and the standard FFN; LN-free (GELU: see check_gradients on kinks).
inline ModelConfig cfg_wn() {
  ModelConfig c = tiny_base();
  c.norm = aero::model::Norm::none;
  c.final_norm = true;
  c.weight_norm.qk = true;
  c.weight_norm.o = true;
  c.weight_norm.ffn = true;
  return c;
}
// Spectral norm on q,k (v rows plain), the attention output and the fused FFN, LN-free, scaling.
inline ModelConfig cfg_sn() {
  ModelConfig c = tiny_base();
  c.norm = aero::model::Norm::none;
  c.final_norm = false;
  c.ffn_kind = aero::model::FfnKind::fused;
  c.ffn_act = aero::model::Activation::identity;
  c.ffn_scaling = true;
  c.spectral_norm.qk = true;
  c.spectral_norm.o = true;
  c.spectral_norm.ffn = true;
  return c;
}
// Spectral norm on v (q,k sub-matrices plain) and the standard FFN, weight norm on the
// attention output, with LayerNorm.
inline ModelConfig cfg_sn_v_ffn() {
  ModelConfig c = tiny_base();
  c.spectral_norm.v = true;
  c.spectral_norm.ffn = true;
  c.weight_norm.o = true;
  return c;
}

}  // namespace aero::cuda::test
