// The cost model (bench_cost: SecureExec in count mode) is an exact account of the engine:
// on small awkward shapes, for every model family / rung, both truncation modes, both softmax
// variants and both scopes, its online bytes (each direction), rounds and key bytes per party
// equal a real 2PC run's (bench_measured over run_local), in total and per operator tag.
#include <gtest/gtest.h>

#include <set>

#include "pi/cost_model.h"
#include "pi/pi_bench.h"

using namespace aero;
using namespace aero::pi;
using nlohmann::json;

namespace {
model::ModelConfig small(const std::string& preset, const std::string& rung, int T) {
  return model::build_run_config("", preset, rung,
                                 {"model.n_layer=2", "model.n_head=3", "model.d_model=24", "model.d_ff=96",
                                  "model.vocab_size=37", "model.context=" + std::to_string(T)})
      .model;
}

MachineRates rates() { return {1e9, 1e8}; }  // compute estimates are not compared

void expect_exact(const model::ModelConfig& cfg, const BenchOptions& o, const std::string& what) {
  SCOPED_TRACE(what);
  const json c = bench_cost(cfg, o, rates());
  const json m = bench_measured(cfg, o, cfg.n_layer);
  ASSERT_FALSE(m["extrapolated"].get<bool>());
  EXPECT_EQ(c["online_bytes"].get<double>(), m["online_bytes"].get<double>());
  EXPECT_EQ(c["rounds"].get<double>(), m["rounds"].get<double>());
  EXPECT_EQ(c["key_bytes_per_party"].get<double>(), m["key_bytes_per_party"].get<double>());
  EXPECT_EQ(c["model_setup_bytes"].get<double>(), m["measured"]["model_setup_bytes"].get<double>());
  std::set<std::string> tags;
  for (auto& [k, v] : c["ops"].items()) tags.insert(k);
  for (auto& [k, v] : m["ops"].items())
    if (k != "weights") tags.insert(k);
  double sent = 0, recv = 0;
  for (const auto& k : tags) {
    SCOPED_TRACE(k);
    ASSERT_TRUE(c["ops"].contains(k));
    ASSERT_TRUE(m["ops"].contains(k));
    const json &a = c["ops"][k], &b = m["ops"][k];
    EXPECT_EQ(a["bytes_sent"].get<double>(), b["bytes_sent"].get<double>());
    EXPECT_EQ(a["bytes_recv"].get<double>(), b["bytes_recv"].get<double>());
    EXPECT_EQ(a["rounds"].get<double>(), b["rounds"].get<double>());
    EXPECT_EQ(a["key_bytes_per_party"].get<double>(), b["key_bytes_per_party"].get<double>());
    sent += a["bytes_sent"].get<double>(), recv += a["bytes_recv"].get<double>();
  }
  EXPECT_EQ(sent, c["online_bytes_sent"].get<double>());
  EXPECT_EQ(recv, c["online_bytes_recv"].get<double>());
  EXPECT_EQ(sent + recv, c["online_bytes"].get<double>());
}

BenchOptions opts(bool stochastic, Scope scope = Scope::blocks, SoftmaxVariant sm = SoftmaxVariant::exact_max,
                  bool logits = false) {
  BenchOptions o;
  o.scope = scope;
  o.spec.stochastic_trunc = stochastic;
  o.spec.softmax = sm;
  o.reveal_logits = logits;
  return o;
}

double tag(const json& j, const std::string& op, const char* key = "online_bytes") {
  return j["ops"].contains(op) ? j["ops"][op][key].get<double>() : 0.0;
}
}  // namespace

// Every rung family (LN / LN-free, GELU / ReLU / leaky / identity, standard / scaled / fused /
// pruned FFN, learnable temperature, entropy regularisation, weight / spectral norm) on GPT-2
// and Pythia (rotary, parallel blocks), both truncation modes, L=2 H=3 d=24 T=7.
TEST(PiCost, EqualsMeasuredRunPerOperatorForEveryRung) {
  const char* rungs[] = {"SM+LN+G", "SM+LN+R", "SM+LN+LR", "SM+LN", "SM+G",       "SM+R",
                         "SM",      "SM+ScFFN", "SM+ScFuFFN", "SM(t)+ScFuFFN", "EReg(SM(t)+ScFuFFN)-k1",
                         "SM+R-k1", "SM+SN-qkvo+ffn", "SM+WN-ffn"};
  for (const char* r : rungs)
    for (bool st : {false, true}) expect_exact(small("gpt2-small", r, 7), opts(st), std::string("gpt2 ") + r + (st ? " stochastic" : " faithful"));
  for (const char* r : {"SM+LN+G", "SM+R", "SM(t)+ScFuFFN"})
    for (bool st : {false, true}) expect_exact(small("pythia-70m", r, 7), opts(st), std::string("pythia ") + r + (st ? " stochastic" : " faithful"));
}

// T = 13 (odd tournament sizes, other sum widths), clipped softmax, full scope with the logits or
// only the next token (secure argmax over V = 37) revealed.
TEST(PiCost, EqualsMeasuredRunAcrossSoftmaxScopesAndReveal) {
  for (bool st : {false, true}) {
    const char* m = st ? " stochastic" : " faithful";
    expect_exact(small("gpt2-small", "SM+LN+G", 13), opts(st), std::string("T13 exact max") + m);
    expect_exact(small("gpt2-small", "SM+LN+G", 13), opts(st, Scope::blocks, SoftmaxVariant::clipped), std::string("T13 clipped") + m);
    expect_exact(small("gpt2-small", "SM+LN+G", 13), opts(st, Scope::full), std::string("full next token") + m);
    expect_exact(small("gpt2-small", "SM+ScFuFFN", 13), opts(st, Scope::full, SoftmaxVariant::clipped, true),
                 std::string("full logits clipped") + m);
    expect_exact(small("pythia-70m", "SM+LN+G", 13), opts(st, Scope::full), std::string("pythia full") + m);
    // The narrow plan (FxSpec::qk_bits = 52; stochastic LN-free: attn.qkv's one-round path).
    for (const char* r : {"SM+LN+G", "SM(t)+ScFuFFN"}) {
      BenchOptions o = opts(st, Scope::blocks, SoftmaxVariant::clipped);
      o.spec.qk_bits = 52;
      expect_exact(small("gpt2-small", r, 13), o, std::string("narrow ") + r + m);
    }
    BenchOptions o = opts(st, Scope::full);
    o.spec.qk_bits = 52;
    expect_exact(small("pythia-70m", "SM+G", 13), o, std::string("narrow pythia LN-free full") + m);
  }
}

// Products inside the lookups (FxSpec::lut_products: mpc::lut_vec in LayerNorm's rsqrt and the
// softmax's 1/sum): count == measured run per operator in the combinations the default (auto:
// on exactly when stochastic, covered above) leaves out, faithful with them and stochastic
// without: both softmaxes, LN and LN-free, Pythia, full scope with the next token or the
// logits, the narrow plan.
TEST(PiCost, EqualsMeasuredRunWithAndWithoutProductsInsideTheLookups) {
  for (bool st : {false, true}) {
    const std::string m = st ? " stochastic, lut products off" : " faithful, lut products on";
    auto lut = [&](BenchOptions o) {
      o.spec.lut_products = st ? LutProducts::off : LutProducts::on;
      return o;
    };
    expect_exact(small("gpt2-small", "SM+LN+G", 13), lut(opts(st)), "T13 exact max" + m);
    expect_exact(small("gpt2-small", "SM+LN+G", 13), lut(opts(st, Scope::blocks, SoftmaxVariant::clipped)),
                 "T13 clipped" + m);
    expect_exact(small("gpt2-small", "SM+LN+R", 7), lut(opts(st, Scope::full)), "full next token" + m);
    expect_exact(small("gpt2-small", "EReg(SM(t)+ScFuFFN)-k1", 7), lut(opts(st, Scope::blocks, SoftmaxVariant::clipped)),
                 "LN-free clipped" + m);
    expect_exact(small("pythia-70m", "SM+LN+G", 7), lut(opts(st, Scope::full, SoftmaxVariant::exact_max, true)),
                 "pythia full logits" + m);
    BenchOptions o = lut(opts(st, Scope::blocks, SoftmaxVariant::clipped));
    o.spec.qk_bits = 52;
    expect_exact(small("gpt2-small", "SM+LN+G", 13), o, "narrow" + m);
  }
}

// One-round exp (FxSpec::exp_rounds 0 = auto -> 1 with stochastic truncation at qk_bits 60 and
// 52; 2 = the two-round path): count == measured run per operator for both paths, both
// softmax variants, both widths, T = 13; the one-round exp has one round per block, fewer key
// bytes (one early-terminated DPF per logit, and a DReLU's DCF when clipped, instead of the
// index's carry DCF, the clamp DCFs and the selected 10/12-bit DPFs) and fewer online bytes (no
// index / comparison opening).
TEST(PiCost, OneRoundExpEqualsMeasuredRun) {
  for (int qk : {FxSpec{}.qk_bits, 52})
  for (auto sm : {SoftmaxVariant::exact_max, SoftmaxVariant::clipped}) {
    json c[2];
    for (int er : {0, 2}) {
      BenchOptions o = opts(true, Scope::blocks, sm);
      o.spec.qk_bits = qk;
      o.spec.exp_rounds = er;
      EXPECT_EQ(o.spec.exp_one_round(), er == 0);
      const auto cfg = small("gpt2-small", "SM+LN+G", 13);
      expect_exact(cfg, o, std::string("exp_rounds ") + std::to_string(er) + " " + to_string(sm) + " qk " + std::to_string(qk));
      c[er ? 1 : 0] = bench_cost(cfg, o, rates());
      EXPECT_EQ(tag(c[er ? 1 : 0], "softmax.exp", "rounds"), er ? 4 : 2) << to_string(sm);
    }
    EXPECT_EQ(c[1]["rounds"].get<double>() - c[0]["rounds"].get<double>(), 2);
    EXPECT_LT(tag(c[0], "softmax.exp", "key_bytes_per_party"), tag(c[1], "softmax.exp", "key_bytes_per_party"));
    EXPECT_LT(tag(c[0], "softmax.exp"), tag(c[1], "softmax.exp"));
  }
}

// GPT-2 small, T=128, SIGMA's scope, SM+LN+G: the engine measured on all 12 blocks (2026-11,
// docs/benchmarks.md) gave 480 rounds faithful and 468 stochastic; the count reproduces them.
// Faithful key bytes: 13.62 GiB per party before the LayerNorm folding (PiModel::fold_norms),
// 13.06 after (the LayerNorm truncation no longer shifts out the gain's 12 fraction bits, so
// its carry DCF is 12 bits shorter); rounds and online bytes are unchanged.
// 2026-11-28, selected lookups (mpc::lut_sel: GELU's and exp's clamps and the normalized LUT's
// one-hot mantissa selection folded into the table's DPF payload): 35 rounds per block
// instead of 40, 420 faithful / 408 stochastic, 0.4789 / 0.4701 GiB online, keys 13.062 /
// 7.065 GiB; equal to `aero pi bench --measure` on 1 block (35 rounds, every operator's bytes
// and keys x 12) and on all 12 blocks.
// 2026-11-28, FFN fusion (ffn.fc's truncation deferred to the activation; faithful GELU on the
// accumulator) and the width plan (docs/private_inference.md: LayerNorm's product on 49 bits
// (faithful) or its truncation free (stochastic: a 34-bit output multiplied by the next linear
// on its own ring), Q/K and the scores' product on FxSpec::qk_bits), merged. Default qk_bits
// = 60: 408 / 372 rounds, 466,463,656 / 409,773,160 B online, keys 16,593,828,304 /
// 6,448,123,984 B; narrow (52): 454,648,744 / 400,335,976 B, keys 16,089,528,784 /
// 6,014,916,688 B. Each equal to `aero pi bench --measure --layers 12` (all 12 blocks; every
// operator's bytes, rounds and keys equal).
// 2026-11-28, GELU's ReLU split (mpc::relu_split: stochastic GELU no longer opens relu in its
// first round; its shares come from the same DCF key, relu_trunc's payload, in the table's
// round): stochastic 383,820,904 B online (narrow 374,383,720), keys 7,405,997,968 B (narrow
// 6,972,790,672), 372 rounds; faithful unchanged. Each equal to `aero pi bench --measure
// --layers 12 --trunc stochastic [--qk-bits 52]` (all 12 blocks).
// 2026-11-28, GELU's clamp selector opened as ONE bit lo xor hi (SRound::xor_fold_last) instead
// of the two bits: faithful 465,284,008 B (narrow 453,469,096), stochastic 382,641,256 B
// (narrow 373,204,072); rounds and keys unchanged. Each equal to `aero pi bench --measure
// --layers 12 [--trunc stochastic] [--qk-bits 52]` (all 12 blocks).
// 2026-11-28, products inside the lookups (FxSpec::lut_products, mpc::lut_vec; the default
// `auto`: on with stochastic truncation) and the normalized LUT's candidates from the row
// value's lower bound (LayerNorm's eps, the exact max's exp(0) = 1; both modes): faithful
// 464,822,440 B (narrow 453,007,528), 408 rounds, keys 16,294,148,368 B (narrow
// 15,789,848,848); stochastic 345,262,696 B (narrow 335,825,512), 324 rounds, keys
// 7,827,302,896 B (narrow 7,394,095,600). Each equal to `aero pi bench --measure --layers 12
// [--trunc stochastic] [--qk-bits 52]` (all 12 blocks; every operator's bytes, rounds and keys).
// 2026-11-28, one-round exp (FxSpec::exp_rounds auto: on with stochastic truncation; the free
// truncate-reduce of max - z indexes one lookup over the index's whole 22-bit (narrow 14-bit)
// domain, evaluated where the table is nonzero): stochastic 379,370,920 B online, 360 rounds,
// keys 6,945,015,568 B (were 382,641,256, 372, 7,405,997,968); narrow 369,933,736 B, 360,
// 6,512,997,136 B (were 373,204,072, 372, 6,972,790,672); faithful unchanged. Each equal to
// `aero pi bench --measure --layers 12 --trunc stochastic [--qk-bits 52]` (all 12 blocks).
// Merged (2026-11-28, session 4): both stochastic defaults together (products inside the
// lookups and the one-round exp): stochastic 341,992,360 B online (narrow 332,555,176), 312
// rounds, keys 7,366,320,496 B (narrow 6,934,302,064); faithful as above (neither applies).
// Each equal to `aero pi bench --measure --layers 12 --trunc stochastic [--qk-bits 52]` of the
// merged engine (all 12 blocks; online 112.8 s / 111.3 s on the 2-core VM).
TEST(PiCost, Gpt2SmallMatchesTheMeasuredRun) {
  auto cfg = model::build_run_config("", "gpt2-small", "SM+LN+G", {"model.context=128"}).model;
  for (int qk : {FxSpec{}.qk_bits, 52}) {
    BenchOptions of = opts(false), os = opts(true);
    of.spec.qk_bits = os.spec.qk_bits = qk;
    const json f = bench_cost(cfg, of, rates()), s = bench_cost(cfg, os, rates());
    const bool narrow = qk == 52;
    EXPECT_EQ(f["rounds"].get<double>(), 408);
    EXPECT_EQ(s["rounds"].get<double>(), 312);
    EXPECT_EQ(f["online_bytes"].get<double>(), narrow ? 453007528.0 : 464822440.0);
    EXPECT_EQ(s["online_bytes"].get<double>(), narrow ? 332555176.0 : 341992360.0);
    EXPECT_EQ(f["key_bytes_per_party"].get<double>(), narrow ? 15789848848.0 : 16294148368.0);
    EXPECT_EQ(s["key_bytes_per_party"].get<double>(), narrow ? 6934302064.0 : 7366320496.0);
  }
  EXPECT_EQ(FxSpec{}.qk_bits, 60);
  EXPECT_EQ(FxSpec{}.lut_products, LutProducts::auto_);
}

TEST(PiCost, RungsRemoveTheirOperators) {
  auto run = [](const std::string& r, SoftmaxVariant sm = SoftmaxVariant::exact_max) {
    auto cfg = model::build_run_config("", "gpt2-small", r, {"model.context=32", "model.n_layer=2"}).model;
    return bench_cost(cfg, opts(false, Scope::blocks, sm), rates());
  };
  auto g = run("SM+LN+G"), r = run("SM+LN+R"), sm = run("SM+ScFuFFN"), clipped = run("SM+LN+G", SoftmaxVariant::clipped);
  EXPECT_GT(tag(g, "gelu"), 0);
  EXPECT_EQ(tag(r, "gelu"), 0);
  EXPECT_GT(tag(r, "relu"), 0);
  EXPECT_EQ(tag(sm, "ln1") + tag(sm, "ln2") + tag(sm, "quad_rows"), 0);
  EXPECT_EQ(tag(sm, "relu") + tag(sm, "gelu"), 0);
  EXPECT_LT(r["online_bytes"].get<double>(), g["online_bytes"].get<double>());
  EXPECT_LT(sm["online_bytes"].get<double>(), r["online_bytes"].get<double>());
  EXPECT_LT(sm["rounds"].get<double>(), g["rounds"].get<double>());
  EXPECT_EQ(tag(clipped, "softmax.max"), 0);  // max-free: no tournament
  EXPECT_LT(clipped["rounds"].get<double>(), g["rounds"].get<double>());
}
