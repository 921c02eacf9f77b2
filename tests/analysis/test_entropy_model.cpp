// measure_entropy on a real (small, randomly initialised) model: the statistics computed here
// from the attention probabilities agree with the model's own head_entropy(), softmax rows
// sum to one, and a non-finite weight is counted as NaN heads instead of aborting.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "analysis/entropy_eval.h"
#include "model/config.h"
#include "model/model.h"
#include "text/shard.h"

using namespace aero;

namespace {
model::RunConfig small(std::vector<std::string> sets = {}) {
  std::vector<std::string> s = {"model.n_layer=2", "model.n_head=2", "model.d_model=16", "model.context=16",
                                "model.vocab_size=64"};
  s.insert(s.end(), sets.begin(), sets.end());
  return model::build_run_config("", "tiny", "", s);
}
text::TokenDataset random_tokens(size_t n, uint32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> t(n);
  for (auto& x : t) x = rng() % vocab;
  return text::TokenDataset::from_tokens(t, vocab, 0);
}
// The model is tiny: one thread avoids OpenMP barrier waits on a loaded machine (seconds).
class EntropyModel : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = omp_get_max_threads();
    omp_set_num_threads(1);
  }
  void TearDown() override { omp_set_num_threads(threads_); }
  int threads_ = 1;
};
}  // namespace

TEST_F(EntropyModel, AgreesWithTheModelsHeadEntropy) {
  auto cfg = small();
  model::Model m(cfg.model, 3, 16);
  m.init_weights(7);
  auto ds = random_tokens(16 * 10 + 1, 64, 3);
  // one batch of 3: the model's last forward is exactly the batch measured
  auto r = analysis::measure_entropy(m, ds, 16, 3, 1);
  EXPECT_EQ(r.chunks, 3u);
  EXPECT_TRUE(std::isfinite(r.ce));
  EXPECT_EQ(r.summary.samples, 3);
  auto ref = m.head_entropy();
  ASSERT_EQ(ref.size(), 2u);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      EXPECT_NEAR(r.summary.entropy[l][h], ref[l][h], 1e-4) << l << "," << h;
      EXPECT_GT(r.summary.entropy[l][h], 0.0);
      EXPECT_LE(r.summary.entropy[l][h], analysis::max_causal_entropy(16) + 1e-6);
    }
  // the probabilities measured are a causal softmax: rows sum to 1, zeros above the diagonal
  const float* a = m.attn_probs(1);
  for (int i = 0; i < 16; ++i) {
    double s = 0;
    for (int j = 0; j < 16; ++j) {
      if (j > i) EXPECT_EQ(a[i * 16 + j], 0.f);
      s += a[i * 16 + j];
    }
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
  // every chunk of the split when max_batches = 0 (10 chunks, batches of 3: 3+3+3+1)
  auto all = analysis::measure_entropy(m, ds, 16, 3, 0);
  EXPECT_EQ(all.chunks, 10u);
  EXPECT_EQ(all.summary.samples, 10);
}

TEST_F(EntropyModel, NonFiniteWeightsAreCountedNotFatal) {
  auto cfg = small({"model.norm=none", "model.ffn_act=identity"});
  model::Model m(cfg.model, 2, 16);
  m.init_weights(7);
  auto& qkv = m.param("blocks.1.attn.qkv.weight");
  qkv.data[0] = NAN;  // a query weight of head 0 in layer 1
  auto ds = random_tokens(16 * 4 + 1, 64, 5);
  auto r = analysis::measure_entropy(m, ds, 16, 2, 1);
  EXPECT_GT(r.summary.nan_heads, 0);
  EXPECT_GT(r.summary.nan_values, 0);
  EXPECT_TRUE(std::isnan(r.summary.entropy[1][0]));
  EXPECT_TRUE(std::isfinite(r.summary.entropy[0][0]));  // layer 0 is untouched
  EXPECT_FALSE(r.nonfinite.empty());
}
