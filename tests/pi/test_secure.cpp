// Secure executor (src/mpc masked-wire gates, dealer + two parties over loopback TCP) against
// the fixed-point simulation: the FFN sub-block (linear, activation, linear, residual with FFN
// scaling) must be reproduced bit for bit, for every activation of the ladder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "core/safetensors.h"
#include "mpc/local_run.h"
#include "pi/cost_model.h"
#include "pi/executors.h"
#include "pi/secure_exec.h"

using namespace aero;
using namespace aero::pi;

namespace {
template <class E>
typename E::T ffn_block(E& ex, const PiModel& m, const typename E::T& x) {
  const auto& b = m.blocks[0];
  if (m.cfg.ffn_kind == model::FfnKind::fused) return ex.residual(x, ex.linear(x, b.fused, "ffn.fused"), b.beta, b.inv_alpha);
  if constexpr (requires { ex.ffn_act_hint(m.cfg.ffn_act); }) ex.ffn_act_hint(m.cfg.ffn_act);  // as graph.h
  auto u = ex.linear(x, b.fc, "ffn.fc");
  if (m.cfg.ffn_act != model::Activation::identity) u = ex.activation(u, m.cfg.ffn_act, b.slope);
  auto f = ex.linear(u, b.fc_proj, "ffn.proj");
  return ex.residual(x, f, b.beta, b.inv_alpha);
}

// One secure run (dealer + two parties over loopback) of program(ex, x) -> SWire, where x is
// the client's input values (empty at the dealer and the server); returns the output opened
// to the client, and the run's meters in *res.
template <class F>
std::vector<double> client_output(const FxSpec& spec, mpc::Block seed, const std::vector<double>& x0, F program,
                                  mpc::LocalRunResult* res = nullptr, const mpc::LocalRunOptions& opt = {}) {
  std::vector<double> got;
  auto r = mpc::run_local(
      [&](mpc::Dealer& dl) {
        SecureExec ex(&dl, nullptr, spec, seed);
        ex.output_client(program(ex, std::vector<double>{}));
      },
      [&](mpc::Party& p) {
        SecureExec ex(nullptr, &p, spec, seed);
        auto y = ex.output_client(program(ex, p.id == mpc::kClient ? x0 : std::vector<double>{}));
        if (p.id == mpc::kClient) got = y;
      },
      opt);
  if (res) *res = std::move(r);
  return got;
}

// max |got - want| and the RMS of want (the stochastic engine's bound is relative to it).
std::pair<double, double> worst_and_rms(const std::vector<double>& got, const std::vector<double>& want) {
  double ss = 0, worst = 0;
  for (size_t k = 0; k < want.size(); ++k) ss += want[k] * want[k], worst = std::max(worst, std::abs(got[k] - want[k]));
  return {worst, std::sqrt(ss / double(want.size()))};
}

// Every path of the width plan and the lookups' products (T = 11, H = 3, d_k = 7): LN and
// LN-free, GELU / ReLU, Pythia (rotary, parallel residual) with and without LayerNorm.
struct PathCase {
  const char* rung;
  std::vector<std::string> sets;
  int lns;  // LayerNorms per block
};
const std::vector<PathCase> kPaths = {
    {"SM+LN+G", {}, 2},
    {"SM+LN+R", {}, 2},
    {"SM(t)+ScFuFFN", {}, 0},
    {"SM+LN+G", {"model.family=pythia", "model.rotary_pct=0.5"}, 2},
    {"SM+G", {"model.family=pythia", "model.rotary_pct=0.5"}, 0},
};
struct PathRun {
  model::ModelConfig cfg;
  PiModel m;
  std::vector<double> x0;  // the client's T x d input
  std::string what;
  static constexpr int T = 11;
};
PathRun path_run(const PathCase& c, SoftmaxVariant sm) {
  std::vector<std::string> sets = {"model.n_layer=2", "model.n_head=3", "model.d_model=21", "model.context=12",
                                   "model.vocab_size=13", "model.d_ff=30"};
  sets.insert(sets.end(), c.sets.begin(), c.sets.end());
  PathRun r{model::build_run_config("", "tiny", c.rung, sets).model, {}, {}, {}};
  r.m = PiModel::random(r.cfg, 57);
  Rng rng(19);
  r.x0.resize(size_t(PathRun::T) * r.cfg.d_model);
  for (auto& v : r.x0) v = rng.normal();
  r.what = std::string(c.rung) + (c.sets.empty() ? "" : " pythia") + " " + to_string(sm);
  return r;
}
}  // namespace

// Faithful: bit for bit. Stochastic (ffn.fc's truncation fused into the activation: a free
// truncate-reduce to 28 bits, then GELU or the one-round relu_trunc): within a few ulps of the
// faithful simulation. Two shapes, odd sizes (d_ff = 40 and 37, T = 5 and 3).
TEST(PiSecure, FfnBlockEqualsFixedPointSimulation) {
  struct Shape { int d, dff, T; };
  for (Shape sh : {Shape{16, 40, 5}, Shape{12, 37, 3}})
  for (const char* rung : {"SM+R", "SM+G", "SM+LR", "SM+ScFFN", "SM+ScFuFFN"})
  for (bool stoch : {false, true}) {
    auto cfg = model::build_run_config("", "tiny", rung,
                                       {"model.n_layer=1", "model.n_head=2", "model.d_model=" + std::to_string(sh.d),
                                        "model.context=8", "model.vocab_size=11", "model.d_ff=" + std::to_string(sh.dff)})
                   .model;
    auto m = PiModel::random(cfg, 21);
    const int T = sh.T, d = cfg.d_model;
    Rng rng(4);
    std::vector<double> x0(size_t(T) * d);
    for (auto& v : x0) v = 1.5 * rng.normal();
    FixedExec xe;
    auto want = xe.output(ffn_block(xe, m, xe.input(x0, T, d)));
    FxSpec spec;
    spec.stochastic_trunc = stoch;
    mpc::LocalRunResult res;
    auto got = client_output(spec, {0x77, 0x99}, x0, [&](SecureExec& ex, const std::vector<double>& x) {
      return ffn_block(ex, m, ex.input_client(x, T, d));
    }, &res);
    ASSERT_EQ(got.size(), want.size()) << rung;
    const double ulp = 1.0 / (1 << spec.f);
    double worst = 0;
    for (size_t k = 0; k < want.size(); ++k) {
      if (!stoch) ASSERT_EQ(got[k], want[k]) << rung << " element " << k;
      worst = std::max(worst, std::abs(got[k] - want[k]));
    }
    // Stochastic: +-1 ulp per truncation, carried through the second linear layer (d_ff
    // inputs of weight ~ 1/sqrt(d_ff)) and the residual scaling.
    if (stoch) EXPECT_LE(worst, 16 * ulp) << rung << " d_ff=" << sh.dff;
    EXPECT_GT(res.online_bytes(), 0u);
    EXPECT_GT(res.rounds(), 2u);
  }
}

// Whole models, SIGMA's scope (blocks on an embedded input) and full scope (embedding, blocks,
// final norm, LM head on the last position): secure output == fixed-point simulation, exactly.
TEST(PiSecure, BlocksAndFullScopeEqualFixedPoint) {
  struct C {
    const char* rung;
    std::vector<std::string> sets;
    SoftmaxVariant sm;
  };
  const std::vector<C> cases = {
      {"SM+LN+G", {}, SoftmaxVariant::exact_max},
      {"SM(t)+ScFuFFN", {}, SoftmaxVariant::exact_max},
      {"SM+LN+R", {}, SoftmaxVariant::clipped},
      {"SM+G", {"model.family=pythia", "model.rotary_pct=0.5"}, SoftmaxVariant::exact_max},
  };
  for (const auto& c : cases) {
    std::vector<std::string> sets = {"model.n_layer=2", "model.n_head=2", "model.d_model=8", "model.context=6",
                                     "model.vocab_size=13", "model.d_ff=16"};
    sets.insert(sets.end(), c.sets.begin(), c.sets.end());
    auto cfg = model::build_run_config("", "tiny", c.rung, sets).model;
    auto m = PiModel::random(cfg, 31);
    FxSpec spec;
    spec.softmax = c.sm;
    const int T = 5, d = cfg.d_model;
    Rng rng(8);
    std::vector<double> x0(size_t(T) * d);
    for (auto& v : x0) v = rng.normal();
    std::vector<int32_t> ids(T);
    for (auto& t : ids) t = int32_t(rng.below(cfg.vocab_size));
    for (bool full : {false, true}) {
      FixedExec xe(spec);
      auto want = full ? xe.output(full_forward(xe, m, ids, false)) : xe.output(blocks_forward(xe, m, xe.input(x0, T, d)));
      const mpc::Block seed{0x55, 0x66};
      std::vector<double> got, tok;
      auto program = [&](mpc::Dealer& dl) {
        SecureExec ex(&dl, nullptr, spec, seed);
        auto y = full ? full_forward(ex, m, ids, false) : blocks_forward(ex, m, ex.input_client({}, T, d));
        ex.output_client(y);
        if (full) ex.output_client(ex.argmax(y));
      };
      mpc::run_local(program, [&](mpc::Party& p) {
        SecureExec ex(nullptr, &p, spec, seed);
        bool cl = p.id == mpc::kClient;
        auto y = full ? full_forward(ex, m, cl ? ids : std::vector<int32_t>(T, 0), false)
                      : blocks_forward(ex, m, ex.input_client(cl ? x0 : std::vector<double>{}, T, d));
        auto out = ex.output_client(y);
        std::vector<double> t;
        if (full) t = ex.output_client(ex.argmax(y));
        if (cl) got = out, tok = t;
      });
      if (full) {  // next token only (secure argmax) == argmax of the simulated logits
        FixedExec xe2(spec);
        auto lx = full_forward(xe2, m, ids, false);
        ASSERT_EQ(tok.size(), 1u);
        EXPECT_EQ(int(std::lround(tok[0] * (1 << spec.f))), argmax_rows(lx)[0]) << c.rung;
      }
      ASSERT_EQ(got.size(), want.size()) << c.rung;
      for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(got[k], want[k]) << c.rung << (full ? " full" : " blocks") << " element " << k;
    }
  }
}

// Stochastic truncation in the engine (--trunc stochastic): no carry DCFs, +-1 ulp per
// truncation. The secure output is no longer the simulation's bit for bit (the carries come
// from the dealer's masks); it must stay within the fixed-vs-float bound (2% of the RMS) of
// the faithful simulation, and cost fewer key bytes than the faithful engine.
TEST(PiSecure, StochasticTruncationStaysWithinTheFixedPointBound) {
  for (const char* rung : {"SM+LN+G", "SM(t)+ScFuFFN", "SM+LN+LR", "SM+R"}) {
    auto cfg = model::build_run_config("", "tiny", rung,
                                       {"model.n_layer=2", "model.n_head=2", "model.d_model=16", "model.context=8",
                                        "model.vocab_size=13", "model.d_ff=32"})
                   .model;
    auto m = PiModel::random(cfg, 41);
    const int T = 7, d = cfg.d_model;
    Rng rng(6);
    std::vector<double> x0(size_t(T) * d);
    for (auto& v : x0) v = rng.normal();
    FixedExec xe;
    auto want = xe.output(blocks_forward(xe, m, xe.input(x0, T, d)));
    size_t keys[2] = {0, 0};
    std::vector<double> got;
    for (bool stoch : {false, true}) {
      FxSpec spec;
      spec.stochastic_trunc = stoch;
      mpc::LocalRunResult res;
      got = client_output(spec, {0x12, 0x34}, x0, [&](SecureExec& ex, const std::vector<double>& x) {
        return blocks_forward(ex, m, ex.input_client(x, T, d));
      }, &res, {.stream_keys = stoch});
      keys[stoch] = res.key_bytes[1];
      ASSERT_EQ(got.size(), want.size());
      const auto [worst, rms] = worst_and_rms(got, want);
      if (!stoch) EXPECT_EQ(worst, 0.0) << rung;  // faithful: bit for bit
      else EXPECT_LT(worst, 0.02 * rms) << rung << " max abs " << worst << " rms " << rms;
    }
    EXPECT_LT(double(keys[1]), 0.8 * double(keys[0])) << rung << ": carry DCFs dropped";
  }
}

// The activation on a pending accumulator (what ffn.fc hands it: scale 2f, truncation not yet
// done) whose ring is 40 bits or narrower (34: a LayerNorm output's ring in stochastic mode
// leaves 22 bits above the shift, so the activation's wire narrows with it and the
// truncate-reduce stays free): ReLU, GELU, leaky ReLU in both modes, 37 values in range.
// Faithful: equal to FixedExec on floor(acc / 2^f); stochastic: the carry moves x by one ulp
// (GELU's table index may move one bucket: D changes by at most 32 ulp there).
TEST(PiSecure, ActivationOnAPendingAccumulator) {
  const FxSpec base;
  const int n = 37, f = base.f;
  Rng rng(17);
  std::vector<double> acc_real(n), x_real(n);  // acc = k 2^f + j (j < 2^f): floor = k
  for (int i = 0; i < n; ++i) {
    const int64_t k = int64_t(rng.below(1 << 17)) - (1 << 16), j = int64_t(rng.below(1 << f));
    x_real[i] = double(k) / (1 << f);
    acc_real[i] = double(k * (1 << f) + j) / (1 << f);  // input_client encodes at scale f
  }
  for (int ring : {40, 34})
    for (auto act : {model::Activation::relu, model::Activation::gelu, model::Activation::leaky_relu})
      for (bool stoch : {false, true}) {
        if (ring < 40 && !stoch) continue;  // narrow rings come from stochastic LayerNorms only
        FxSpec spec = base;
        spec.stochastic_trunc = stoch;
        FixedExec xe(spec);
        auto want = xe.output(xe.activation(xe.input(x_real, 1, n), act, 0.3));
        auto pend = [&](SecureExec& ex, const std::vector<double>& v) {
          SWire w = ex.input_client(v, 1, n);
          for (auto& e : w.v) e = mpc::mod_w(e, ring);  // narrowing a masked wire is local
          w.w = ring, w.pending = f, w.pending_tag = "ffn.fc";
          return w;
        };
        auto got = client_output(spec, {0x31, 0x41}, acc_real, [&](SecureExec& ex, const std::vector<double>& x) {
          return ex.activation(pend(ex, x), act, 0.3);
        });
        ASSERT_EQ(got.size(), want.size());
        const double ulp = 1.0 / (1 << f), tol = !stoch ? 0 : act == model::Activation::gelu ? 33 * ulp : 2 * ulp;
        for (int i = 0; i < n; ++i)
          ASSERT_LE(std::abs(got[i] - want[i]), tol) << "ring " << ring << " act " << int(act) << (stoch ? " stochastic" : " faithful")
                                                     << " x " << x_real[i];
      }
}

// Width plan (docs/private_inference.md): LayerNorm's product on 49 bits or (stochastic) its
// free truncation to a 34-bit wire that the next linear multiplies on its own ring, Q/K and
// the scores on FxSpec::qk_bits (60, and the narrow 52: logits on 20 bits and, stochastic
// LN-free, attn.qkv's Q/K product on 64 bits with V's truncation in the scores' round).
// Every path on awkward sizes (T = 11, H = 3, d_k = 7), both softmax variants, Pythia
// (rotary, parallel residual; with and without LayerNorm): faithful == simulation bit for
// bit; stochastic within 2% of the RMS of the faithful simulation (its error against the
// float model is bounded the same way: PiFixedSim).
TEST(PiSecure, WidthPlanEveryPathBothTruncationsBothSoftmaxes) {
  for (int qk : {FxSpec{}.qk_bits, 52})
  for (const auto& c : kPaths)
    for (auto sm : {SoftmaxVariant::exact_max, SoftmaxVariant::clipped}) {
      if (qk != 52 && sm == SoftmaxVariant::clipped) continue;  // test time: default qk_bits on exact max only
      const PathRun pr = path_run(c, sm);
      const int T = PathRun::T, d = pr.cfg.d_model;
      FxSpec spec;
      spec.softmax = sm;
      spec.qk_bits = qk;
      FixedExec xe(spec);
      auto want = xe.output(blocks_forward(xe, pr.m, xe.input(pr.x0, T, d)));
      const std::string what = pr.what + " qk_bits " + std::to_string(qk);
      for (bool stoch : {false, true}) {
        spec.stochastic_trunc = stoch;
        auto got = client_output(spec, {0x21, 0x43}, pr.x0, [&](SecureExec& ex, const std::vector<double>& x) {
          return blocks_forward(ex, pr.m, ex.input_client(x, T, d));
        });
        ASSERT_EQ(got.size(), want.size()) << what;
        const auto [worst, rms] = worst_and_rms(got, want);
        if (!stoch) EXPECT_EQ(worst, 0.0) << what << ": faithful must be bit for bit";
        else EXPECT_LT(worst, 0.02 * rms) << what << " stochastic: max abs " << worst << " rms " << rms;
      }
    }
}

// One-round exp (FxSpec::exp_one_round: stochastic truncation; the free truncate-reduce of
// ref - z indexes ONE lookup over the index's whole domain, 14 bits at qk_bits 52, 22 at 60;
// clipped: plus E[0] [index < 0] from a DReLU in the same opening) on awkward sizes (T = 11, H = 3, d_k = 7), both softmax variants (clipped also with per-head
// clip constants, PiBlock::softmax_clip), GPT-2 and Pythia (rotary, parallel; with and without
// LayerNorm). The secure run draws the index's carries from the dealer's masks and FixedExec
// from its hash: the same distribution, so the check is statistical: the secure output within
// 2% of the RMS of FixedExec's one-round simulation (two independent draws) and of the
// faithful two-round simulation, its mean signed error against the one-round simulation
// within 0.5% of the RMS (no bias), and exactly one round per block less than --exp-rounds 2.
TEST(PiSecure, OneRoundExpMatchesTheSimulationStatistically) {
  for (int qk : {FxSpec{}.qk_bits, 52})
  for (const auto& c : kPaths)
    for (auto sm : {SoftmaxVariant::exact_max, SoftmaxVariant::clipped}) {
      if (qk != 52 && std::string(c.rung) == "SM+LN+R") continue;  // test time
      PathRun pr = path_run(c, sm);
      PiModel& m = pr.m;
      if (sm == SoftmaxVariant::clipped && std::string(c.rung) == "SM+LN+G" && c.sets.empty())
        for (auto& b : m.blocks) b.softmax_clip = {2.5, 7.0, -1.25};  // per head
      const int T = PathRun::T, d = pr.cfg.d_model;
      const auto& x0 = pr.x0;
      FxSpec spec;
      spec.softmax = sm;
      spec.qk_bits = qk;
      const auto want_faithful = [&] {
        FixedExec xe(spec);
        return xe.output(blocks_forward(xe, m, xe.input(x0, T, d)));
      }();
      spec.stochastic_trunc = true;
      ASSERT_TRUE(spec.exp_one_round());
      FixedExec xe(spec);
      auto want = xe.output(blocks_forward(xe, m, xe.input(x0, T, d)));
      const std::string what = pr.what + " qk_bits " + std::to_string(qk);
      double rounds[2] = {0, 0};
      for (int er : {0, 2}) {
        spec.exp_rounds = er;
        mpc::LocalRunResult res;
        auto got = client_output(spec, {0x21, 0x43}, x0, [&](SecureExec& ex, const std::vector<double>& x) {
          return blocks_forward(ex, m, ex.input_client(x, T, d));
        }, &res);
        rounds[er ? 1 : 0] = double(res.rounds());
        ASSERT_EQ(got.size(), want.size()) << what;
        const auto [worst_f, rms_f] = worst_and_rms(got, want_faithful);
        EXPECT_LT(worst_f, 0.02 * rms_f) << what << " exp_rounds " << er << " vs faithful: max abs " << worst_f;
        if (er) continue;
        const auto [worst, rms] = worst_and_rms(got, want);
        EXPECT_LT(worst, 0.02 * rms) << what << " vs one-round simulation: max abs " << worst << " rms " << rms;
        double mean = 0;
        for (size_t k = 0; k < got.size(); ++k) mean += got[k] - want[k];
        mean /= double(got.size());
        EXPECT_LT(std::abs(mean), 0.005 * rms) << what << ": mean signed error " << mean << " rms " << rms;
      }
      EXPECT_EQ(rounds[1] - rounds[0], pr.cfg.n_layer) << what << ": one exp round less per block";
    }
}

// LayerNorm's product ring (width plan): faithful on ln_product_width(d) = 49 bits at d = 768,
// which |x_hat| <= sqrt(d - 1) fills to within 0.2 bits for a row with one outlier; stochastic
// on 64 bits with the free truncation to a 34-bit output. Worst-case rows (one outlier of
// either sign and any magnitude, constant rows where only eps is left, tiny and large
// spreads), d = 768 and an odd small d: faithful == FixedExec bit for bit; stochastic ==
// FixedExec's floor plus a carry of 0 or 1 ulp per element. The same with the product inside
// the rsqrt lookup (FxSpec::lut_products; the MSB candidates from eps up): faithful bit for
// bit, stochastic within the local share truncation's -1..+2 ulp of the floor.
TEST(PiSecure, LayerNormWorstCaseRowsFitTheProductRing) {
  for (int d : {768, 5}) {
    std::vector<double> x0;
    auto row = [&](auto f) {
      for (int i = 0; i < d; ++i) x0.push_back(f(i));
    };
    for (double big : {900.0, -900.0, 3.0, -0.01}) row([&](int i) { return i == d / 2 ? big : 0.0; });
    row([](int) { return 7.25; });                            // constant: D = eps only
    row([](int i) { return i % 2 ? 300.0 : -300.0; });        // large spread
    row([](int i) { return 1e-3 * ((i * 37) % 11 - 5); });    // tiny spread
    Rng rng(23);
    row([&](int) { return 4.0 * rng.normal(); });
    const int R = int(x0.size()) / d;
    const PiNorm nrm;  // folded: no gain, no bias
    for (bool lut : {false, true})
    for (bool stoch : {false, true}) {
      FxSpec spec;
      spec.stochastic_trunc = stoch;
      spec.lut_products = lut ? LutProducts::on : LutProducts::off;
      FixedExec xe;  // the faithful function (floors)
      const auto want = xe.output(xe.layernorm(xe.input(x0, R, d), nrm, "ln1"));
      auto got = client_output(spec, {0x31, 0x41}, x0, [&](SecureExec& ex, const std::vector<double>& x) {
        return ex.layernorm(ex.input_client(x, R, d), nrm, "ln1");
      });
      ASSERT_EQ(got.size(), want.size());
      const double ulp = 1.0 / (1 << spec.f);
      for (size_t k = 0; k < want.size(); ++k) {
        const double diff = (got[k] - want[k]) / ulp;
        if (!stoch) ASSERT_EQ(diff, 0.0) << "d=" << d << " element " << k << (lut ? " lut_products" : "");
        else if (!lut) ASSERT_TRUE(diff == 0.0 || diff == 1.0) << "d=" << d << " element " << k << ": " << diff << " ulp";
        else  // the lookup's local share truncation: floor((P + 2^29) / 2^30) + {-1, 0, 1}
          ASSERT_TRUE(diff >= -1.0 && diff <= 2.0) << "d=" << d << " element " << k << ": " << diff << " ulp";
      }
    }
  }
}

// Products inside the lookups (FxSpec::lut_products, mpc::lut_vec): LayerNorm's product in
// the rsqrt lookup, the softmax normalization in the 1/sum lookup. Every path of the width-plan
// test (T = 11, H = 3, d_k = 7; LN and LN-free, GELU / ReLU, Pythia with and without LayerNorm,
// both softmaxes): faithful == FixedExec bit for bit (the integer function is unchanged);
// stochastic within 2% of the RMS of the faithful simulation, and so is the simulation of the
// stochastic variant (FixedExec::lsr, InvFold). Rounds: one less per LayerNorm, and per block
// one less (faithful) or two less (stochastic) in the softmax.
TEST(PiSecure, ProductsInsideTheLookupsEveryPath) {
  for (const auto& c : kPaths)
    for (auto sm : {SoftmaxVariant::exact_max, SoftmaxVariant::clipped}) {
      const PathRun pr = path_run(c, sm);
      const int T = PathRun::T, d = pr.cfg.d_model;
      FxSpec spec;
      spec.softmax = sm;
      spec.qk_bits = 52;
      FixedExec xe(spec);
      auto want = xe.output(blocks_forward(xe, pr.m, xe.input(pr.x0, T, d)));
      for (bool stoch : {false, true}) {
        spec.stochastic_trunc = stoch;
        spec.lut_products = LutProducts::on;
        mpc::LocalRunResult res;
        auto got = client_output(spec, {0x21, 0x43}, pr.x0, [&](SecureExec& ex, const std::vector<double>& x) {
          return blocks_forward(ex, pr.m, ex.input_client(x, T, d));
        }, &res);
        ASSERT_EQ(got.size(), want.size()) << pr.what;
        const auto [worst, rms] = worst_and_rms(got, want);
        if (!stoch) EXPECT_EQ(worst, 0.0) << pr.what << ": faithful must be bit for bit";
        else EXPECT_LT(worst, 0.02 * rms) << pr.what << " stochastic: max abs " << worst << " rms " << rms;
        // Rounds against the engine without them (its count, = its run: PiCost; its run: the
        // width-plan test above).
        model::ModelConfig cT = pr.cfg;
        cT.context = T;
        FxSpec off = spec;
        off.lut_products = LutProducts::off;
        const int saved = c.lns + (stoch ? 2 : 1);
        EXPECT_EQ(count_cost(cT, Scope::blocks, off).rounds - double(res.rounds()), double(pr.cfg.n_layer * saved))
            << pr.what << (stoch ? " stochastic" : " faithful");
        FixedExec xs(spec);  // the stochastic variant's own simulation, same bound
        const auto [sworst, srms] = worst_and_rms(xs.output(blocks_forward(xs, pr.m, xs.input(pr.x0, T, d))), want);
        if (stoch) EXPECT_LT(sworst, 0.02 * srms) << pr.what << " simulation of the stochastic variant";
      }
    }
}

// The softmax normalization inside the 1/sum lookup, alone (logits and Q/K/V as client inputs,
// so the exp path is deterministic): rows of every kind (ordinary, all logits equal: the
// largest sum, all far below clip_hi: tiny sums and the clipped variant's small-MSB terms).
// Faithful: FixedExec bit for bit, 2 rounds for the reciprocal and 1 for the truncation.
// Stochastic: no round after the lookup (the 40-bit output comes out of its local share
// truncation), within 2 ulp plus the faithful 1/sum table's own rounding (|out| 2^-9 of the
// clipped variant's 9-bit entries at its largest sums) of the faithful output.
TEST(PiSecure, SoftmaxNormalizationInsideTheLookup) {
  const int T = 11, H = 3, dk = 7, d = H * dk;
  Rng rng(29);
  for (auto sm : {SoftmaxVariant::exact_max, SoftmaxVariant::clipped}) {
    std::vector<double> zr(size_t(H) * T * T), qkv(size_t(T) * 3 * d);
    for (size_t r = 0; r < size_t(H) * T; ++r)
      for (int j = 0; j < T; ++j) {
        const int kind = int(r % 4);
        double z = kind == 0 ? 3 * rng.normal() : kind == 1 ? 1.5 : kind == 2 ? -20 + rng.normal() : 6 + 2 * rng.normal();
        if (sm == SoftmaxVariant::exact_max && kind == 2) z += 20;
        zr[r * T + j] = std::round(z * 4096) / 4096;
      }
    for (auto& v : qkv) v = 2 * rng.normal();
    std::vector<double> in = zr;
    in.insert(in.end(), qkv.begin(), qkv.end());
    for (bool stoch : {false, true}) {
      FxSpec spec;
      spec.softmax = sm;
      spec.stochastic_trunc = stoch;
      spec.lut_products = LutProducts::on;
      spec.exp_rounds = 2;  // the normalization alone (the one-round exp: its own test)
      const PiBlock blk{};  // the global clip constant
      FixedExec xe(FxSpec{.softmax = sm});
      FixedExec::T z(H * T, T);
      for (size_t k = 0; k < zr.size(); ++k) z.v[k] = encode(zr[k], spec.f);
      const auto want = xe.output(xe.attn_softmax_v(z, xe.input(qkv, T, 3 * d), blk, H));
      mpc::LocalRunResult res;
      auto got = client_output(spec, {0x5, 0x7}, in, [&](SecureExec& ex, const std::vector<double>& x) {
        SWire all = ex.input_client(x, 1, int(in.size()));
        SecureExec::T zw{H * T, T, {all.v.begin(), all.v.begin() + ptrdiff_t(zr.size())}, 60 - 32};
        for (auto& e : zw.v) e = mpc::mod_w(e, zw.w);
        SecureExec::T q{T, 3 * d, {all.v.begin() + ptrdiff_t(zr.size()), all.v.end()}, 64};
        return ex.attn_softmax_v(zw, q, blk, H);
      }, &res);
      ASSERT_EQ(got.size(), want.size());
      const double ulp = 1.0 / (1 << spec.f);
      for (size_t k = 0; k < want.size(); ++k) {
        if (!stoch) ASSERT_EQ(got[k], want[k]) << to_string(sm) << " element " << k;
        else ASSERT_LE(std::abs(got[k] - want[k]), 2 * ulp + std::abs(want[k]) / 512) << to_string(sm) << " element " << k;
      }
      const auto& ops = res.meter[0].per_op();
      EXPECT_EQ(ops.at("softmax.recip").rounds, 2u);
      EXPECT_EQ(ops.count("softmax.normalize") ? ops.at("softmax.normalize").rounds : 0u, stoch ? 0u : 1u);
    }
  }
}

// Secure argmax alone on awkward sizes, with ties (first maximum wins, like argmax_rows) and
// negative values: ceil(log2 V) + 1 rounds.
TEST(PiSecure, ArgmaxAwkwardSizesAndTies) {
  Rng rng(17);
  for (int V : {1, 2, 3, 5, 17, 100, 129}) {
    std::vector<double> x(static_cast<size_t>(V), 0.0);
    for (auto& v : x) v = double(int(rng.below(7)) - 3);  // many ties
    Mat<double> m(1, V);
    m.v = x;
    const int want = argmax_rows(m)[0];
    mpc::LocalRunResult res;
    auto got = client_output(FxSpec{}, {0x9, 0x8}, x, [&](SecureExec& ex, const std::vector<double>& in) {
      return ex.argmax(ex.input_client(in, 1, V));
    }, &res);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(int(std::lround(got[0] * (1 << FxSpec{}.f))), want) << "V=" << V;
    int levels = 0;
    while ((1 << levels) < V) ++levels;
    EXPECT_EQ(res.meter[0].per_op().count("argmax") ? res.meter[0].per_op().at("argmax").rounds : 0u,
              u_int64_t(V > 1 ? levels + 1 : 0))
        << "V=" << V;
  }
}

// The server's LayerNorm gains and biases are secret (PiModel::fold_norms): they are not in
// the public export of a checkpoint, not among the public constants the client and the
// dealer use, and a secure run whose client and dealer hold ONLY the public model (every
// secret tensor zero, LayerNorm parameters included) still equals the fixed-point simulation
// of the server's model bit for bit, in SIGMA's scope and the full scope.
TEST(PiSecure, LayerNormParametersAreNotPublic) {
  struct C {
    const char* name;
    const char* rung;
    std::vector<std::string> sets;
  };
  const std::vector<C> cases = {
      {"gpt2 SM+LN+G", "SM+LN+G", {}},
      {"gpt2 SM+LN+R untied no bias", "SM+LN+R", {"model.tie_embeddings=false", "model.bias=false"}},
      {"gpt2 LN fused pruned", "SM+LN+G", {"model.ffn_kind=fused", "model.ffn_act=identity", "model.ffn_layers=1"}},
      {"pythia SM+LN+G parallel", "SM+LN+G", {"model.family=pythia", "model.rotary_pct=0.5"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> sets = {"model.n_layer=2", "model.n_head=2", "model.d_model=8", "model.context=6",
                                     "model.vocab_size=13", "model.d_ff=16"};
    sets.insert(sets.end(), c.sets.begin(), c.sets.end());
    auto cfg = model::build_run_config("", "tiny", c.rung, sets).model;
    ASSERT_EQ(cfg.norm, model::Norm::layernorm);
    const auto st = PiModel::random_tensors(cfg, 77);
    // Every LayerNorm gain / bias value of the checkpoint.
    std::vector<double> ln_values;
    for (const auto& [n, t] : st.tensors)
      if (n.find("ln1.") != std::string::npos || n.find("ln2.") != std::string::npos || n.rfind("ln_f.", 0) == 0) {
        EXPECT_FALSE(PiModel::is_public_tensor(n)) << n;
        auto v = t.to_f64(n);
        ln_values.insert(ln_values.end(), v.begin(), v.end());
      }
    ASSERT_FALSE(ln_values.empty());
    const auto pub = PiModel::public_tensors(st);
    for (const auto& [n, t] : pub.tensors) EXPECT_EQ(n.find("ln"), std::string::npos) << n;
    const auto server_m = PiModel::from_tensors(cfg, st);
    const auto public_m = PiModel::public_model(cfg, pub);  // what the client and the dealer hold
    auto leaks = [&](const PiModel& m) {
      int hits = 0;
      for (const auto& [name, vals] : m.public_constants())
        for (double v : vals)
          hits += int(std::count(ln_values.begin(), ln_values.end(), v));
      return hits;
    };
    EXPECT_EQ(leaks(server_m), 0);
    EXPECT_EQ(leaks(public_m), 0);
    EXPECT_GT(leaks(PiModel::from_tensors(cfg, st, /*fold=*/false)), 0);  // the check can fail

    const int T = 5, d = cfg.d_model;
    Rng rng(12);
    std::vector<double> x0(size_t(T) * d);
    for (auto& v : x0) v = rng.normal();
    std::vector<int32_t> ids(T);
    for (auto& t : ids) t = int32_t(rng.below(cfg.vocab_size));
    for (bool full : {false, true}) {
      FixedExec xe;
      auto want = full ? xe.output(full_forward(xe, server_m, ids, false))
                       : xe.output(blocks_forward(xe, server_m, xe.input(x0, T, d)));
      const mpc::Block seed{0x31, 0x41};
      std::vector<double> got;
      auto program = [&](mpc::Dealer& dl) {
        SecureExec ex(&dl, nullptr, FxSpec{}, seed);
        auto y = full ? full_forward(ex, public_m, ids, false) : blocks_forward(ex, public_m, ex.input_client({}, T, d));
        ex.output_client(y);
      };
      mpc::run_local(program, [&](mpc::Party& p) {
        SecureExec ex(nullptr, &p, FxSpec{}, seed);
        const bool cl = p.id == mpc::kClient;
        const PiModel& m = cl ? public_m : server_m;
        auto y = full ? full_forward(ex, m, cl ? ids : std::vector<int32_t>(T, 0), false)
                      : blocks_forward(ex, m, ex.input_client(cl ? x0 : std::vector<double>{}, T, d));
        auto out = ex.output_client(y);
        if (cl) got = out;
      });
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(got[k], want[k]) << (full ? "full" : "blocks") << " element " << k;
    }
  }
}
