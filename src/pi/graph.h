// The private-inference model graph: ONE description of the forward pass, run by several
// executors (CrypTen's idea: one model graph, several backends):
//   FloatExec  - real arithmetic (double), the reference;
//   FixedExec  - fixed-point simulation, bit-compatible with the secure run (fixed_point.h);
//   SecureExec - the 2PC executor on the mpc primitives (secure_exec.h), in dealer, party or
//                count mode; count mode is the cost model (cost_model.h): exact per-operator
//                online bytes, rounds and key bytes with no cryptography.
// An executor E provides a tensor type E::T (a [rows, cols] matrix, one sequence) and the
// operators below; the graph never looks inside a tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pi/pi_model.h"

namespace aero::pi {

// Scope of a private-inference run (SPEC 6.2): SIGMA's (the blocks on an already embedded
// input, no final norm, no head) or full (embedding, blocks, final norm, LM head).
enum class Scope { blocks, full };
const char* to_string(Scope s);
Scope scope_from_string(const std::string& s);

template <class V>
struct Mat {
  int rows = 0, cols = 0;
  std::vector<V> v;
  Mat() = default;
  Mat(int r, int c, bool alloc = true) : rows(r), cols(c) {
    if (alloc) v.assign(size_t(r) * c, V{});
  }
  V& at(int r, int c) { return v[size_t(r) * cols + c]; }
  const V& at(int r, int c) const { return v[size_t(r) * cols + c]; }
  V* row(int r) { return v.data() + size_t(r) * cols; }
  const V* row(int r) const { return v.data() + size_t(r) * cols; }
};

// One transformer block: pre-LN sequential (GPT-2) or parallel (Pythia) residual, optional
// LayerNorms, FFN (standard with activation, fused, or pruned), FFN scaling.
template <class E>
typename E::T block_forward(E& ex, const PiModel& m, int l, const typename E::T& x) {
  const auto& c = m.cfg;
  const PiBlock& b = m.blocks[l];
  const bool ln = c.norm == model::Norm::layernorm;
  auto attention = [&](const typename E::T& h) {
    auto qkv = ex.linear(h, b.qkv, "attn.qkv");
    if (c.rotary_dims() > 0) qkv = ex.rotary(qkv, m);
    auto z = ex.attn_logits(qkv, b, c.n_head);
    auto o = ex.attn_softmax_v(z, qkv, b, c.n_head);
    return ex.linear(o, b.proj, "attn.proj");
  };
  auto ffn = [&](const typename E::T& h) {
    if (c.ffn_kind == model::FfnKind::fused) return ex.linear(h, b.fused, "ffn.fused");
    // An executor that defers ffn.fc's truncation to its reader (SecureExec) learns the reader.
    if constexpr (requires { ex.ffn_act_hint(c.ffn_act); }) ex.ffn_act_hint(c.ffn_act);
    auto u = ex.linear(h, b.fc, "ffn.fc");
    if (c.ffn_act != model::Activation::identity) u = ex.activation(u, c.ffn_act, b.slope);
    return ex.linear(u, b.fc_proj, "ffn.proj");
  };
  if (c.parallel_residual) {
    auto a = attention(ln ? ex.layernorm(x, b.ln1, "ln1") : x);
    auto xh = ex.add(x, a, "residual");
    if (!b.has_ffn) return xh;
    auto f = ffn(ln ? ex.layernorm(x, b.ln2, "ln2") : x);
    return ex.residual(xh, f, b.beta, b.inv_alpha);
  }
  auto a = attention(ln ? ex.layernorm(x, b.ln1, "ln1") : x);
  auto xh = ex.add(x, a, "residual");
  if (!b.has_ffn) return xh;
  auto f = ffn(ln ? ex.layernorm(xh, b.ln2, "ln2") : xh);
  return ex.residual(xh, f, b.beta, b.inv_alpha);
}

template <class E>
typename E::T blocks_forward(E& ex, const PiModel& m, typename E::T x) {
  for (int l = 0; l < m.cfg.n_layer; ++l) x = block_forward(ex, m, l, x);
  return x;
}

// Full scope: embedding of the client's token ids, blocks, final norm, LM head on the last
// position (all positions when `all_positions`, for perplexity under --pi-sim).
template <class E>
typename E::T full_forward(E& ex, const PiModel& m, const std::vector<int32_t>& ids, bool all_positions) {
  auto x = ex.embed(ids, m);
  x = blocks_forward(ex, m, x);
  if (!all_positions) x = ex.last_row(x);
  if (m.cfg.final_norm) x = ex.layernorm(x, m.ln_f, "ln_f");
  return ex.lm_head(x, m);
}

}  // namespace aero::pi
