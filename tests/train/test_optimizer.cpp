// AdamW, learning-rate schedules and gradient clipping on hand-made parameters (no model).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/grad_clip.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

namespace aero::train {
namespace {

// A parameter over caller-owned storage.
model::Param make_param(const char* name, std::vector<float>& w, std::vector<float>& g, bool decay,
                        bool trainable = true) {
  model::Param p;
  p.name = name;
  p.shape = {int64_t(w.size())};
  p.size = w.size();
  p.data = w.data();
  p.grad = trainable ? g.data() : nullptr;
  p.decay = decay;
  p.trainable = trainable;
  return p;
}

TEST(AdamW, FirstStepByHand) {
  // Step 1: m = (1-b1) g, v = (1-b2) g^2, bias-corrected m/sqrt(v) = sign(g), so
  // p1 = p0 (1 - lr wd) - lr g / (|g| + eps).  p0 = 1, g = 0.5, lr = 0.1, wd = 0.1 -> 0.89.
  std::vector<float> w1 = {1.0f}, g1 = {0.5f}, w2 = {1.0f}, g2 = {0.5f};
  std::vector<model::Param> ps = {make_param("w", w1, g1, true), make_param("b", w2, g2, false)};
  AdamW opt(ps, {0.9, 0.999, 1e-8, 0.1});
  opt.step(0.1);
  EXPECT_NEAR(w1[0], 0.89f, 1e-6);
  EXPECT_NEAR(w2[0], 0.90f, 1e-6);  // no decay in the no-decay group
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(AdamW, SecondStepMatchesScalarFormula) {
  // Second step with g = -1, written out in double precision.
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, lr1 = 0.1, lr2 = 0.05;
  std::vector<float> w = {1.0f, -2.0f}, g = {0.5f, 0.25f};
  std::vector<model::Param> ps = {make_param("w", w, g, true)};
  AdamW opt(ps, {b1, b2, eps, wd});
  opt.step(lr1);
  g = {-1.0f, 3.0f};
  opt.step(lr2);
  const double g1[2] = {0.5, 0.25}, g2[2] = {-1.0, 3.0}, p0[2] = {1.0, -2.0};
  for (int i = 0; i < 2; ++i) {
    double p = p0[i], m = 0, v = 0;
    const double gs[2] = {g1[i], g2[i]}, lrs[2] = {lr1, lr2};
    for (int t = 1; t <= 2; ++t) {
      p *= 1 - lrs[t - 1] * wd;
      m = b1 * m + (1 - b1) * gs[t - 1];
      v = b2 * v + (1 - b2) * gs[t - 1] * gs[t - 1];
      const double mh = m / (1 - std::pow(b1, t)), vh = v / (1 - std::pow(b2, t));
      p -= lrs[t - 1] * mh / (std::sqrt(vh) + eps);
    }
    EXPECT_NEAR(w[size_t(i)], p, 2e-6) << "element " << i;
  }
  // Element 0 by hand: p1 = 0.89; m2 = -0.055, v2 = 0.00124975, m^ = -0.055/0.19,
  // v^ = 0.00124975/0.001999, p2 = 0.89 * 0.995 + 0.05 * 0.289474 / 0.790688 = 0.903855.
  EXPECT_NEAR(w[0], 0.903855, 2e-6);
}

TEST(AdamW, BuffersAreNeverTouched) {
  std::vector<float> w = {1.0f, 2.0f}, g = {1.0f, 1.0f}, u = {0.3f}, ug = {0.0f};
  std::vector<model::Param> ps = {make_param("w", w, g, true), make_param("sn_u", u, ug, false, false)};
  AdamW opt(ps, {});
  opt.step(0.5);
  EXPECT_EQ(u[0], 0.3f);
  EXPECT_NE(w[0], 1.0f);
}

TEST(AdamW, StateRoundTripAndMissingMoment) {
  std::vector<float> w = {1.0f, 2.0f, 3.0f}, g = {0.1f, -0.2f, 0.3f};
  std::vector<model::Param> ps = {make_param("w", w, g, true)};
  AdamW a(ps, {});
  a.step(0.01);
  a.step(0.01);
  SafeTensors st;
  a.save(st);
  SafeTensors parsed = SafeTensors::parse(st.serialize(), "mem");
  std::vector<float> w2 = w, g2 = g;
  std::vector<model::Param> ps2 = {make_param("w", w2, g2, true)};
  AdamW b(ps2, {});
  b.load(parsed, "mem");
  EXPECT_EQ(b.steps_taken(), 2);
  EXPECT_EQ(a.first_moment(0), b.first_moment(0));
  EXPECT_EQ(a.second_moment(0), b.second_moment(0));
  // One more identical step from identical state gives identical bits.
  a.step(0.01);
  b.step(0.01);
  EXPECT_EQ(w, w2);
  parsed.tensors.erase("v.w");
  try {
    b.load(parsed, "mem");
    FAIL() << "missing moment accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v.w"), std::string::npos) << e.what();
  }
}

TEST(LrSchedule, LinearWarmupThenDecay) {
  auto s = LrSchedule::make(1.0, 0.1, 10, 111, ScheduleKind::Linear);
  EXPECT_EQ(s.warmup_steps, 10);
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.5);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_DOUBLE_EQ(s.at(35), 0.775);  // p = 0.25
  EXPECT_DOUBLE_EQ(s.at(60), 0.55);   // p = 0.5
  EXPECT_DOUBLE_EQ(s.at(110), 0.1);   // last step reaches min_lr
}

TEST(LrSchedule, CosineAndConstant) {
  auto c = LrSchedule::make(1.0, 0.1, 10, 111, ScheduleKind::Cosine);
  EXPECT_NEAR(c.at(35), 0.1 + 0.45 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_NEAR(c.at(60), 0.55, 1e-12);
  EXPECT_NEAR(c.at(110), 0.1, 1e-12);
  auto k = LrSchedule::make(2.0, 0.0, 0, 50, ScheduleKind::Constant);
  EXPECT_DOUBLE_EQ(k.at(0), 2.0);
  EXPECT_DOUBLE_EQ(k.at(49), 2.0);
}

TEST(LrSchedule, WarmupFractionAndErrors) {
  auto s = LrSchedule::make(1e-3, 0, 0.05, 1000, ScheduleKind::Linear);
  EXPECT_EQ(s.warmup_steps, 50);
  EXPECT_DOUBLE_EQ(s.at(49), 1e-3);
  EXPECT_LT(s.at(50 + 475), 0.51e-3);
  EXPECT_THROW(schedule_from_name("exponential"), Error);
  EXPECT_THROW(LrSchedule::make(1e-3, 2e-3, 0, 10, ScheduleKind::Linear), Error);
}

TEST(GradClip, GlobalNormAcrossParameters) {
  std::vector<float> a = {3.0f, 4.0f}, ga = {3.0f, 4.0f}, b = {0.0f}, gb = {12.0f};
  std::vector<float> u = {0.0f}, gu = {100.0f};  // a buffer's "gradient" must not count
  std::vector<model::Param> ps = {make_param("a", a, ga, true), make_param("b", b, gb, false)};
  ps.push_back(make_param("u", u, gu, false, false));
  ps.back().grad = gu.data();
  EXPECT_DOUBLE_EQ(global_grad_norm(ps), 13.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0), 13.0);  // off
  EXPECT_EQ(ga[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 20.0), 13.0);  // below the threshold
  EXPECT_EQ(gb[0], 12.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 6.5), 13.0);
  EXPECT_NEAR(ga[0], 1.5f, 1e-6);
  EXPECT_NEAR(ga[1], 2.0f, 1e-6);
  EXPECT_NEAR(gb[0], 6.0f, 1e-6);
  EXPECT_EQ(gu[0], 100.0f);
  EXPECT_NEAR(global_grad_norm(ps), 6.5, 1e-5);
}

TEST(GradClip, LargeTensorNormAndNonFinite) {
  // Large enough to take the blocked parallel path; awkward size.
  std::vector<float> w(100003), g(100003);
  double ref = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = float(std::sin(double(i) * 0.37));
    ref += double(g[i]) * g[i];
  }
  std::vector<model::Param> ps = {make_param("w", w, g, true)};
  EXPECT_NEAR(global_grad_norm(ps), std::sqrt(ref), 1e-9 * std::sqrt(ref));
  g[77777] = NAN;
  EXPECT_TRUE(std::isnan(clip_grad_norm(ps, 1.0)));
}

}  // namespace
}  // namespace aero::train
