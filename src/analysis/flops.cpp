#include "analysis/flops.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace aero::analysis {

using model::Activation;
using model::FfnKind;
using model::ModelConfig;

FlopsReport compute_flops(const ModelConfig& cfg, int T) {
  if (T <= 0) T = cfg.context;
  AERO_CHECK(T > 0, "flops: context must be positive (got ", T, ")");
  AERO_CHECK(cfg.n_layer > 0 && cfg.d_model > 0 && cfg.n_head > 0, "flops: model.n_layer, model.n_head and ",
             "model.d_model must be positive (got ", cfg.n_layer, ", ", cfg.n_head, ", ", cfg.d_model, ")");
  const double t = T, d = cfg.d_model, L = cfg.n_layer, V = cfg.vocab_size;
  FlopsReport r;
  r.T = T;
  r.n_layer = cfg.n_layer;
  r.ffn_kind = model::to_string(cfg.ffn_kind);
  for (int l = 0; l < cfg.n_layer; ++l) r.ffn_layers += cfg.has_ffn(l) ? 1 : 0;

  // Per-token FFN FLOPs: two d x d_ff products (standard) or one d x d product (fused).
  double ffn_per_token = 0;
  if (cfg.ffn_kind == FfnKind::standard) ffn_per_token = 2.0 * 2.0 * d * cfg.d_ff;
  if (cfg.ffn_kind == FfnKind::fused) ffn_per_token = 2.0 * d * d;
  r.ffn_flops_per_layer = ffn_per_token * t;
  r.ffn_flops = r.ffn_flops_per_layer * r.ffn_layers;

  r.attn_linear_flops_per_layer = 8.0 * t * d * d;
  r.attn_score_flops_per_layer = 3.0 * t * t * d;
  r.attn_flops_per_layer = r.attn_linear_flops_per_layer + r.attn_score_flops_per_layer;
  r.attn_flops = r.attn_flops_per_layer * L;
  r.total_flops = r.ffn_flops + r.attn_flops;

  r.embed_flops = 2.0 * t * V * d;
  r.lm_head_flops = 2.0 * t * d * V;
  r.lm_head_last_flops = 2.0 * d * V;

  // k f T = L (8 T d^2 + 3 T^2 d)  <=>  T = (k f - 8 L d^2) / (3 L d)
  double k = r.ffn_layers;
  r.crossover_context = std::max(0.0, (k * ffn_per_token - 8.0 * L * d * d) / (3.0 * L * d));

  // Nonlinear operators of one forward over T tokens.
  auto add = [&](const char* sym, const char* name, int64_t count, int64_t rows, int64_t cols) {
    if (count > 0) r.inventory.push_back({sym, name, count, rows, cols});
  };
  add("SM", "softmax", int64_t(cfg.n_layer) * cfg.n_head, T, T);
  int64_t ln = cfg.norm == model::Norm::layernorm ? 2 * int64_t(cfg.n_layer) : 0;
  add("LN", "layernorm", ln + (cfg.final_norm ? 1 : 0), T, cfg.d_model);
  if (cfg.ffn_kind == FfnKind::standard) {
    switch (cfg.ffn_act) {
      case Activation::gelu: add("G", "gelu", r.ffn_layers, T, cfg.d_ff); break;
      case Activation::relu: add("R", "relu", r.ffn_layers, T, cfg.d_ff); break;
      case Activation::leaky_relu:
      case Activation::learnable_leaky_relu: add("LR", "leaky_relu", r.ffn_layers, T, cfg.d_ff); break;
      case Activation::identity: break;
    }
  }

  if (cfg.final_norm) r.notes.push_back("LN count includes the final LayerNorm before the LM head");
  if (cfg.ffn_act == Activation::learnable_leaky_relu)
    r.notes.push_back("learnable leaky ReLU slopes are public constants at inference (LR)");
  if (cfg.ffn_scaling) r.notes.push_back("FFN scaling alpha, beta fold into public constants");
  if (cfg.temperature) r.notes.push_back("softmax temperatures fold into the attention scale");
  if (cfg.weight_norm.any() || cfg.spectral_norm.any())
    r.notes.push_back("weight / spectral normalization folds into the weights");
  if (cfg.family == model::Family::pythia)
    r.notes.push_back("rotary embedding is elementwise and not counted (parallel residual: same products)");
  if (cfg.ffn_layers >= 0 && cfg.ffn_kind != FfnKind::none)
    r.notes.push_back("FFN pruned: only the first " + std::to_string(r.ffn_layers) + " of " +
                      std::to_string(cfg.n_layer) + " layers have one");
  return r;
}

std::string inventory_string(const std::vector<NonlinearOp>& ops) {
  if (ops.empty()) return "none";
  std::ostringstream o;
  for (size_t i = 0; i < ops.size(); ++i)
    o << (i ? ", " : "") << ops[i].symbol << ": " << ops[i].count << " x R^{" << ops[i].rows << "x" << ops[i].cols
      << "}";
  return o.str();
}

std::string format_gflops(double flops) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fB", flops / 1e9);
  return buf;
}

std::string format_flops(double flops) {
  if (std::fabs(flops) < 0.1e9 && flops != 0) {
    char buf[32];
    if (std::fabs(flops) >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", flops / 1e6);
    else std::snprintf(buf, sizeof buf, "%.0f", flops);
    return buf;
  }
  return format_gflops(flops);
}

nlohmann::json to_json(const FlopsReport& r) {
  nlohmann::json inv = nlohmann::json::array();
  for (auto& op : r.inventory)
    inv.push_back({{"symbol", op.symbol}, {"op", op.name}, {"count", op.count}, {"rows", op.rows},
                   {"cols", op.cols}, {"elements", op.elements()}});
  return {{"context", r.T},
          {"n_layer", r.n_layer},
          {"ffn_layers", r.ffn_layers},
          {"ffn_kind", r.ffn_kind},
          {"ffn_flops", r.ffn_flops},
          {"ffn_flops_per_layer", r.ffn_flops_per_layer},
          {"attn_flops", r.attn_flops},
          {"attn_flops_per_layer", r.attn_flops_per_layer},
          {"attn_linear_flops_per_layer", r.attn_linear_flops_per_layer},
          {"attn_score_flops_per_layer", r.attn_score_flops_per_layer},
          {"total_flops", r.total_flops},
          {"embed_flops", r.embed_flops},
          {"lm_head_flops", r.lm_head_flops},
          {"lm_head_last_flops", r.lm_head_last_flops},
          {"crossover_context", r.crossover_context},
          {"nonlinear_ops", inv},
          {"inventory", inventory_string(r.inventory)},
          {"notes", r.notes}};
}

std::string format_report(const FlopsReport& r) {
  std::ostringstream o;
  char buf[160];
  auto row = [&](const char* what, double v, const std::string& extra = "") {
    std::snprintf(buf, sizeof buf, "  %-28s %12s  %s\n", what, format_flops(v).c_str(), extra.c_str());
    o << buf;
  };
  o << "FLOPs of one forward over T=" << r.T << " tokens (FLOPs = 2 x MACs; B = 1e9, M = 1e6)\n";
  row("FFN", r.ffn_flops,
      r.ffn_kind + ", " + std::to_string(r.ffn_layers) + " of " + std::to_string(r.n_layer) + " layers");
  row("attention", r.attn_flops,
      "8Td^2 " + format_flops(r.attn_linear_flops_per_layer * r.n_layer) + " + 3T^2d " +
          format_flops(r.attn_score_flops_per_layer * r.n_layer));
  row("FFN + attention", r.total_flops);
  row("embedding (one-hot x table)", r.embed_flops, "not in the totals");
  row("LM head, all positions", r.lm_head_flops, "not in the totals");
  row("LM head, last position", r.lm_head_last_flops, "not in the totals");
  if (r.crossover_context > 0) {
    std::snprintf(buf, sizeof buf, "%.0f", std::ceil(r.crossover_context - 1e-9));
    o << "attention FLOPs >= FFN FLOPs from T = " << buf << " (FFN dominates below)\n";
  } else {
    o << "attention FLOPs >= FFN FLOPs at every context length\n";
  }
  o << "nonlinear operators: " << inventory_string(r.inventory) << "\n";
  for (auto& op : r.inventory) {
    std::snprintf(buf, sizeof buf, "  %-3s %-11s %6lld x %lld x %lld = %lld elements\n", op.symbol.c_str(),
                  op.name.c_str(), (long long)op.count, (long long)op.rows, (long long)op.cols,
                  (long long)op.elements());
    o << buf;
  }
  for (auto& n : r.notes) o << "note: " << n << "\n";
  return o.str();
}

}  // namespace aero::analysis
