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
// Not yet: layernorm, rotary, attention (scores, softmax, E V), embedding, LM head.
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

 private:
  bool dealer() const { return d_ != nullptr; }
  std::vector<mpc::u64> trunc(const std::vector<mpc::u64>& x, int shift);
  std::vector<mpc::u64> drelu(const std::vector<mpc::u64>& x);
  std::vector<mpc::u64> select(const std::vector<mpc::u64>& b, const std::vector<mpc::u64>& x,
                               const std::vector<mpc::u64>& y);
  std::vector<mpc::u64> constant(size_t n, int64_t c) const;  // public constant wire
  mpc::Dealer* d_;
  mpc::Party* p_;
  FxSpec s_;
  mpc::Block seed_;
  uint64_t tensor_id_ = 0;
  GeluLut gelu_;
};

}  // namespace aero::pi
