// Per-operator 2PC cost of the private-inference graph (see cost_model.h for the model and
// docs/private_inference.md for each protocol). Widths in bits, sizes in bytes.
#include "pi/cost_model.h"

#include <algorithm>
#include <cmath>

namespace aero::pi {

double dcf_key_bytes(int n, int w) { return 24.0 + n * (16.25 + w / 8.0) + w / 8.0; }
double dpf_key_bytes(int n, int w) { return 24.0 + 16.25 * n + w / 8.0; }

namespace {
int ceil_log2(double v) { return v <= 1 ? 0 : int(std::ceil(std::log2(v))); }
}  // namespace

CostExec::CostExec(const FxSpec& spec, const WireWidths& w, bool reveal_logits, bool stochastic_trunc)
    : s_(spec), w_(w), reveal_logits_(reveal_logits), stochastic_(stochastic_trunc) {}

double CostExec::charge(const std::string& op, double depth, double elems, double open_bits,
                        double rounds, double key_per_elem, double macs, double fss_per_elem) {
  auto& c = ops_[op];
  c.elements += elems;
  c.online_bytes += elems * open_bits / 8.0;
  c.rounds += rounds;
  c.key_bytes += elems * key_per_elem;
  c.gemm_macs += macs;
  c.fss_blocks += elems * fss_per_elem;
  c.count += 1;
  double d = depth + rounds;
  max_depth_ = std::max(max_depth_, d);
  return d;
}

// Exact truncation of an opened accumulator (truncate-reduce, Boyle et al. 2021 sec. 5: the
// carry of the low f bits is a DCF evaluated locally on the public masked value), then one
// opening of the truncated wire at `width`.
CostExec::T CostExec::settle(const T& x, int width, const char*) {
  if (!x.pending) return x;
  double e = double(x.rows) * x.cols;
  T y = x;
  y.pending = false;
  if (stochastic_) {  // trunc_free: x^ >> s, r >> s; no message, no key
    charge("truncation", x.depth, e, 0, 0, 0);
    return y;
  }
  y.depth = charge("truncation", x.depth, e, 2.0 * width, 1, dcf_key_bytes(s_.f, width) + width / 8.0, 0,
                   2.0 * s_.f);
  y.pending = false;
  return y;
}

// Matrix product with the server's masked-once weights (issue 5): local on the opened masked
// input; the accumulator (scale 2f) is opened once, masked, at out width + f bits.
CostExec::T CostExec::linear(const T& x0, const PiLinear& L, const char* tag) {
  T x = settle(x0, w_.act, "linear input");
  std::string t = tag;
  int out_w = (t == "attn.proj" || t == "ffn.proj" || t == "ffn.fused") ? w_.res : w_.act;
  int acc_w = out_w + s_.f;
  double e = double(x.rows) * L.out;
  T y{x.rows, L.out, 0, true, acc_w};
  y.depth = charge("linear", x.depth, e, 2.0 * acc_w, 1, 2.0 * acc_w / 8.0, 3.0 * x.rows * L.in * L.out);
  return y;
}

CostExec::T CostExec::add(const T& a, const T& b, const char*) {
  T x = settle(a, w_.res, "residual"), y = settle(b, w_.res, "residual");
  return T{x.rows, x.cols, std::max(x.depth, y.depth), false, 0};
}

CostExec::T CostExec::residual(const T& xh, const T& f, double beta, double inv_alpha) {
  T y = add(xh, f, "residual");
  if (beta == 1.0 && inv_alpha == 1.0) return y;
  // beta x_hat + f / alpha is a public combination of opened masked values: only the
  // truncation gate (local DCF) and the opening of its output.
  double e = double(y.rows) * y.cols;
  y.depth = charge("ffn_scaling", y.depth, e, 2.0 * w_.res, 1, dcf_key_bytes(s_.f, w_.res) + w_.res / 8.0, 0,
                   2.0 * s_.f);
  return y;
}

CostExec::T CostExec::rotary(const T& qkv0, const PiModel& m) {
  T qkv = settle(qkv0, w_.act, "rotary");
  double e = double(qkv.rows) * 2 * m.cfg.n_head * m.cfg.rotary_dims();
  qkv.depth = charge("rotary", qkv.depth, e, 2.0 * w_.act, 1, dcf_key_bytes(s_.rot_frac, w_.act) + w_.act / 8.0,
                     0, 2.0 * s_.rot_frac);
  return qkv;
}

// Scores: product of two masked matrices (dealer shares of r_Q r_K^T), causal pairs only,
// opened once at `score` bits.
CostExec::T CostExec::attn_logits(const T& qkv0, const PiBlock&, int H) {
  T qkv = settle(qkv0, w_.act, "scores");
  const double Tn = qkv.rows, P = Tn * (Tn + 1) / 2, dk = double(qkv.cols) / 3 / H;
  shape_T_ = qkv.rows;
  T z{int(H * Tn), int(Tn), 0, false, 0};
  z.depth = charge("attn.scores", qkv.depth, H * P, 2.0 * w_.score, 1, 2.0 * w_.score / 8.0, 3.0 * H * P * dk);
  return z;
}

CostExec::T CostExec::attn_softmax_v(const T& z, const T& qkv, int H) {
  const double Tn = shape_T_, P = Tn * (Tn + 1) / 2, d = double(qkv.cols) / 3, dk = d / H;
  const int eb = s_.exp_bits(), eo = w_.lut_out + (s_.softmax == SoftmaxVariant::clipped ? 8 : 0);
  double depth = z.depth;
  if (s_.softmax == SoftmaxVariant::exact_max) {
    // Row maxima by a tournament: per level a DCF comparison (local) and the selection of the
    // winner (dealer-assisted product, one opening); ceil(log2 T) levels.
    int levels = ceil_log2(Tn);
    depth = charge("softmax.max", depth, H * (P - Tn), 2.0 * w_.score, levels,
                   dcf_key_bytes(cw(w_.score), 1) + 2.0 * w_.score / 8.0, 0, 2.0 * cw(w_.score));
  }
  // exp: truncate-reduce of (m - z) (or H - z) to the LUT step, clip (DCF), open the index;
  // DPF lookup (full-domain evaluation), open exp value.
  int clips = s_.softmax == SoftmaxVariant::exact_max ? 1 : 2;
  depth = charge("softmax.exp", depth, H * P, 2.0 * (eb + eo), 2,
                 dcf_key_bytes(cw(w_.score - eb), eb) + clips * dcf_key_bytes(cw(w_.score), 1) + dpf_key_bytes(eb, eo) +
                     (eb + 2.0 * eo) / 8.0,
                 0, 2.0 * cw(w_.score) * (1 + clips) + std::ldexp(1.0, eb));
  // 1/sum per row by the normalized LUT: open the sum, one-hot of its MSB (w DCFs), open the
  // (exponent, mantissa) index, DPF lookup, open 1/sum.
  int ws = eo + ceil_log2(Tn) + 1, wi = s_.inv_frac() + 1, idx = s_.inv_mantissa + ceil_log2(ws);
  double rows = H * Tn;
  double d_recip = charge("softmax.recip", depth, rows, 2.0 * (ws + idx + wi), 3,
                          ws * dcf_key_bytes(ws, 1) + dpf_key_bytes(idx, wi) + (ws + idx + wi) / 8.0, 0,
                          2.0 * ws * ws + std::ldexp(1.0, idx));
  // E V (product of two masked matrices), in parallel with the reciprocal.
  int wev = eo + w_.act + ceil_log2(Tn);
  double d_ev = charge("softmax.ev", depth, Tn * d, 2.0 * wev, 1, 2.0 * wev / 8.0, 3.0 * H * P * dk);
  // (E V) x (1/sum): masked x masked (row broadcast), opened, then truncated to act.
  int wn = w_.act + s_.exp_frac() + s_.inv_frac();
  double dn = charge("softmax.normalize", std::max(d_recip, d_ev), Tn * d, 2.0 * wn, 1, 2.0 * wn / 8.0);
  T o{int(Tn), int(d), dn, true, wn};
  return settle(o, w_.act, "attention output");
}

// LayerNorm (executors.cpp): D = d sum x^2 - (sum x)^2 is degree 2 in the masked input (local
// with dealer shares), opened once per row; rsqrt by the normalized LUT (2 more rounds);
// (d x - sum x) * r * g: masked x masked, opened, truncated.
CostExec::T CostExec::layernorm(const T& x0, const PiNorm&, const char*) {
  T x = settle(x0, w_.res, "layernorm input");
  const double R = x.rows, d = x.cols;
  const int wD = 2 * s_.f + 2 * ceil_log2(d) + 16, idx = s_.inv_mantissa + ceil_log2(wD), wr = s_.rsqrt_out_frac + 2;
  double depth = charge("layernorm", x.depth, R, 2.0 * wD, 1, 2.0 * wD / 8.0);
  depth = charge("layernorm.rsqrt", depth, R, 2.0 * (idx + wr), 2,
                 wD * dcf_key_bytes(wD, 1) + dpf_key_bytes(idx, wr) + (idx + wr) / 8.0, 0,
                 2.0 * wD * wD + std::ldexp(1.0, idx));
  int wp = 2 * s_.f + s_.rsqrt_out_frac + 6;
  depth = charge("layernorm", depth, R * d, 2.0 * wp, 1, 2.0 * wp / 8.0, 3.0 * R * d);
  T y{x.rows, x.cols, depth, true, wp};
  return settle(y, w_.act, "layernorm output");
}

// Activations on the linear accumulator (the truncation is fused into the gate).
//  GELU (SIGMA's form): TR + clip of the accumulator to a signed 9-bit index (local DCFs),
//    open the index; ReLU by a DCF with the mask as payload, minus the DPF table; open output.
//  ReLU / leaky: sign and truncation carry by DCFs (local), their product by one 1-bit
//    opening, open output.
CostExec::T CostExec::activation(const T& x, model::Activation act, double) {
  double e = double(x.rows) * x.cols;
  int aw = x.pending ? x.acc_width : w_.act + s_.f;
  T y{x.rows, x.cols, x.depth, false, 0};
  if (act == model::Activation::gelu) {
    int b = s_.gelu_lut_bits;
    y.depth = charge("gelu", x.depth, e, 2.0 * (b + w_.act), 2,
                     dcf_key_bytes(cw(aw), w_.act) + 2 * dcf_key_bytes(cw(aw), 1) + dcf_key_bytes(s_.f, b) +
                         dpf_key_bytes(b, w_.act) + (b + 2.0 * w_.act) / 8.0,
                     0, 2.0 * cw(aw) * 3 + std::ldexp(1.0, b));
  } else if (act != model::Activation::identity) {
    int extra = act == model::Activation::relu ? 0 : 1;
    y.depth = charge(act == model::Activation::relu ? "relu" : "leaky_relu", x.depth, e, 2.0 * (1 + w_.act), 2,
                     (2 + extra) * dcf_key_bytes(cw(aw), w_.act) + dcf_key_bytes(s_.f, 1) + (1 + 2.0 * w_.act) / 8.0, 0,
                     2.0 * cw(aw) * (2 + extra));
  }
  return y;
}

CostExec::T CostExec::last_row(const T& x) {
  T y = x;
  y.rows = 1;
  return y;
}

// Embedding (full scope): the client's one-hot rows, additively masked mod 2^res, go to the
// server in one message (T x V x res bits, client -> server); the server multiplies them by
// the dealer-masked table it shares with the dealer (x R_W), the client holds the masked
// table W + R_W from model setup (x (W + R_W), local); dealer shares of r_x R_W remove the
// cross term. One more opening gives the masked embedded input. Never a secret x secret
// one-hot product, and no per-token table traffic.
CostExec::T CostExec::embed(const std::vector<int32_t>& ids, const PiModel& m) {
  const double Tn = double(ids.size()), V = m.cfg.vocab_size, d = m.cfg.d_model;
  double depth = charge("embedding", 0, Tn * V, double(w_.res), 1, 0, Tn * V * d);
  depth = charge("embedding", depth, Tn * d, 2.0 * w_.res, 1, 2.0 * w_.res / 8.0);
  T x{int(Tn), int(d), depth, false, 0};
  return x;
}

// LM head on the last position: masked weights (the tied table), accumulator shares; either
// the server's share goes to the client (logits revealed), or a secure argmax tournament over
// V (DCF comparison + selection of value and index per level) reveals only the next token.
CostExec::T CostExec::lm_head(const T& x0, const PiModel& m) {
  T x = settle(x0, w_.act, "lm head input");
  const double V = m.cfg.vocab_size, d = m.cfg.d_model, R = x.rows;
  int aw = w_.act + s_.f;
  T y{x.rows, int(V), 0, false, 0};
  if (reveal_logits_) {
    y.depth = charge("lm_head", x.depth, R * V, double(aw), 1, aw / 8.0, 3.0 * R * d * V);
  } else {
    double depth = charge("lm_head", x.depth, R * V, 2.0 * aw, 1, 2.0 * aw / 8.0, 3.0 * R * d * V);
    int levels = ceil_log2(V), wi = ceil_log2(V);
    depth = charge("argmax", depth, R * (V - 1), 2.0 * (aw + wi), levels,
                   dcf_key_bytes(cw(aw), 1) + 2.0 * (aw + wi) / 8.0, 0, 2.0 * cw(aw));
    y.depth = charge("argmax", depth, R, double(wi), 1, 0);
  }
  return y;
}

OpCost CostExec::total() const {
  OpCost t;
  for (auto& [k, c] : ops_) {
    t.elements += c.elements;
    t.online_bytes += c.online_bytes;
    t.key_bytes += c.key_bytes;
    t.gemm_macs += c.gemm_macs;
    t.fss_blocks += c.fss_blocks;
    t.count += c.count;
  }
  t.rounds = max_depth_;
  return t;
}

const std::vector<NetProfile>& net_profiles() {
  static const std::vector<NetProfile> p = {
      {"lan-10g", 10, 0.1}, {"3g", 3, 0.8}, {"1g", 1, 1.0}, {"wan-400m", 0.4, 8.0},
      {"wan-200m", 0.2, 40.0}, {"wan-100m-80ms", 0.1, 80.0}};
  return p;
}

// SPEC 6: T = T_compute + bytes_per_direction / bandwidth + rounds x one-way delay. The
// profiles' delays are read as round-trip times (SPEC: "10 Gbit/s 0.1 ms RTT"), so the paper's
// WAN "100 Mbit/s 80 ms" has a 40 ms one-way delay.
double latency_s(const NetProfile& p, double compute_s, double online_bytes_both, double rounds) {
  double per_dir = online_bytes_both / 2.0;
  return compute_s + per_dir * 8.0 / (p.gbit_per_s * 1e9) + rounds * (p.rtt_ms / 2.0) / 1e3;
}

}  // namespace aero::pi
