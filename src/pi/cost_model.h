// Cost executor of the private-inference graph: runs the SAME graph as the float and
// fixed-point executors on shapes only and charges each operator the online bytes (both
// directions), rounds and dealer key bytes of its 2PC protocol (docs/private_inference.md,
// "Protocols"), per operator. It is an analytic model of the protocols, not a socket
// measurement: the figures it prints say so ("source": "cost-model").
//
// Protocol family: masked wires with a dealer (SIGMA PoPETs 2024, Orca S&P 2024, Boyle et al.
// Eurocrypt 2021; LUTs as in Grotto CCS 2023). Every operator ends with one opening of its
// output, both parties sending their share of the masked value (2 x width bits per element,
// one round); depths of parallel branches are combined by max, not added.
// Key sizes as src/mpc implements them (docs/mpc.md): DCF(n, w) = 24 + n (16.25 + w/8) + w/8
// bytes, DPF(n, w) = 24 + 16.25 n + w/8; masks and mask products: width / 8 bytes per element
// (party 1; party 0 expands its shares from a seed); key_bytes_per_party reports party 1.
// Widths: a masked product is exact only mod its inputs' width (docs/mpc.md "Widths"), so a
// wire that feeds a product is kept at the product's width: act = 37 bits (|x| < 2^12 at
// scale 2^12, times weights at scale 2^12, K <= 4096), residual stream 50 bits (SIGMA's ring).
// Truncation: faithful (default; bit-exact with FixedExec: one round, DCF(s) key) or
// stochastic (src/mpc trunc_free: free, no round, +-1 ulp per truncation).
#pragma once
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "pi/fixed_point.h"
#include "pi/graph.h"

namespace aero::pi {

// Bit widths of the opened wires (two's complement incl. sign), chosen from the ranges the
// fixed-point simulation tracks (FixedExec::max_bits) with margin.
struct WireWidths {
  int res = 50;    // residual stream, scale f (SIGMA's ring)
  int act = 37;    // LN outputs, q/k/v, activations, attention outputs (feed products)
  int score = 40;  // q.k at scale 2f before the per-row constant
  int lut_out = 17;  // exp values (<= 1 at scale 16)
  int cmp = 20;      // stochastic mode: comparisons on a free-truncated, width-reduced input
};

struct OpCost {
  double elements = 0;      // output elements of the operator
  double online_bytes = 0;  // both directions together
  double rounds = 0;        // rounds charged (summed over instances)
  double key_bytes = 0;     // per party (the larger one)
  double gemm_macs = 0;     // integer multiply-adds per party (online)
  double fss_blocks = 0;    // AES blocks per party for FSS evaluation (online)
  int count = 0;            // instances
};

class CostExec {
 public:
  struct T {
    int rows = 0, cols = 0;
    double depth = 0;       // rounds on the critical path up to this wire
    bool pending = false;   // a matrix-product accumulator (scale 2f) not yet truncated
    int acc_width = 0;
  };
  CostExec(const FxSpec& spec, const WireWidths& w, bool reveal_logits = true, bool stochastic_trunc = false);

  T input(int rows, int cols) const { return T{rows, cols, 0, false, 0}; }
  T embed(const std::vector<int32_t>& ids, const PiModel& m);
  T layernorm(const T& x, const PiNorm& n, const char* tag);
  T linear(const T& x, const PiLinear& L, const char* tag);
  T activation(const T& x, model::Activation act, double slope);
  T rotary(const T& qkv, const PiModel& m);
  T attn_logits(const T& qkv, const PiBlock& b, int H);
  T attn_softmax_v(const T& z, const T& qkv, int H);
  T add(const T& a, const T& b, const char* tag);
  T residual(const T& xh, const T& f, double beta, double inv_alpha);
  T last_row(const T& x);
  T lm_head(const T& x, const PiModel& m);

  const std::map<std::string, OpCost>& ops() const { return ops_; }
  OpCost total() const;
  double rounds() const { return max_depth_; }

 private:
  // Charges one gate instance: `elems` outputs opened at `width` bits, `rounds`, key bytes per
  // element; returns the new depth.
  double charge(const std::string& op, double depth, double elems, double open_bits_per_elem,
                double rounds, double key_bytes_per_elem, double macs = 0, double fss_per_elem = 0);
  T settle(const T& x, int width, const char* why);  // truncation gate for a pending acc
  // Input width of a comparison DCF: full in faithful mode; reduced (SIGMA's trick: drop the
  // low bits by free stochastic truncation, the high bits by mod) in stochastic mode.
  int cw(int full) const { return stochastic_ ? std::min(full, w_.cmp) : full; }
  FxSpec s_;
  WireWidths w_;
  bool reveal_logits_;
  bool stochastic_;
  std::map<std::string, OpCost> ops_;
  double max_depth_ = 0;
  int shape_T_ = 0;
};

double dcf_key_bytes(int n, int l);
double dpf_key_bytes(int n, int l);

// SPEC 6 network profiles and latency = compute + bytes_per_direction / bandwidth +
// rounds x one-way delay.
struct NetProfile {
  const char* name;
  double gbit_per_s;
  double rtt_ms;
};
const std::vector<NetProfile>& net_profiles();
double latency_s(const NetProfile& p, double compute_s, double online_bytes_both, double rounds);

}  // namespace aero::pi
