// Calibration of the clipped softmax's per-head clip constants (pi_calib.h, `aero pi
// calibrate`): the constants follow each head's logits, lower the clipped softmax's error where
// one global constant clips, and travel with the model (checkpoint metadata -> PiModel, public
// export -> the client's and the dealer's model).
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "core/safetensors.h"
#include "pi/executors.h"
#include "pi/pi_calib.h"

using namespace aero;
using namespace aero::pi;

namespace {
model::ModelConfig cfg() {
  return model::build_run_config("", "tiny", "SM+LN+G",
                                 {"model.n_layer=2", "model.n_head=3", "model.d_model=24", "model.context=16",
                                  "model.vocab_size=37", "model.d_ff=48"})
      .model;
}

// Scales the Q rows of head h of layer l (logits x k).
void boost(PiModel& m, int l, int h, double k) {
  auto& L = m.blocks[size_t(l)].qkv;
  const int dk = m.cfg.d_model / m.cfg.n_head;
  for (int r = h * dk; r < (h + 1) * dk; ++r) {
    for (int i = 0; i < L.in; ++i) L.w[size_t(r) * L.in + i] *= k;
    L.b[size_t(r)] *= k;
  }
}

double hidden_error(const PiModel& m, const FxSpec& spec, const std::vector<int32_t>& ids) {
  FloatExec fe;
  FixedExec xe(spec);
  auto yf = full_forward(fe, m, ids, true);
  auto yx = xe.output(full_forward(xe, m, ids, true));
  double worst = 0;
  for (size_t k = 0; k < yx.size(); ++k) worst = std::max(worst, std::abs(yx[k] - yf.v[k]));
  return worst;
}
}  // namespace

TEST(PiCalib, ClipConstantsFollowTheLogitsAndTravelWithTheModel) {
  const auto c = cfg();
  const SafeTensors st = PiModel::random_tensors(c, 5);
  PiModel m = PiModel::from_tensors(c, st);
  boost(m, 1, 2, 6.0);  // layer 1, head 2: logits far above the global clip of 8
  Rng rng(3);
  std::vector<uint32_t> toks(16 * 40 + 1);
  for (auto& t : toks) t = uint32_t(rng.below(uint64_t(c.vocab_size)));
  const auto ds = text::TokenDataset::from_tokens(toks, uint32_t(c.vocab_size), 0);
  FxSpec spec;
  spec.softmax = SoftmaxVariant::clipped;
  const ClipCalibration cal = calibrate_softmax_clip(m, ds, 16, 30, spec);
  ASSERT_EQ(cal.clip.size(), 2u);
  EXPECT_EQ(cal.chunks, 30u);
  EXPECT_EQ(cal.rows, 30u * 16);
  for (size_t l = 0; l < 2; ++l)
    for (size_t h = 0; h < 3; ++h) {
      const double C = cal.clip[l][h];
      EXPECT_GE(C, 0.0);
      EXPECT_LE(C, 48.0);
      EXPECT_EQ(C * 4, std::round(C * 4)) << "on the grid of 1/4";
      EXPECT_LE(cal.tv[l][h], cal.tv_default[l][h] + 1e-12) << "the chosen constant is the best on the grid";
    }
  EXPECT_GT(cal.max_logit[1][2], 8.0) << "the boosted head's logits exceed the global clip";
  EXPECT_GT(cal.clip[1][2], 8.0);
  EXPECT_LT(cal.tv[1][2], 0.5 * cal.tv_default[1][2]);
  // Applied, the clipped simulation is closer to float than with the global constant.
  std::vector<int32_t> ids(toks.begin(), toks.begin() + 16);
  const double before = hidden_error(m, spec, ids);
  for (size_t l = 0; l < 2; ++l) m.blocks[l].softmax_clip = cal.clip[l];
  const double after = hidden_error(m, spec, ids);
  EXPECT_LT(after, before) << "max |fixed - float| of the logits";
  // Metadata: the checkpoint's aero_pi_softmax_clip reaches PiModel, the public export and the
  // public model (the client's and the dealer's).
  SafeTensors st2 = st;
  st2.metadata["aero_config"] = "{}";
  st2.metadata[PiModel::kSoftmaxClipKey] = cal.to_json("train").dump();
  const PiModel m2 = PiModel::from_tensors(c, st2);
  const SafeTensors pub = PiModel::public_tensors(st2);
  ASSERT_TRUE(pub.metadata.count(PiModel::kSoftmaxClipKey));
  const PiModel mp = PiModel::public_model(c, pub);
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_EQ(m2.blocks[l].softmax_clip, cal.clip[l]);
    EXPECT_EQ(mp.blocks[l].softmax_clip, cal.clip[l]);
  }
  bool listed = false;
  for (const auto& [name, v] : mp.public_constants()) listed |= name == "blocks.1.softmax_clip" && v == cal.clip[1];
  EXPECT_TRUE(listed) << "the constants are public constants of the model";
  EXPECT_TRUE(PiModel::from_tensors(c, st).blocks[0].softmax_clip.empty()) << "no metadata: the global clip_hi";
}
