// 2PC executor of the private-inference graph on src/mpc's masked-wire gates (docs/mpc.md):
// ONE class in two modes, walked twice over the same graph, as the mpc design asks:
//   dealer mode  (mpc::Dealer*): wires carry masks r, each op calls <gate>_deal;
//   party mode   (mpc::Party*):  wires carry masked values x^ = x + r, each op calls <gate>_eval.
//   count mode   (GateCounter*): wires carry zeros, each gate charges its exact key bytes and
//                openings (the cost model, cost_model.h: same decomposition, no cryptography).
// Every operator reproduces FixedExec's integer definition exactly (faithful truncations), so
// the secure output equals the fixed-point simulation bit for bit. With
// FxSpec::stochastic_trunc the truncations of values drop their carry DCF (floor + a carry
// drawn from the mask, +-1 ulp; free when they narrow the wire) and the output stays within
// the simulation's stated bounds instead (table indices stay floors, but for the one-round exp's).
//
// Wire widths (SWire::w), the width plan (docs/private_inference.md): the residual stream, V and
// the E V / normalization products run at 64 bits (the truncation that ends the preceding
// linear layer widens in the same round), Q and K and the scores' product at FxSpec::qk_bits
// (60; 52 in the narrow plan; SWire::qk_w), logits at qk_bits - 32 (score_width(): the
// scores' shift by f + c_frac; |z| < 16384, narrow |z| < 64 assumed), activations that feed
// server-weight products at 40 bits (kWidth), the FFN activation's input at 28 bits
// (kActWidth), a stochastic LayerNorm output at 34 (its truncation free; the next linear
// multiplies on that ring, |y| < 256 assumed), LUT indices at their own 6-14 bits (comparisons and clamps compute
// the index mod 2^bits only). Narrowing is free. An FSS gate's output (LUT, DCF) can have any
// width, a free truncate-reduce keeps the headroom (ring minus scale), an opening resets it.
//
// Sign extension (a truncation whose output is wider than its input minus the shift) uses
// the bounded rule of src/mpc/truncation.h (|value| < 2^(width-2), one spare bit: no n-bit
// DCF): the engine's range assumption is one bit tighter than "the value fits its wire".
//
// Rounds: independent gates of one operator share one opening (mpc::open_many), e.g. GELU's
// ReLU, truncation and both clamp comparisons. Per operator (rounds):
//   linear      matmul_w (bias = constant-1 column) on 40 bits (on the input's 34 bits after
//               a stochastic LayerNorm), trunc (widening to 64 where the output feeds the
//               residual stream or V, to qk_bits for Q and K, one round for the three).  2
//               narrow (qk_bits 52), stochastic attn.qkv on a 64-bit input (LN-free): [W_Q W_K] on 64 bits and
//               W_V on 40 in one opening, Q/K by free truncate-reduce, V's truncation in the
//               scores' round.                                                           1
//               ffn.fc: the truncation is deferred to the activation (SWire::pending):
//               stochastic, a free truncate-reduce to the activation's 28-bit wire; faithful,
//               GELU runs on the accumulator itself (below), ReLU / leaky ReLU after an
//               exact truncation to 28 (relu) or 40 (leaky) bits. fc alone: 1 (GELU) or 2.
//               ffn.fused on a 64-bit input (no LayerNorm), stochastic: matmul_w at 64 bits,
//               the truncation deferred to the FFN-scaling residual (1). ffn.fc read by
//               ffn.proj (identity activation) on a 64-bit input, stochastic: matmul_w at
//               40 + f bits, then the free truncate-reduce to proj's 40 bits (1).
//   relu        relu_trunc on the 28-bit wire (compare on 27 bits, widen to 40 in the DCF
//               payload; exact).                                                          1
//   gelu        stochastic: on a 28-bit wire (22 after a stochastic LayerNorm's 34-bit fc):
//               {the bits [x >= -2^14], [x >= 2^14] from ONE DCF key with relu_trunc's
//               payload (mpc::relu_split, key read here), trunc x >> 6 to 9 bits} |
//               {(lo xor hi) D[u] by the selected 9-bit DPF table (mpc::lut_sel; delta =
//               ReLU - GELU, SIGMA's shape, 0 at both ends), and the same DCF key at x^ for
//               relu(x)'s unmasked 40-bit shares (sign-extended in the payload), folded into
//               the table's opening}: relu is never opened alone.                        2
//               faithful: on fc's 40-bit accumulator acc with the comparison points and the
//               index shift scaled by 2^f: {relu(acc) and the two bits from one DCF key
//               (mpc::relu_cmp), the index} | {the table, relu(acc) truncated exactly by f},
//               relu opened in round 1 and relu - delta in round 2.                      2
//   leaky relu  faithful: {drelu, trunc(x slope)} | select.                              2
//               stochastic: relu_trunc with the slope on the 28-bit wire (b x + (1 - b)
//               (floor(slope x / 2^f) + carry) from one DCF).                              1
//   residual    FFN scaling: public constants (local), faithful trunc. After a deferred
//               64-bit fused FFN: floor((xh beta 2^f + acc alpha) / 2^2f), one trunc.      1
//   rotary      public cos/sin (local), trunc on Q/K's ring.                              1
//   scores      ONE batched matmul_ss for all heads, causal entries only (qk_bits), public
//               per-row constant (local), trunc to qk_bits - 32 bits (free when st.). 2 (1 st.)
//   softmax     exact max: tournament max(a, b) = b + relu(a - b), 1 round per level;
//               clipped: none (the head's public clip constant, PiBlock::clip_hi). Exp index
//               {trunc, clamp comparison bits} | selected DPF table (lut_sel, 64-bit out);
//               one-round exp (FxSpec::exp_one_round: stochastic, qk_bits <= 60): the free
//               truncate-reduce of ref - z indexes ONE lookup over the whole 14 (22)-bit
//               domain, evaluated where the table is nonzero; clipped: + E[0] [index < 0] by
//               a DReLU whose shares join the lookup's opening. 1/sum: normalized LUT whose first round also
//               opens the batched E V product (all heads, E lower triangular); (E V)(1/sum)
//               by mul; faithful trunc.                   ceil(log2 T) + 2 (1) + 2 + 2
//               FxSpec::lut_products: (E V)(1/sum) inside the 1/sum lookup (mpc::lut_vec,
//               E V's mask in the payload), then trunc (faithful, + 1), or (stochastic) the
//               pre-shifted product of InvFold truncated by the lookup's local share
//               truncation to 40 bits (+ 0).
//   normalized LUT (1/x, 1/sqrt x): {DReLU bits [v >= 2^e] (softmax sums: only e below
//               the sum's bound, on a reduced width; from the value's lower bound up:
//               LayerNorm's eps, the exact max's exp(0) = 1), the 8 mantissa bits below every
//               candidate MSB e (truncate-reduce)} | one selected lookup summing
//               onehot_e table_e[mantissa_e] over the candidates (or, lut_products, the same
//               times a masked vector, mpc::lut_vec).                                    2
//   layernorm   D = d sum x^2 - (sum x)^2 by quad_rows (one value per row); rsqrt by the
//               normalized LUT; (d x - sum x) r by mul (faithful: on ln_product_width(d) =
//               49 bits at d = 768, then trunc to 40; stochastic: on 64 bits, then the free
//               truncate-reduce to 34 bits). The gain and bias are folded into the next
//               linear's secret weights (PiModel::fold_norms); an unfolded model's gain/bias
//               would be public constants (local, 64-bit product, trunc).        5 (4 stoch.)
//               FxSpec::lut_products: the product inside the rsqrt lookup (the row's masked
//               d x - sum x as mpc::lut_vec's payload), then trunc (faithful) or nothing
//               (stochastic: the lookup's local share truncation gives the 34-bit output). 4 (3)
// Per GPT-2 block (T = 128): 34 rounds faithful, 31 stochastic; 27 / 24 clipped; with the
// stochastic defaults (products inside the lookups, one-round exp) 26 / 19; an LN-free
// stochastic block with qk_bits <= 52 saves attn.qkv's truncation round too.
//   embedding   the client inputs its one-hot rows; matmul_w with the masked table; the server
//               inputs its positions table; widened to 64. lm_head: matmul_w (with the folded final
//               norm: its own secret matrix and bias row), trunc, revealed.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mpc/keys.h"
#include "mpc/lut.h"
#include "mpc/party.h"
#include "mpc/truncation.h"
#include "pi/fixed_point.h"
#include "pi/graph.h"

namespace aero::pi {

class SRound;

// Count mode of SecureExec (the cost model, cost_model.h): the executor walks the graph with
// the SAME gate decomposition as in dealer / party mode, but each gate only records what it
// would cost: the exact key bytes each party's stream receives (src/mpc *_key_bytes, gate
// markers included) and the frames each party's socket would send and receive, fed to a
// replica of mpc::Meter's accounting (40-byte frame header + packed payload; a round when a
// party receives after having sent since its previous receive), per operator tag as the
// innermost mpc::OpScope names it. No cryptography, no weights; wires hold zeros.
struct GateTally {
  double bytes_sent = 0, bytes_recv = 0;  // party 0's socket, headers included
  double rounds = 0;                      // party 0's round counter
  double key_bytes[2] = {0, 0};           // per party, this tag's gates
  double elements = 0;                    // opened elements
  double gemm_macs = 0;                   // integer multiply-adds (the busier party)
  double fss_blocks = 0;                  // AES blocks of FSS evaluation (one party)
  int count = 0;                          // openings (or one-way messages)
};
class GateCounter {
 public:
  static constexpr double kHeader = 40;  // src/mpc/transport.cpp frame header
  void exchange(const std::string& tag, double payload, double elements);  // one opening
  void send(const std::string& tag, int from, double payload, double elements);  // one-way
  void keys(const std::string& tag, double p0, double p1);
  void work(const std::string& tag, double macs, double aes_blocks);
  const std::map<std::string, GateTally>& per_op() const { return per_op_; }
  double rounds(int party) const { return rounds_[party]; }
  double key_bytes(int party) const { return keys_[party] + (party == 0 ? 16 : 0); }  // + party 0's stream seed
  double bytes() const { return bytes_; }  // party 0's socket, both directions

 private:
  void on_send(int p, const std::string& tag, double b);
  void on_recv(int p, const std::string& tag, double b);
  std::map<std::string, GateTally> per_op_;
  bool sent_since_recv_[2] = {false, false};
  double rounds_[2] = {0, 0}, keys_[2] = {0, 0}, bytes_ = 0;
};

struct SWire {
  int rows = 0, cols = 0;
  std::vector<mpc::u64> v;  // masks (dealer) or masked values (party), mod 2^w
  int w = 40;
  // Deferred truncation: when > 0, v is a linear layer's UNtruncated accumulator (scale
  // f + pending) and the consumer fuses the truncation by `pending` into its own gate (ffn.fc:
  // the activation, see SecureExec::activation); SecureExec::at_width truncates it otherwise,
  // metered under `pending_tag`.
  int pending = 0;
  const char* pending_tag = nullptr;
  // attn.qkv's output only: the Q and K columns (the first two thirds) live mod 2^qk_w
  // (FxSpec::qk_bits), the V columns mod 2^w; 0: every column at w.
  int qk_w = 0;
  // attn.qkv's output in stochastic mode on a 64-bit input (SecureExec::linear): the V
  // columns still hold the accumulator (on 40 bits, scale 2f); attn_logits truncates them in
  // the scores' round and leaves the result here for attn_softmax_v (shared by copies).
  struct LateV {
    std::vector<mpc::u64> done;  // V (rows x d / 3) at 64 bits, once attn_logits ran
    bool ready = false;
  };
  std::shared_ptr<LateV> late_v;
};

class SecureExec {
 public:
  using T = SWire;
  static constexpr int kWidth = 40;       // activations feeding server-weight products (scale f)
  static constexpr int kWide = 64;        // residual stream, Q/K/V, attention products
  // attention logits and their differences: the scores' ring (FxSpec::qk_bits, Q and K's ring)
  // after the shift by f + c_frac
  int score_width() const { return s_.qk_bits - s_.f - s_.c_frac; }
  static constexpr int kActWidth = 28;    // GELU's and (faithful) ReLU's input (comparisons on 27 bits)

  // Exactly one of dealer / party is non-null. model_seed: shared by dealer and server
  // (weight masks R_W = PRG(model_seed, tensor id)).
  SecureExec(mpc::Dealer* dealer, mpc::Party* party, const FxSpec& spec, mpc::Block model_seed);
  // Count mode (see GateCounter): runs on shapes only (PiModel::shapes is enough).
  SecureExec(GateCounter* counter, const FxSpec& spec);

  // Dealer mode: party 1's key bytes per operator tag (the tag its online traffic is metered
  // under), for comparing the cost model with a run per operator.
  std::map<std::string, double> key_bytes_by_op();

  // Client's private input (rows x cols at scale f); x is ignored at the server / dealer.
  T input_client(const std::vector<double>& x, int rows, int cols);
  // Reveals a wire to the client (decoded at scale f); empty elsewhere.
  std::vector<double> output_client(const T& y);

  T linear(const T& x, const PiLinear& L, const char* tag);
  // The FFN activation that will read the next ffn.fc (graph.h calls it before ffn.fc): with
  // identity, ffn.proj reads fc's output and a stochastic fc on a 64-bit input multiplies on
  // 52 bits (see linear).
  void ffn_act_hint(model::Activation a) { fc_feeds_linear_ = a == model::Activation::identity; }
  T activation(const T& x, model::Activation act, double slope);
  T add(const T& a, const T& b, const char* tag);
  T residual(const T& xh, const T& f, double beta, double inv_alpha);
  T rotary(const T& qkv, const PiModel& m);
  T attn_logits(const T& qkv, const PiBlock& b, int H);
  T attn_softmax_v(const T& z, const T& qkv, const PiBlock& b, int H);
  T layernorm(const T& x, const PiNorm& n, const char* tag);
  T embed(const std::vector<int32_t>& ids, const PiModel& m);
  T last_row(const T& x);
  T lm_head(const T& x, const PiModel& m);
  // Secure argmax of a 1 x V row (first maximum on ties, like argmax_rows): a tournament,
  // max(a, b) = b + relu(a - b) with [a >= b] from the same DCF key, each level's index
  // selection in the next level's round: ceil(log2 V) + 1 rounds; the result is a 1 x 1 wire
  // holding the index (reveal it with output_client).
  T argmax(const T& logits);

 private:
  SecureExec(mpc::Dealer* dealer, mpc::Party* party, GateCounter* counter, const FxSpec& spec, mpc::Block model_seed);
  bool dealer() const { return d_ != nullptr; }
  bool counting() const { return c_ != nullptr; }
  bool server() const { return p_ && p_->id == mpc::kServer; }
  bool client() const { return p_ && p_->id == mpc::kClient; }
  using V = std::vector<mpc::u64>;
  friend class SRound;
  friend class TagScope;
  // Operator tag stack, mirrored in all modes (party mode: mpc::OpScope does the metering).
  void push_tag(const std::string& t);
  void pop_tag();
  const std::string& tag() const { return tags_.back(); }
  void settle_keys();  // dealer mode: charge the key bytes written since the last tag change
  // A client input of n values at width w (input_deal / input_eval, tag "input").
  V input(int owner, const V& x, size_t n, int w);
  V trunc(const V& x, int shift, int in_w, int out_w, const char* tag);
  V affine(const V& x, int64_t k, int64_t c, int w) const;  // k x + public c, mod 2^w
  // The engine's truncation: faithful or stochastic (FxSpec::stochastic_trunc), bounded sign
  // extension; stochastic and narrowing is free (no round).
  mpc::TruncSpec tspec(int in_w, int shift, int out_w) const {
    return {in_w, shift, out_w, !s_.stochastic_trunc, true};
  }
  // Narrow (free) or sign-extend (trunc gate of shift 0); a pending accumulator (SWire::pending)
  // is truncated to w by one gate (free when stochastic and narrowing enough).
  V at_width(const SWire& x, int w);
  int ln_product_width(int d) const;  // faithful LayerNorm product's ring (see layernorm)
  // Normalized LUT on a wire v of width vw (mod 2^vw) with vmin <= v < 2^max_e (vmin < 1:
  // any v < 2^max_e, v <= 0 read as 1); `with_first` adds independent gates to the first round
  // (see attn_softmax_v). invpow_index runs the first round: the candidate terms' MSBs
  // (InvIndex::e, 63 for the v <= 0 term), mantissa indices and selector bits; invpow_lookup
  // runs the second: the selected lookup of tables[e] (split(): one table per MSB, slot 63 the
  // v <= 0 constant).
  struct InvIndex {
    std::vector<int> e;
    V man, sel;  // K blocks of n
  };
  InvIndex invpow_index(const V& v, int vw, int64_t vmin, int max_e, int M, const char* tag,
                        const std::function<V&(SRound&)>& with_first = {}, V* first_out = nullptr);
  V invpow_lookup(const InvIndex& ix, const std::vector<std::vector<int64_t>>& tables, int out_w, const char* tag);
  // The vector lookup (mpc::lut_vec) of a normalized LUT's second round: out[i][c] =
  // tables[e_sel](mantissa) z'[i][c] on out_w bits (z: n rows of `width` on z_w bits, pre-shifted
  // by shift[e] per term when given), opened after the local share truncation by open_shift.
  V invpow_times(const InvIndex& ix, const std::vector<std::vector<int64_t>>& tables, const std::vector<int>* shift,
                 const V& z, int z_w, size_t width, int out_w, int open_shift, const char* tag);
  // exp of the masked logit differences ref - z (score_width() bits), 64-bit outputs at scale
  // exp_frac: one round (FxSpec::exp_one_round) or two (see secure_exec.cpp).
  V exp_lookup(const V& dd);
  // The one-round exp's DPF early termination (DpfParams::leaf_bits): 3 levels, 8 outputs
  // per leaf conversion (4 AES calls) for 3 levels of 16.25 key bytes.
  static constexpr int kExpLeafBits = 3;
  // Server-weight product X (M x K) W (K x N), W given row-major [K, N] at the right scale.
  V matmul_server(const V& x, size_t M, size_t K, size_t N, const std::vector<int64_t>& w_kn, int w);
  struct WProd {  // one server-weight product on ring w
    const V* x;
    size_t M, K, N;
    const std::vector<int64_t>* w_kn;
    int w;
  };
  std::vector<V> matmul_server_many(const std::vector<WProd>& ps);  // all opened in one round
  std::vector<mpc::u64> constant(size_t n, int64_t c, int w) const;  // public constant wire
  mpc::Dealer* d_ = nullptr;
  mpc::Party* p_ = nullptr;
  GateCounter* c_ = nullptr;
  std::vector<std::string> tags_{"untagged"};
  std::map<std::string, double> key_by_tag_;
  size_t key_mark_ = 0;
  FxSpec s_;
  mpc::Block seed_;
  uint64_t tensor_id_ = 0;
  bool fc_feeds_linear_ = false;  // ffn_act_hint
  GeluLut gelu_;
  ExpLut exp_;
  InvPowLut inv_, rsqrt_;
  std::vector<std::vector<int64_t>> inv_tabs_, rsqrt_tabs_;  // InvPowLut tables per MSB e (64; see split())
  InvFold inv_fold_;  // stochastic softmax normalization inside the 1/sum lookup (FxSpec::lut_products)
  mpc::LutSpec exp_lut_;  // ExpLut::one_round as the lookup's table (one-round exp), converted once
};

}  // namespace aero::pi
