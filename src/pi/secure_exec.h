// 2PC executor of the private-inference graph on src/mpc's masked-wire gates (docs/mpc.md):
// ONE class in two modes, walked twice over the same graph, as the mpc design asks:
//   dealer mode  (mpc::Dealer*): wires carry masks r, each op calls <gate>_deal;
//   party mode   (mpc::Party*):  wires carry masked values x^ = x + r, each op calls <gate>_eval.
// Every operator reproduces FixedExec's integer definition exactly (faithful truncations), so
// the secure output equals the fixed-point simulation bit for bit.
//
// Operators implemented (PART of the graph, see docs/private_inference.md "Status"):
//   linear      matmul_w with the bias folded in as a constant-1 column; faithful trunc by f.
//               1 + 1 rounds; 2 w/8 + 2 w/8 bytes per output; keys: matmul_w + DCF(w).
//   relu        relu gate on the truncated wire: 1 round, 2 w/8 bytes, DCF(w-1, 2 payloads).
//   gelu        relu gate and, in parallel, the LUT index: faithful trunc to 2^-6 steps,
//               clamp to 9 signed bits by two DReLUs and two selects, 9-bit DPF table of
//               delta = ReLU - GELU; 5 rounds.
//   leaky relu  drelu, public slope product, faithful trunc, select: 3 rounds.
//   add         local (x^ + y^, r_x + r_y).
//   residual    FFN scaling: public constants (local), faithful trunc by f: 1 round.
//   rotary      public cos/sin (local), faithful trunc: 1 round.
//   attention   per head matmul_ss (Q K^T, full T x T), widen to 64 bits, public per-row
//               constant, faithful trunc; exact-max tournament (drelu + select per level) or
//               clipped; exp index (trunc, clamp by drelu/select), DPF table at 64 bits;
//               row sums (local); 1/sum by the normalized LUT; matmul_ss E V (64 bits);
//               (E V) x (1/sum) by mul; faithful trunc to 40 bits.
//   layernorm   widen to 64 bits; x^2 and (sum x)^2 by one mul; rsqrt by the normalized LUT;
//               (d x - sum x) x r by mul; public gain (local); faithful trunc; public bias.
//   normalized LUT (1/x, 1/sqrt x): 63 DReLUs [v >= 2^e] -> one-hot of the MSB; one mul per
//               e normalizes v to bit 63; faithful trunc to the mantissa; 14-bit DPF table on
//               (e, mantissa). 4 rounds.
//   embedding   the client inputs its one-hot rows; matmul_w with the masked table; the server
//               inputs its positions table. lm_head: matmul_w (tied table), trunc; revealed.
// Per-head products run one after another (H rounds; a batched matmul_ss would make it 1).
#pragma once
#include <string>
#include <vector>

#include "mpc/keys.h"
#include "mpc/party.h"
#include "pi/fixed_point.h"
#include "pi/graph.h"

namespace aero::pi {

struct SWire {
  int rows = 0, cols = 0;
  std::vector<mpc::u64> v;  // masks (dealer) or masked values (party), mod 2^width
};

class SecureExec {
 public:
  using T = SWire;
  static constexpr int kWidth = 40;  // ring width of every arithmetic wire (scale f)

  // Exactly one of dealer / party is non-null. model_seed: shared by dealer and server
  // (weight masks R_W = PRG(model_seed, tensor id)).
  SecureExec(mpc::Dealer* dealer, mpc::Party* party, const FxSpec& spec, mpc::Block model_seed);

  // Client's private input (rows x cols at scale f); x is ignored at the server / dealer.
  T input_client(const std::vector<double>& x, int rows, int cols);
  // Reveals a wire to the client (decoded at scale f); empty elsewhere.
  std::vector<double> output_client(const T& y);

  T linear(const T& x, const PiLinear& L, const char* tag);
  T activation(const T& x, model::Activation act, double slope);
  T add(const T& a, const T& b, const char* tag);
  T residual(const T& xh, const T& f, double beta, double inv_alpha);
  T rotary(const T& qkv, const PiModel& m);
  T attn_logits(const T& qkv, const PiBlock& b, int H);
  T attn_softmax_v(const T& z, const T& qkv, int H);
  T layernorm(const T& x, const PiNorm& n, const char* tag);
  T embed(const std::vector<int32_t>& ids, const PiModel& m);
  T last_row(const T& x);
  T lm_head(const T& x, const PiModel& m);
  // Secure argmax of a 1 x V row (first maximum on ties, like argmax_rows): a tournament of
  // drelu + select (value and index together) per level, ceil(log2 V) levels x 2 rounds; the
  // result is a 1 x 1 wire holding the index (reveal it with output_client).
  T argmax(const T& logits);

 private:
  bool dealer() const { return d_ != nullptr; }
  using V = std::vector<mpc::u64>;
  V trunc(const V& x, int shift, int in_w = kWidth, int out_w = kWidth);
  V drelu(const V& x, int w = kWidth);
  V select(const V& b, const V& x, const V& y, int w = kWidth);
  V mul(const V& a, const V& b, int w);
  V lut(const V& idx, int in_bits, int out_bits, const std::vector<int64_t>& table);
  V plus_const(const V& x, int64_t c, int w) const;  // x + public c
  V invpow(const V& v, const InvPowLut& lut, int out_w);  // normalized LUT on a 64-bit wire
  // Server-weight product X (M x K) W (K x N), W given row-major [K, N] at the right scale.
  V matmul_server(const V& x, size_t M, size_t K, size_t N, const std::vector<int64_t>& w_kn, int w);
  std::vector<mpc::u64> constant(size_t n, int64_t c) const;  // public constant wire
  mpc::Dealer* d_;
  mpc::Party* p_;
  FxSpec s_;
  mpc::Block seed_;
  uint64_t tensor_id_ = 0;
  GeluLut gelu_;
  ExpLut exp_;
  InvPowLut inv_, rsqrt_;
};

}  // namespace aero::pi
