// The C++ model against the independent PyTorch reference (python/reference/aero_ref.py).
// Each fixture in tests/fixtures/reference/ (made by python/reference/make_fixtures.py, see
// docs/reference.md) holds a tiny random model of one AERO configuration, a batch, and the
// reference's logits, CE, entropy term, loss and every parameter gradient, plus the losses of
// a few AdamW steps. Here the model is rebuilt from the fixture's config, loaded by parameter
// name, and compared: in double precision (tight: the fixture's float32 rounding is all that
// differs) and in float (the training precision), then the trainer's AdamW, clipping and
// schedule reproduce the reference's training losses and final weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/safetensors.h"
#include "model/config.h"
#include "model/model.h"
#include "train/grad_clip.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

namespace {

using aero::SafeTensors;
using aero::StTensor;
namespace model = aero::model;

const std::string kFixtureDir = std::string(AERO_SOURCE_DIR) + "/tests/fixtures/reference";

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(kFixtureDir, ec))
    if (e.path().extension() == ".safetensors") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Fixture {
  std::string name;
  SafeTensors st;
  model::RunConfig cfg;
  int B = 0, T = 0, S = 0;  // batch, sequence length, optimizer steps

  explicit Fixture(const std::string& n) : name(n) {
    std::string path = kFixtureDir + "/" + n + ".safetensors";
    st = SafeTensors::load(path);
    EXPECT_EQ(st.metadata.at("format"), "aero-ref-fixture-1") << path;
    cfg = model::run_config_from_json(nlohmann::json::parse(st.metadata.at("aero_config")), path);
    const auto& tok = st.at("input.tokens");
    B = int(tok.shape.at(0)), T = int(tok.shape.at(1));
    S = int(st.at("train.tokens").shape.at(0));
  }
  std::vector<double> f64(const std::string& key) const { return st.at(key).to_f64(key); }
  std::vector<int32_t> i32(const std::string& key) const {
    const StTensor& t = st.at(key);
    EXPECT_EQ(t.dtype, aero::DType::I32) << key;
    std::vector<int32_t> v(size_t(t.numel()));
    std::memcpy(v.data(), t.bytes.data(), v.size() * sizeof(int32_t));
    return v;
  }
};

// |got - want| <= atol + rtol * max|want| elementwise; the message names the fixture, the
// tensor, the largest error and where it is.
template <typename T>
::testing::AssertionResult close(const std::string& what, const T* got,
                                 const std::vector<double>& want, double rtol, double atol) {
  double max_ref = 0, max_err = 0;
  size_t at = 0;
  for (double w : want) max_ref = std::max(max_ref, std::abs(w));
  for (size_t i = 0; i < want.size(); i++) {
    double e = std::abs(double(got[i]) - want[i]);
    if (!(e <= max_err)) max_err = e, at = i;  // NaN counts as the worst error
  }
  double tol = atol + rtol * max_ref;
  // AERO_REF_REPORT=1 prints every comparison's error / tolerance (to tune tolerances).
  static const bool report = std::getenv("AERO_REF_REPORT") != nullptr;
  if (report) std::printf("%-70s err/tol %.3g  err %.3g\n", what.c_str(), max_err / tol, max_err);
  if (max_err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": max |err| " << max_err << " at flat index " << at << " (got "
         << double(got[at]) << ", reference " << want[at] << "), tolerance " << tol
         << " (max |ref| " << max_ref << ", " << want.size() << " elements)";
}

::testing::AssertionResult close_scalar(const std::string& what, double got, double want,
                                        double rtol, double atol) {
  return close(what, &got, std::vector<double>{want}, rtol, atol);
}

// Copies prefix+NAME of the fixture into every parameter and buffer of the model; the two
// sets of names and shapes must be equal (the state dicts map 1:1).
template <typename T>
void load_params(model::BasicModel<T>& m, const Fixture& fx, const std::string& prefix) {
  for (auto& p : m.params()) {
    std::string key = prefix + p.name;
    ASSERT_TRUE(fx.st.has(key)) << fx.name << ": the C++ model has " << p.name << " "
                                << ::testing::PrintToString(p.shape)
                                << ", the reference does not";
    const StTensor& t = fx.st.at(key);
    ASSERT_EQ(t.shape, p.shape) << fx.name << ": shape of " << p.name;
    auto v = t.to_f64(key);
    for (size_t i = 0; i < p.size; i++) p.data[i] = T(v[i]);
  }
  for (auto& [key, t] : fx.st.tensors) {
    if (key.rfind(prefix, 0) != 0) continue;
    std::string name = key.substr(prefix.size());
    ASSERT_NE(m.find_param(name), nullptr)
        << fx.name << ": the reference has " << name << ", the C++ model does not";
  }
}

struct Tol {
  double rtol, atol;
};

// One training-mode forward and backward against out.* and grad.*.
template <typename T>
void check_forward_backward(const Fixture& fx, Tol logit_tol, Tol loss_tol, Tol grad_tol) {
  model::BasicModel<T> m(fx.cfg.model, fx.B, fx.T);
  ASSERT_NO_FATAL_FAILURE(load_params(m, fx, "param."));
  auto tok = fx.i32("input.tokens"), tgt = fx.i32("input.targets");
  m.zero_grad();
  model::ForwardStats s = m.forward(tok.data(), tgt.data(), fx.B, fx.T, true);
  const std::string n = fx.name + ": ";
  EXPECT_TRUE(close(n + "logits", m.logits(), fx.f64("out.logits"), logit_tol.rtol,
                    logit_tol.atol));
  EXPECT_TRUE(close_scalar(n + "ce", s.ce, fx.f64("out.ce")[0], loss_tol.rtol, loss_tol.atol));
  EXPECT_TRUE(close_scalar(n + "ent_reg", s.ent_reg, fx.f64("out.ent_reg")[0], loss_tol.rtol,
                           loss_tol.atol));
  EXPECT_TRUE(close_scalar(n + "loss", s.loss, fx.f64("out.loss")[0], loss_tol.rtol,
                           loss_tol.atol));
  // Attention probabilities of every layer (after temperature and causal mask) and the mean
  // head entropy the analysis reports.
  auto probs = fx.f64("out.attn_probs");
  const size_t per_layer = size_t(fx.B) * fx.cfg.model.n_head * fx.T * fx.T;
  std::vector<double> ent_got;
  for (int l = 0; l < fx.cfg.model.n_layer; l++) {
    std::vector<double> want(probs.begin() + l * per_layer, probs.begin() + (l + 1) * per_layer);
    EXPECT_TRUE(close(n + "attention probabilities, layer " + std::to_string(l),
                      m.attn_probs(l), want, logit_tol.rtol, logit_tol.atol));
  }
  for (auto& row : m.head_entropy()) ent_got.insert(ent_got.end(), row.begin(), row.end());
  auto ent_want = fx.f64("out.head_entropy");
  ASSERT_EQ(ent_got.size(), ent_want.size()) << n << "head_entropy size";
  EXPECT_TRUE(close(n + "head entropy", ent_got.data(), ent_want, loss_tol.rtol, loss_tol.atol));
  m.backward();
  int checked = 0;
  for (auto& p : m.params()) {
    if (!p.trainable) {  // buffers: spectral-norm u after one power iteration
      EXPECT_TRUE(close(n + "buffer " + p.name + " after the forward", p.data,
                        fx.f64("out." + p.name), grad_tol.rtol, grad_tol.atol));
      continue;
    }
    ASSERT_TRUE(fx.st.has("grad." + p.name)) << n << "no reference gradient for " << p.name;
    EXPECT_TRUE(close(n + "grad " + p.name, p.grad, fx.f64("grad." + p.name), grad_tol.rtol,
                      grad_tol.atol));
    checked++;
  }
  EXPECT_GT(checked, 0);
}

class Reference : public ::testing::TestWithParam<std::string> {};

// Double precision: only the fixture's float32 storage separates the two sides.
TEST_P(Reference, ForwardBackwardDouble) {
  Fixture fx(GetParam());
  check_forward_backward<double>(fx, {1e-6, 1e-9}, {1e-6, 1e-9}, {2e-6, 1e-9});
}

// Float: the precision the trainer runs in.
TEST_P(Reference, ForwardBackwardFloat) {
  Fixture fx(GetParam());
  check_forward_backward<float>(fx, {2e-5, 1e-6}, {2e-5, 1e-6}, {1e-4, 1e-6});
}

// A few optimizer steps with the trainer's AdamW, global-norm clipping and LR schedule.
TEST_P(Reference, AdamWSteps) {
  Fixture fx(GetParam());
  const auto& tc = fx.cfg.train;
  model::Model m(fx.cfg.model, fx.B, fx.T);
  ASSERT_NO_FATAL_FAILURE(load_params(m, fx, "param."));
  aero::train::AdamW opt(m.params(), {tc.beta1, tc.beta2, tc.eps, tc.weight_decay});
  auto sched = aero::train::LrSchedule::make(tc.lr, tc.min_lr, tc.warmup, tc.steps,
                                             aero::train::schedule_from_name(tc.schedule));
  auto tok = fx.i32("train.tokens"), tgt = fx.i32("train.targets");
  auto loss = fx.f64("train.loss"), ce = fx.f64("train.ce"), ent = fx.f64("train.ent_reg");
  auto lr = fx.f64("train.lr"), gnorm = fx.f64("train.grad_norm");
  const size_t per_step = size_t(fx.B) * fx.T;
  for (int s = 0; s < fx.S; s++) {
    const std::string n = fx.name + ": step " + std::to_string(s) + ": ";
    m.zero_grad();
    auto st = m.forward(tok.data() + s * per_step, tgt.data() + s * per_step, fx.B, fx.T, true);
    EXPECT_TRUE(close_scalar(n + "loss", st.loss, loss[s], 2e-5, 1e-6));
    EXPECT_TRUE(close_scalar(n + "ce", st.ce, ce[s], 2e-5, 1e-6));
    EXPECT_TRUE(close_scalar(n + "ent_reg", st.ent_reg, ent[s], 2e-5, 1e-6));
    m.backward();
    double g = aero::train::clip_grad_norm(m.params(), tc.grad_clip);
    EXPECT_TRUE(close_scalar(n + "grad norm", g, gnorm[s], 2e-5, 1e-6));
    EXPECT_TRUE(close_scalar(n + "lr of the schedule", sched.at(s), lr[s], 1e-6, 0));
    opt.step(lr[s]);
  }
  // After S steps the weights still agree (an Adam update is about lr per element whatever
  // the gradient's size, so a wrong group, decay or bias correction shows up here).
  // One exception: on the dims that rotary leaves alone (all of them in gpt2), the key bias
  // adds q.b_k to every score of a row, which the softmax cancels, so its true gradient is
  // exactly 0 and Adam turns the rounding noise of either side into updates of +-lr. Those
  // entries are only held to |change| <= sum of lr; the loss does not depend on them.
  const int d = fx.cfg.model.d_model, dk = fx.cfg.model.d_head();
  const int rot = fx.cfg.model.rotary_dims();
  double lr_sum = 0;
  for (double x : lr) lr_sum += x;
  for (auto& p : m.params()) {
    auto want = fx.f64("final." + p.name);
    if (p.name.ends_with("attn.qkv.bias")) {
      auto init = fx.f64("param." + p.name);
      for (int r = d; r < 2 * d; r++) {
        if ((r - d) % dk < rot) continue;  // rotated dims: a real gradient
        EXPECT_LE(std::abs(p.data[r] - init[r]), 1.01 * lr_sum) << fx.name << ": " << p.name
                                                                << " row " << r;
        want[r] = p.data[r];
      }
    }
    EXPECT_TRUE(close(fx.name + ": after " + std::to_string(fx.S) + " steps: " + p.name, p.data,
                      want, 1e-3, 1e-5));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Reference, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) { return info.param; });

// The committed fixtures are what the committed script makes, and the oracle's own
// self-checks pass. Needs Debian's python3-torch (/usr/bin/python3); skipped without it.
bool have_reference_python() {
  return std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
}

TEST(ReferenceScripts, FixturesMatchTheirGenerator) {
  if (!have_reference_python()) GTEST_SKIP() << "/usr/bin/python3 with torch not available";
  const std::string out = std::string(AERO_BINARY_DIR) + "/reference_regen";
  const std::vector<std::string> names = {"gpt2_baseline", "ereg_exp", "pythia"};
  std::string cmd = "/usr/bin/python3 " + std::string(AERO_SOURCE_DIR) +
                    "/python/reference/make_fixtures.py --out " + out + " --only";
  for (auto& n : names) cmd += " " + n;
  ASSERT_EQ(std::system((cmd + " >/dev/null").c_str()), 0) << cmd;
  for (auto& n : names) {
    SafeTensors fresh = SafeTensors::load(out + "/" + n + ".safetensors");
    Fixture fx(n);
    EXPECT_EQ(fresh.metadata.at("aero_config"), fx.st.metadata.at("aero_config")) << n;
    ASSERT_EQ(fresh.tensors.size(), fx.st.tensors.size()) << n;
    for (auto& [key, t] : fx.st.tensors) {
      ASSERT_TRUE(fresh.has(key)) << n << ": regenerated fixture lacks " << key;
      if (t.dtype == aero::DType::I32) {
        EXPECT_EQ(fresh.at(key).bytes, t.bytes) << n << ": " << key;
        continue;
      }
      auto got = fresh.at(key).to_f64(key);
      EXPECT_TRUE(close(n + ": regenerated " + key, got.data(), fx.f64(key), 1e-6, 1e-9));
    }
  }
}

TEST(ReferenceScripts, OracleSelfChecks) {
  if (!have_reference_python()) GTEST_SKIP() << "/usr/bin/python3 with torch not available";
  std::string cmd = "/usr/bin/python3 " + std::string(AERO_SOURCE_DIR) +
                    "/python/reference/check_ref.py";
  EXPECT_EQ(std::system((cmd + " >/dev/null").c_str()), 0)
      << "the reference's self-checks failed; run " << cmd;
}

// The fixtures exist and cover the switches listed in docs/reference.md.
TEST(ReferenceFixtures, Present) {
  auto names = fixture_names();
  EXPECT_GE(names.size(), 16u) << "expected the fixtures of python/reference/make_fixtures.py in "
                               << kFixtureDir;
}

}  // namespace
