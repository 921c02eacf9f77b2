// The server's model as private inference sees it: effective weights with every training-time
// reparameterization folded into plain constants (weight norm g v/||v||, spectral norm
// W/sigma, learnable temperature t -> per-(head, position) score constants 1/(t sqrt(d_k)),
// FFN scaling alpha, beta, learnable leaky slopes), plus the public rotary tables.
// Loaded from an aero checkpoint (names of docs/config.md) or drawn at random for tests and
// cost runs. `shapes_only` models carry no weights (cost model of large shapes).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace aero {
struct SafeTensors;
}

namespace aero::pi {

struct PiLinear {
  int out = 0, in = 0;
  std::vector<double> w;  // [out, in] row-major (PyTorch layout)
  std::vector<double> b;  // [out] (empty: no bias)
};

struct PiNorm {
  std::vector<double> g, b;  // [d]
};

struct PiBlock {
  PiNorm ln1, ln2;
  PiLinear qkv, proj;
  bool has_ffn = false;
  PiLinear fc, fc_proj;  // standard FFN
  PiLinear fused;        // fused FFN
  double slope = 0;      // leaky slope (leaky_relu / learnable_leaky_relu)
  double beta = 1, inv_alpha = 1;  // FFN scaling: x_out = beta x_hat + (1/alpha) FFN
  std::vector<double> score_const;  // [H, T]: 1/(t[h,i] sqrt(d_k))
};

struct PiModel {
  model::ModelConfig cfg;
  bool shapes_only = false;
  std::vector<double> wte;      // [V, d]
  std::vector<double> wpe;      // [T, d] (gpt2)
  std::vector<double> lm_head;  // [V, d] (untied only; tied uses wte)
  PiNorm ln_f;
  std::vector<PiBlock> blocks;
  std::vector<double> rot_cos, rot_sin;  // [T, rotary_dims/2] (pythia)

  const std::vector<double>& head_weight() const { return cfg.tie_embeddings ? wte : lm_head; }

  static PiModel from_tensors(const model::ModelConfig& cfg, const SafeTensors& st);
  // Checkpoint with `__metadata__.aero_config` (docs/config.md).
  static PiModel load(const std::string& path);
  // Random model for tests / cost: weights ~ N(0, 1/in) so activations stay O(1) and every
  // nonlinearity sees a realistic range; gains 1 +- 0.1, biases +-0.1, temperatures around 1.
  static PiModel random(const model::ModelConfig& cfg, uint64_t seed);
  static SafeTensors random_tensors(const model::ModelConfig& cfg, uint64_t seed);
  // The public part of a checkpoint (what the client and the dealer need besides shapes): the
  // folded constants that the executor multiplies as public values (LayerNorm gains/biases,
  // temperatures, FFN scaling, leaky slopes) and the config. `public_model` rebuilds a model
  // from it with every secret tensor zero.
  static void export_public(const std::string& checkpoint, const std::string& out_path);
  static PiModel public_model(const std::string& public_path);
  static PiModel shapes(const model::ModelConfig& cfg);
};

}  // namespace aero::pi
