// Per-layer finite-difference checks in double: each layer's backward against central
// differences of the scalar sum(out .* W) for a random W, at awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "core/blas.h"
#include "core/rng.h"
#include "model/layers.h"

using namespace aero::model;

namespace {

// The layers run on a single thread here: the sizes are tiny and hundreds of calls would
// otherwise pay for waking the thread team each time.
class LayerGrad : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = aero::num_threads();
    aero::set_num_threads(1);
  }
  void TearDown() override { aero::set_num_threads(saved_); }
  int saved_ = 1;
};

std::vector<double> randn(size_t n, uint64_t seed, double s = 1.0) {
  aero::Rng r(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = r.normal() * s;
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

// Checks analytic d f / d x[i] against central differences at every element of x.
void check(std::vector<double>& x, const std::vector<double>& analytic,
           const std::function<double()>& f, const char* what, double tol = 1e-7) {
  ASSERT_EQ(x.size(), analytic.size());
  for (size_t i = 0; i < x.size(); i++) {
    double old = x[i], h = 1e-6;
    x[i] = old + h;
    double fp = f();
    x[i] = old - h;
    double fm = f();
    x[i] = old;
    double fd = (fp - fm) / (2 * h);
    ASSERT_NEAR(analytic[i], fd, tol * (1 + std::fabs(fd))) << what << "[" << i << "]";
  }
}

}  // namespace

TEST_F(LayerGrad, LayerNorm) {
  const int N = 3, C = 7;
  auto x = randn(N * C, 1), w = randn(C, 2), b = randn(C, 3), R = randn(N * C, 4);
  std::vector<double> out(N * C), mean(N), rstd(N);
  auto f = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
    return dot(out, R);
  };
  f();
  std::vector<double> dx(N * C, 0.0), dw(C, 0.0), db(C, 0.0);
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  check(x, dx, f, "dx");
  check(w, dw, f, "dw");
  check(b, db, f, "db");
}

TEST_F(LayerGrad, Activations) {
  const int n = 29;
  for (Act a : {Act::gelu, Act::gelu_exact, Act::leaky, Act::relu, Act::identity}) {
    auto x = randn(n, 5, 2.0), R = randn(n, 6);
    std::vector<double> slope = {0.07};
    std::vector<double> out(n);
    auto f = [&] {
      activation_forward(out.data(), x.data(), n, a, slope[0]);
      return dot(out, R);
    };
    std::vector<double> dx(n), ds = {0.0};
    activation_backward(dx.data(), R.data(), x.data(), n, a, slope[0], ds.data());
    check(x, dx, f, "dx");
    if (a == Act::leaky) check(slope, ds, f, "dslope");
  }
}

TEST_F(LayerGrad, LinearWithBias) {
  const int N = 5, I = 7, O = 3;
  auto x = randn(N * I, 1), W = randn(O * I, 2), b = randn(O, 3), R = randn(N * O, 4);
  std::vector<double> out(N * O);
  auto f = [&] {
    linear_forward(out.data(), x.data(), W.data(), b.data(), N, I, O);
    return dot(out, R);
  };
  std::vector<double> dx(N * I, 0.0), dW(O * I, 0.0), db(O, 0.0);
  linear_backward(dx.data(), dW.data(), db.data(), R.data(), x.data(), W.data(), N, I, O, false);
  check(x, dx, f, "dx");
  check(W, dW, f, "dW");
  check(b, db, f, "db");
}

TEST_F(LayerGrad, WeightNormRows) {
  const int O = 6, I = 5, r0 = 2, r1 = 5;
  auto g = randn(O, 1), v = randn(O * I, 2), R = randn(O * I, 3);
  std::vector<double> w(O * I), norms(O);
  auto f = [&] {
    weight_norm_forward(w.data(), norms.data(), g.data(), v.data(), O, I, r0, r1);
    return dot(w, R);
  };
  f();
  std::vector<double> dg(O, 0.0), dv(O * I, 0.0);
  weight_norm_backward(dg.data(), dv.data(), R.data(), g.data(), v.data(), norms.data(), O, I, r0, r1);
  check(g, dg, f, "dg");
  check(v, dv, f, "dv");
  for (int o = 0; o < O; o++)
    if (o < r0 || o >= r1) {
      EXPECT_EQ(dg[o], 0.0);
    }
}

TEST_F(LayerGrad, SpectralNormFrozenU) {
  const int h = 4, I = 6;
  auto W = randn(h * I, 1), u0 = randn(h, 2), R = randn(h * I, 3);
  std::vector<double> w(h * I), u(h), v(I);
  auto f = [&] {
    u = u0;
    spectral_norm_forward(w.data(), u.data(), v.data(), W.data(), h, I, false);
    return dot(w, R);
  };
  f();
  u = u0;
  double sigma = spectral_norm_forward(w.data(), u.data(), v.data(), W.data(), h, I, false);
  std::vector<double> dW(h * I, 0.0);
  spectral_norm_backward(dW.data(), R.data(), W.data(), u.data(), v.data(), sigma, h, I);
  check(W, dW, f, "dW");
}

TEST_F(LayerGrad, RotaryIsOrthogonal) {
  const int B = 2, T = 5, H = 2, C = 12, R = 4;
  std::vector<double> cs(T * R / 2), sn(T * R / 2);
  for (int t = 0; t < T; t++)
    for (int f = 0; f < R / 2; f++) {
      cs[t * R / 2 + f] = std::cos(t * std::pow(10000.0, -2.0 * f / R));
      sn[t * R / 2 + f] = std::sin(t * std::pow(10000.0, -2.0 * f / R));
    }
  auto x = randn(B * T * 3 * C, 1), y = x;
  rotary_apply(y.data(), cs.data(), sn.data(), B, T, C, H, R, false);
  // Norms per head are preserved, v is untouched, and the inverse undoes it.
  for (size_t i = 2 * C; i < size_t(3 * C); i++) EXPECT_EQ(y[i], x[i]);
  EXPECT_NE(y[3 * C + 0], x[3 * C + 0]);  // position 1, q head 0, dim 0 rotated
  EXPECT_EQ(y[0], x[0]);                  // position 0: angle 0
  auto z = y;
  rotary_apply(z.data(), cs.data(), sn.data(), B, T, C, H, R, true);
  for (size_t i = 0; i < x.size(); i++) EXPECT_NEAR(z[i], x[i], 1e-12);
  EXPECT_NEAR(dot(y, y), dot(x, x), 1e-9);
}

// Attention with per-row scales and the entropy regularizer: gradients to qkv, to the
// scales and to theta.
TEST_F(LayerGrad, AttentionWithTemperatureAndEntropy) {
  const int B = 2, T = 37, H = 2, C = 6, ld = 40;  // two causal blocks (32 + 5)
  auto qkv = randn(B * T * 3 * C, 1), R = randn(B * T * C, 2);
  auto scale = randn(H * ld, 3, 0.2);
  for (auto& s : scale) s = 0.5 + std::fabs(s);
  std::vector<double> theta = {0.3, 0.6};
  std::vector<double> out(B * T * C), probs(B * H * T * T), coef(B * H * T);
  const double lambda_w = 0.7;
  auto run = [&](EntropyRegArgs<double>& ea) {
    ea.theta = theta.data();
    ea.e_max = std::log(double(T));
    ea.tol = 0.05 * ea.e_max;
    ea.weight = lambda_w;
    ea.coef = coef.data();
    attention_forward(out.data(), probs.data(), qkv.data(), scale.data(), ld, B, T, C, H, &ea);
  };
  auto f = [&] {
    EntropyRegArgs<double> ea;
    run(ea);
    return dot(out, R) + lambda_w * ea.penalty;
  };
  EntropyRegArgs<double> ea;
  run(ea);
  EXPECT_GT(ea.penalty, 0.0);
  std::vector<double> dqkv(qkv.size()), dscale(B * H * T), dtheta(H, 0.0);
  attention_backward(dqkv.data(), dscale.data(), dtheta.data(), R.data(), qkv.data(), probs.data(),
                     scale.data(), ld, B, T, C, H, &ea);
  check(qkv, dqkv, f, "dqkv", 1e-6);
  check(theta, dtheta, f, "dtheta", 1e-6);
  // dscale is per (b, h, i); the scale table is shared by batch rows: sum them.
  std::vector<double> ds_table(H * ld, 0.0);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < T; i++) ds_table[h * ld + i] += dscale[(b * H + h) * T + i];
  check(scale, ds_table, f, "dscale", 1e-6);
}
