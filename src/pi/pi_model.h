// The server's model as private inference sees it: effective weights with every training-time
// reparameterization folded into plain constants (weight norm g v/||v||, spectral norm
// W/sigma, learnable temperature t -> per-(head, position) score constants 1/(t sqrt(d_k)),
// FFN scaling alpha, beta, learnable leaky slopes), plus the public rotary tables.
// Loaded from an aero checkpoint (names of docs/config.md) or drawn at random for tests and
// cost runs. `shapes_only` models carry no weights (cost model of large shapes).
//
// LayerNorm affine folding (`fold_norms`, done by from_tensors / random unless asked not to):
// every LayerNorm output of the graph (graph.h) feeds exactly one linear map (ln1 -> attn.qkv,
// ln2 -> ffn.fc or ffn.fused, ln_f -> the LM head; in Pythia's parallel block ln1 and ln2 both
// read x but still feed only attn.qkv and the FFN's first linear), so
//   (x_hat g + beta) W^T + b = x_hat (diag(g) W^T) + (beta W^T + b)
// moves the gain and bias into that linear's private weights and bias, and the LayerNorm left
// in the graph is the bare normalization x_hat (PiNorm with empty g, b). The LM head then is its
// own server matrix diag(g) W_head^T with bias beta W_head^T (`lm_head`, `lm_head_bias`), also
// for tied embeddings. Blocks without an FFN (pruned) never compute LN2: its parameters are
// dropped. Result: no LayerNorm parameter is a public constant of the secure run.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
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
  std::vector<double> g, b;  // [d]; both empty: no affine (folded into the consumer)
  bool affine() const { return !g.empty(); }
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
  // Clipped (max-free) softmax: the public per-head clip constant (logits above it are
  // clipped), calibrated on training data by `aero pi calibrate` and stored in the
  // checkpoint's metadata (kSoftmaxClipKey); empty: FxSpec::clip_hi for every head.
  std::vector<double> softmax_clip;  // [H]
  double clip_hi(int h, double fallback) const { return softmax_clip.empty() ? fallback : softmax_clip[size_t(h)]; }
};

struct PiModel {
  model::ModelConfig cfg;
  bool shapes_only = false;
  std::vector<double> wte;      // [V, d]
  std::vector<double> wpe;      // [T, d] (gpt2)
  std::vector<double> lm_head;  // [V, d] untied, or the folded head (also when tied); empty: wte
  std::vector<double> lm_head_bias;  // [V] beta_f W_head^T after folding the final norm (else empty)
  PiNorm ln_f;
  bool norms_folded = false;  // fold_norms() ran: no PiNorm has an affine part
  std::vector<PiBlock> blocks;
  std::vector<double> rot_cos, rot_sin;  // [T, rotary_dims/2] (pythia)

  const std::vector<double>& head_weight() const { return lm_head.empty() ? wte : lm_head; }

  // Folds every LayerNorm gain/bias into the private linear map that consumes it (see the
  // header comment); idempotent. Float outputs are unchanged up to rounding.
  void fold_norms();
  // The values the client and the dealer use as public constants of the secure run (what
  // SecureExec multiplies or adds locally as plain numbers), by name: score constants, FFN
  // scaling, leaky slopes, rotary tables, and the LayerNorm gains/biases of an unfolded model.
  std::vector<std::pair<std::string, std::vector<double>>> public_constants() const;

  // fold = false keeps the LayerNorm affine parameters in the PiNorms (reference for tests;
  // the secure run then treats them as public constants).
  // Also reads the clipped softmax's per-head clip constants from st's metadata
  // (kSoftmaxClipKey, written by `aero pi calibrate`; pi_calib.h) when present.
  static PiModel from_tensors(const model::ModelConfig& cfg, const SafeTensors& st, bool fold = true);
  static constexpr const char* kSoftmaxClipKey = "aero_pi_softmax_clip";
  // Checkpoint with `__metadata__.aero_config` (docs/config.md).
  static PiModel load(const std::string& path);
  // Random model for tests / cost: weights ~ N(0, 1/in) so activations stay O(1) and every
  // nonlinearity sees a realistic range; gains 1 +- 0.1, biases +-0.1, temperatures around 1.
  static PiModel random(const model::ModelConfig& cfg, uint64_t seed, bool fold = true);
  static SafeTensors random_tensors(const model::ModelConfig& cfg, uint64_t seed);
  // The public part of a checkpoint (what the client and the dealer need besides shapes): the
  // folded constants that the executor multiplies as public values (temperatures, FFN
  // scaling, leaky slopes; NOT the LayerNorm gains/biases, which are folded into secret
  // weights) and the config. `public_model` rebuilds a model from it with every secret tensor
  // zero (LayerNorm parameters included).
  static bool is_public_tensor(const std::string& name);
  static SafeTensors public_tensors(const SafeTensors& checkpoint);
  static void export_public(const std::string& checkpoint, const std::string& out_path);
  static PiModel public_model(const std::string& public_path);
  static PiModel public_model(const model::ModelConfig& cfg, const SafeTensors& pub);
  static PiModel shapes(const model::ModelConfig& cfg);
};

}  // namespace aero::pi
