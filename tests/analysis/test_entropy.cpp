// Attention-entropy statistics: the head-entropy formula on matrices with known entropy, the
// theoretical maximum ln(T!)/T (SPEC section 3 values), bins relative to Max, NaN handling.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "analysis/entropy.h"
#include "core/error.h"
#include "core/files.h"
#include "xml_check.h"

using namespace aero::analysis;

namespace {
// Causal attention with row i uniform over its i+1 keys.
std::vector<float> uniform_causal(int T) {
  std::vector<float> a(size_t(T) * T, 0.f);
  for (int i = 0; i < T; ++i)
    for (int j = 0; j <= i; ++j) a[size_t(i) * T + j] = 1.f / (i + 1);
  return a;
}
// Every row attends to key 0 only.
std::vector<float> first_token(int T) {
  std::vector<float> a(size_t(T) * T, 0.f);
  for (int i = 0; i < T; ++i) a[size_t(i) * T] = 1.f;
  return a;
}
}  // namespace

TEST(Entropy, TheoreticalMaximumMatchesThePaper) {
  EXPECT_NEAR(max_causal_entropy(128), 3.878, 5e-4);
  EXPECT_NEAR(max_causal_entropy(256), 4.560, 5e-4);
  EXPECT_NEAR(max_causal_entropy(512), 5.246, 5e-4);
  EXPECT_DOUBLE_EQ(max_causal_entropy(1), 0.0);
  EXPECT_THROW(max_causal_entropy(0), aero::Error);
}

TEST(Entropy, UniformCausalRowsReachTheMaximumAndOneHotRowsZero) {
  for (int T : {1, 7, 128}) {
    auto u = uniform_causal(T);
    EXPECT_NEAR(head_entropy(u.data(), T), max_causal_entropy(T), 1e-6) << T;
    auto f = first_token(T);
    EXPECT_NEAR(head_entropy(f.data(), T), 0.0, 1e-8) << T;
  }
}

TEST(Entropy, MatchesAHandComputedMatrixAndIgnoresTheMaskedTriangle) {
  // T=2: row 0 = [1], row 1 = [0.25, 0.75]; garbage above the diagonal is not read.
  std::vector<float> a = {1.f, 123.f, 0.25f, 0.75f};
  double row1 = -(0.25 * std::log(0.25 + 1e-9) + 0.75 * std::log(0.75 + 1e-9));
  double row0 = -std::log(1 + 1e-9);
  EXPECT_NEAR(head_entropy(a.data(), 2), (row0 + row1) / 2, 1e-12);
  // a strided view: a 2x2 block inside a 2x3 buffer
  std::vector<float> b = {1.f, 9.f, 9.f, 0.25f, 0.75f, 9.f};
  EXPECT_NEAR(head_entropy(b.data(), 2, 3), (row0 + row1) / 2, 1e-12);
  a[2] = NAN;
  EXPECT_TRUE(std::isnan(head_entropy(a.data(), 2)));
}

TEST(Entropy, AccumulatorAveragesOverTheBatchAndCountsNaN) {
  const int L = 2, H = 2, T = 8, B = 2;
  EntropyAccumulator acc(L, H);
  auto u = uniform_causal(T), f = first_token(T);
  // layer 0: head 0 uniform in both samples; head 1 uniform in sample 0, one-hot in sample 1
  std::vector<float> l0;
  for (auto* m : {&u, &u, &u, &f}) l0.insert(l0.end(), m->begin(), m->end());  // [b][h]
  acc.add_layer(0, l0.data(), B, T);
  // layer 1: head 1 of sample 1 has two NaN probabilities
  std::vector<float> l1 = l0;
  l1[(size_t(1) * H + 1) * T * T + 3 * T + 1] = NAN;
  l1[(size_t(1) * H + 1) * T * T + 5 * T + 0] = NAN;
  acc.add_layer(1, l1.data(), B, T);
  auto m = acc.mean();
  double mx = max_causal_entropy(T);
  EXPECT_NEAR(m[0][0], mx, 1e-6);
  EXPECT_NEAR(m[0][1], mx / 2, 1e-6);
  EXPECT_NEAR(m[1][0], mx, 1e-6);
  EXPECT_TRUE(std::isnan(m[1][1]));
  EXPECT_EQ(acc.nan_values()[1][1], 2);
  EXPECT_EQ(acc.nan_values()[0][1], 0);
  EXPECT_EQ(acc.samples(0), 2);
  EXPECT_THROW(acc.add_layer(2, l0.data(), B, T), aero::Error);
}

TEST(Entropy, BinsAreRelativeToTheLargestObservedHead) {
  EXPECT_EQ(entropy_bin(0.0, 4), 0);
  EXPECT_EQ(entropy_bin(0.99, 4), 0);
  EXPECT_EQ(entropy_bin(1.0, 4), 1);
  EXPECT_EQ(entropy_bin(2.0, 4), 2);
  EXPECT_EQ(entropy_bin(2.999, 4), 2);
  EXPECT_EQ(entropy_bin(3.0, 4), 3);
  EXPECT_EQ(entropy_bin(4.0, 4), 3);  // Max itself is in the top bin (closed)
  // 2 layers x 4 heads, Max = 4: bins 0:{0.5, 0.2} 1:{1.5} 2:{2.5, 2.0} 3:{4, 3.5}, one NaN
  Matrix e = {{0.5, 1.5, 2.5, 4.0}, {0.2, 2.0, 3.5, NAN}};
  auto s = summarize_entropy(e, 128, 7, 32);
  EXPECT_DOUBLE_EQ(s.max_observed, 4.0);
  EXPECT_EQ(s.bin_counts, (std::array<int64_t, 4>{2, 1, 2, 2}));
  EXPECT_NEAR(s.overload_fraction, 2.0 / 7, 1e-12);
  EXPECT_NEAR(s.collapse_fraction, 2.0 / 7, 1e-12);
  EXPECT_NEAR(s.bin_fractions[1], 1.0 / 7, 1e-12);
  EXPECT_EQ(s.nan_heads, 1);
  EXPECT_EQ(s.nan_values, 7);
  EXPECT_NEAR(s.layer_mean[0], 2.125, 1e-12);
  EXPECT_NEAR(s.layer_mean[1], 5.7 / 3, 1e-12);
  EXPECT_NEAR(s.max_theoretical, 3.878, 5e-4);

  auto j = to_json(s);
  EXPECT_TRUE(j["entropy"][1][3].is_null());
  EXPECT_EQ(j["bins"][3]["count"], 2);
  EXPECT_EQ(j["bins"][0]["bin"], "[0, Max/4)");
  EXPECT_EQ(j["bins"][3]["range"], "[3.00, 4.00]");
  auto table = format_summary(s);
  EXPECT_NE(table.find("NaN"), std::string::npos);
  EXPECT_NE(table.find("28.6%"), std::string::npos);  // 2 of 7 heads
  EXPECT_THROW(summarize_entropy({{1, 2}, {1}}, 128), aero::Error);
}

TEST(Entropy, PlotsLikeThePapersFigures) {
  auto dir = (std::filesystem::temp_directory_path() / ("aero_test_entropy_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(dir);
  Matrix e(12, std::vector<double>(12));
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(0, 3.8);
  for (auto& row : e)
    for (auto& x : row) x = u(rng);
  e[11][5] = NAN;
  auto s = summarize_entropy(e, 128, 1, 64);
  auto files = plot_entropy(s, dir, "test run", true, paper_entropy_bins("SM+LN+G"), "paper");
  ASSERT_EQ(files.size(), 4u);
  std::string heat = aero::read_file(dir + "/entropy_heatmap.svg");
  EXPECT_EQ(aero::test::xml_problem(heat), "");
  EXPECT_NE(heat.find("Attention entropy per head - test run"), std::string::npos);
  EXPECT_NE(heat.find(">entropy (nats)<"), std::string::npos);
  EXPECT_EQ(aero::test::count_of(heat, ">NaN<"), 1u);
  std::string bins = aero::read_file(dir + "/entropy_bins.svg");
  EXPECT_EQ(aero::test::xml_problem(bins), "");
  EXPECT_EQ(aero::test::count_of(bins, "class=\"bar\""), 8u);  // measured + the paper's
  EXPECT_NE(bins.find(">74.0%<"), std::string::npos);
  EXPECT_NE(bins.find("[3Max/4, Max]"), std::string::npos);
  EXPECT_TRUE(aero::file_exists(dir + "/entropy_bins.png"));
  std::filesystem::remove_all(dir);
}

TEST(Entropy, PapersBinDistributions) {
  // SPEC section 3 (GPT-2, L=12, T=128): percent of heads per bin.
  EXPECT_EQ(paper_entropy_bins("SM+LN+G"), (std::array<double, 4>{4, 14, 74, 8}));
  EXPECT_EQ(paper_entropy_bins("SM+LN+R"), (std::array<double, 4>{6, 16, 74, 3}));
  EXPECT_EQ(paper_entropy_bins("SM+G"), (std::array<double, 4>{1, 18, 23, 58}));
  EXPECT_EQ(paper_entropy_bins("SM+R"), (std::array<double, 4>{3, 20, 53, 24}));
  auto sm = paper_entropy_bins("SM");
  EXPECT_EQ(sm[0], 33);
  EXPECT_EQ(sm[3], 45);
  EXPECT_TRUE(std::isnan(sm[1]));
  EXPECT_TRUE(std::isnan(paper_entropy_bins("SM+ScFuFFN")[0]));
}
