// FLOPs and the nonlinear-operator inventory of a model configuration, in the paper's
// convention (SPEC section 5): FLOPs = 2 x MACs of the matrix products of one forward pass
// over T tokens; per layer FFN 4 T d d_ff (= 16 T d^2 for d_ff = 4d), fused FFN 2 T d^2,
// attention 8 T d^2 (QKV and output projections) + 3 T^2 d (scores and probability x V, as
// the paper counts them). Embedding and LM head are reported separately and are not part of
// the FFN / attention totals. Pruned FFNs (ffn_layers = k) count only the first k layers.
// Elementwise work (biases, residual adds, rotary, normalisation, activations) is not FLOPs
// here: the nonlinear operators are listed in the inventory instead, which is what private
// inference pays for.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace aero::analysis {

// One kind of nonlinear operator: `count` applications, each on a rows x cols matrix.
// symbol in the paper's notation: SM softmax, LN LayerNorm, G GELU, R ReLU, LR leaky ReLU.
struct NonlinearOp {
  std::string symbol, name;
  int64_t count = 0, rows = 0, cols = 0;
  int64_t elements() const { return count * rows * cols; }
};

struct FlopsReport {
  int T = 0;              // tokens in the forward pass (context)
  int n_layer = 0, ffn_layers = 0;  // layers, layers that have an FFN
  std::string ffn_kind;   // standard | fused | none
  double ffn_flops_per_layer = 0, ffn_flops = 0;
  double attn_linear_flops_per_layer = 0;  // 8 T d^2
  double attn_score_flops_per_layer = 0;   // 3 T^2 d
  double attn_flops_per_layer = 0, attn_flops = 0;
  double total_flops = 0;  // ffn + attention (embedding and LM head excluded)
  // Embedding as a one-hot x table product, 2 T V d (what a secure evaluation of a secret
  // token id costs; a plaintext lookup costs nothing). Positions add no products.
  double embed_flops = 0;
  double lm_head_flops = 0;       // 2 T d V: logits at every position
  double lm_head_last_flops = 0;  // 2 d V: logits of the last position (next-token PI)
  // Smallest context at which attention FLOPs reach the FFN FLOPs (FFN FLOPs dominate below
  // it): (k f - 8 L d^2) / (3 L d) with f the per-token FFN FLOPs; 0 when attention already
  // dominates at every length (fused or no FFN).
  double crossover_context = 0;
  std::vector<NonlinearOp> inventory;
  std::vector<std::string> notes;  // e.g. what folds into public constants at inference
};

// T <= 0: the model's context.
FlopsReport compute_flops(const model::ModelConfig& cfg, int T = 0);
// "SM: 144 x R^{128x128}, LN: 24 x R^{128x768}, G: 12 x R^{128x3072}" ("none" if empty).
std::string inventory_string(const std::vector<NonlinearOp>& ops);
// Billions with two decimals, as in the paper's tables: 14495514624 -> "14.50B".
std::string format_gflops(double flops);
// format_gflops for 0.1B and more, else millions ("3.15M") or a plain count.
std::string format_flops(double flops);
nlohmann::json to_json(const FlopsReport& r);
// A human-readable table of the report (what `aero flops` prints without --json).
std::string format_report(const FlopsReport& r);

}  // namespace aero::analysis
