// The trainer on small models: gradient accumulation, bit-exact resume, the NaN guard,
// checkpoint files (round trip and refusal of corrupt ones), evaluation and sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"
#include "train/checkpoint.h"
#include "train/data_source.h"
#include "train/evaluate.h"
#include "train/sampling.h"
#include "train/trainer.h"
#include "train_fixtures.h"

namespace aero::train {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::small_config;

std::vector<float> flat_params(model::Model& m) {
  std::vector<float> out;
  for (auto& p : m.params()) out.insert(out.end(), p.data, p.data + p.size);
  return out;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Checkpoint, RoundTripRunDirAndPyTorchLayout) {
  auto cfg = small_config({"model.n_head=4", "model.ffn_scaling=true"});
  model::Model m(cfg.model, 2, 16);
  m.init_weights(99);
  const std::string dir = fresh_dir("ckpt_roundtrip");
  const std::string path = dir + "/w.safetensors";
  save_checkpoint(path, m, cfg, 17);
  auto lm = load_model(path, 2, 16);
  EXPECT_EQ(lm.step, 17);
  EXPECT_EQ(lm.config, cfg);
  EXPECT_EQ(flat_params(*lm.model), flat_params(m));
  // The file is plain safetensors with the documented metadata and PyTorch [out, in] shapes.
  SafeTensors st = SafeTensors::load(path);
  EXPECT_EQ(st.metadata.at("format"), "aero-ckpt-1");
  EXPECT_EQ(model::run_config_from_json(nlohmann::json::parse(st.metadata.at("aero_config"))), cfg);
  EXPECT_EQ(st.at("blocks.0.attn.qkv.weight").shape, (std::vector<int64_t>{96, 32}));
  EXPECT_TRUE(st.has("wte"));
  // A run directory resolves to its latest checkpoint.
  Trainer t(cfg, {dir + "/run", false});
  const std::string saved = t.save_checkpoint_now();
  EXPECT_EQ(resolve_checkpoint(dir + "/run"), saved);
  EXPECT_EQ(load_model(dir + "/run").path, saved);
}

TEST(Checkpoint, CorruptTruncatedAndMismatchedFilesAreRefused) {
  auto cfg = small_config();
  model::Model m(cfg.model, 1, 16);
  m.init_weights(1);
  const std::string dir = fresh_dir("ckpt_corrupt");
  const std::string path = dir + "/w.safetensors";
  save_checkpoint(path, m, cfg, 3);
  const std::string bytes = read_file(path);
  write_file_atomic(dir + "/trunc.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(error_of([&] { load_model(dir + "/trunc.safetensors"); }).find("trunc.safetensors"),
            std::string::npos);
  SafeTensors st = SafeTensors::load(path);
  st.tensors.erase("blocks.1.attn.proj.weight");
  st.save(dir + "/missing.safetensors");
  EXPECT_NE(error_of([&] { load_model(dir + "/missing.safetensors"); }).find("blocks.1.attn.proj.weight"),
            std::string::npos);
  SafeTensors st2 = SafeTensors::load(path);
  st2.metadata["format"] = "something-else";
  st2.save(dir + "/fmt.safetensors");
  EXPECT_NE(error_of([&] { load_model(dir + "/fmt.safetensors"); }).find("format"), std::string::npos);
  EXPECT_NE(error_of([&] { load_model(dir + "/nope"); }).find("does not exist"), std::string::npos);
  EXPECT_NE(error_of([&] { load_model(dir); }).find("ckpt/latest"), std::string::npos);
}

TEST(Trainer, AccumulatingTwoMicroBatchesEqualsOneBatchOfTwiceTheSize) {
  // Same seed, same data order: chunks 0-7 of the permutation either as one batch of 8 or
  // as micro-batches 0-3 and 4-7.
  auto big = small_config({"train.batch_size=8", "train.grad_accum=1"});
  auto acc = small_config({"train.batch_size=4", "train.grad_accum=2"});
  Trainer a(big, {"", false}), b(acc, {"", false});
  for (int s = 0; s < 3; ++s) {
    std::string bad_a, bad_b;
    StepStats sa = a.step(&bad_a), sb = b.step(&bad_b);
    ASSERT_TRUE(bad_a.empty() && bad_b.empty());
    EXPECT_NEAR(sa.loss, sb.loss, 1e-5 * sa.loss) << "step " << s;
    EXPECT_NEAR(sa.grad_norm, sb.grad_norm, 1e-4 * sa.grad_norm) << "step " << s;
    auto& pa = a.model().params();
    auto& pb = b.model().params();
    for (size_t i = 0; i < pa.size(); ++i) {
      if (!pa[i].grad) continue;
      double max_g = 0, max_d = 0;
      for (size_t j = 0; j < pa[i].size; ++j) {
        max_g = std::max(max_g, double(std::fabs(pa[i].grad[j])));
        max_d = std::max(max_d, double(std::fabs(pa[i].grad[j] - pb[i].grad[j])));
      }
      EXPECT_LE(max_d, 1e-4 * max_g + 1e-9) << pa[i].name << " step " << s;
    }
  }
  auto wa = flat_params(a.model()), wb = flat_params(b.model());
  double md = 0;
  for (size_t i = 0; i < wa.size(); ++i) md = std::max(md, double(std::fabs(wa[i] - wb[i])));
  EXPECT_LT(md, 1e-4);
}

TEST(Trainer, ResumeContinuesBitExactly) {
  auto cfg = small_config({"train.steps=12", "train.grad_accum=2", "train.eval_every=4",
                           "train.schedule=cosine", "model.entropy_reg.enabled=true"});
  const std::string d1 = fresh_dir("resume_full"), d2 = fresh_dir("resume_cut");
  TrainOptions o;
  o.progress = false;
  o.out_dir = d1 + "/run";
  TrainSummary full = Trainer(cfg, o).run();
  ASSERT_EQ(full.losses.size(), 12u);
  // Prerequisite: two uninterrupted runs agree bit for bit.
  o.out_dir = "";
  TrainSummary again = Trainer(cfg, o).run();
  for (size_t i = 0; i < 12; ++i)
    EXPECT_EQ(again.losses[i], full.losses[i]) << "step " << i + 1 << " of a repeated run";
  o.out_dir = d2 + "/run";
  o.stop_after = 5;
  TrainSummary first = Trainer(cfg, o).run();
  ASSERT_EQ(first.steps_done, 5);
  o.stop_after = -1;
  auto resumed = Trainer::resume(d2 + "/run", o);
  EXPECT_EQ(resumed->steps_done(), 5);
  TrainSummary second = resumed->run();
  std::vector<double> joined = first.losses;
  joined.insert(joined.end(), second.losses.begin(), second.losses.end());
  for (size_t i = 0; i < 12; ++i)  // exact, not approximate
    EXPECT_EQ(joined[i], full.losses[i]) << "step " << i + 1 << " after resuming at step 5";
  EXPECT_EQ(second.val_loss, full.val_loss);
  auto a = load_model(d1 + "/run"), b = load_model(d2 + "/run");
  EXPECT_EQ(a.step, 12);
  EXPECT_EQ(b.step, 12);
  EXPECT_EQ(flat_params(*a.model), flat_params(*b.model));
  // The resumed run's metrics log has each step once, like the uninterrupted one.
  auto count_lines = [](const std::string& p) {
    std::istringstream in(read_file(p));
    std::string l;
    int n = 0;
    while (std::getline(in, l)) n += l.find("\"grad_norm\"") != std::string::npos;
    return n;
  };
  EXPECT_EQ(count_lines(d2 + "/run/metrics.jsonl"), 12);
  EXPECT_EQ(read_file(d1 + "/run/config.json"), read_file(d2 + "/run/config.json"));
  // A fresh run into an existing run directory is refused.
  o.out_dir = d2 + "/run";
  EXPECT_NE(error_of([&] { Trainer t(cfg, o); }).find("--resume"), std::string::npos);
}

TEST(Trainer, NonFiniteStopsTheRunAndNamesTheLayer) {
  auto cfg = small_config({"train.steps=20"});
  const std::string dir = fresh_dir("nanguard");
  TrainOptions o;
  o.progress = false;
  o.out_dir = dir + "/run";
  Trainer t(cfg, o);
  // An Inf in layer 1's query weights of head 0: attention of layer 1 breaks first.
  t.model().param("blocks.1.attn.qkv.weight").data[3] = INFINITY;
  TrainSummary s = t.run();
  EXPECT_TRUE(s.diverged);
  EXPECT_EQ(s.steps_done, 0);
  EXPECT_TRUE(s.losses.empty());
  EXPECT_NE(s.nonfinite.find("layer 1"), std::string::npos) << s.nonfinite;
  EXPECT_NE(s.nonfinite.find("head 0"), std::string::npos) << s.nonfinite;
  ASSERT_FALSE(s.checkpoint.empty());
  EXPECT_TRUE(file_exists(s.checkpoint));
  EXPECT_NE(read_file(dir + "/run/metrics.jsonl").find("nonfinite"), std::string::npos);
  // The stopped run refuses to resume and says why.
  EXPECT_NE(error_of([&] { Trainer::resume(dir + "/run", o); }).find("non-finite"), std::string::npos);
}

TEST(Evaluate, PerplexityIsExpOfMeanChunkCrossEntropy) {
  auto cfg = small_config();
  model::Model m(cfg.model, 3, 16);
  m.init_weights(5);
  auto ds = open_split(cfg, "valid");
  // Reference: every chunk alone.
  const int64_t n = 7;  // chunks: 2 batches of 3 and a last batch of 1
  double sum = 0;
  std::vector<int32_t> c(17);
  for (int64_t i = 0; i < n; ++i) {
    ds.chunk(uint64_t(i), 16, c.data());
    sum += m.forward(c.data(), c.data() + 1, 1, 16, false).ce;
  }
  text::TokenDataset head = text::TokenDataset::from_tokens([&] {
    std::vector<int32_t> t(size_t(n) * 16 + 1);
    ds.copy(0, t.size(), t.data());
    return std::vector<uint32_t>(t.begin(), t.end());
  }(), 64, 0);
  EvalResult r = evaluate(m, head, 16, 3, 0);
  EXPECT_EQ(r.chunks, uint64_t(n));
  EXPECT_NEAR(r.ce, sum / double(n), 1e-5);
  EXPECT_NEAR(r.ppl, std::exp(sum / double(n)), 1e-4);
  ASSERT_EQ(r.entropy.size(), 2u);
  ASSERT_EQ(r.entropy[0].size(), 2u);
  for (auto& row : r.entropy)
    for (double e : row) EXPECT_TRUE(e > 0 && e <= std::log(16.0)) << e;
}

TEST(Sampling, GreedyTopKAndSeeds) {
  const float logits[5] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
  Rng rng(1);
  SampleOptions g;
  g.temperature = 0;
  EXPECT_EQ(sample_next(logits, 5, g, rng), 1u);
  SampleOptions k2;
  k2.top_k = 2;
  int seen[5] = {0};
  for (int i = 0; i < 2000; ++i) ++seen[sample_next(logits, 5, k2, rng)];
  EXPECT_EQ(seen[0] + seen[2] + seen[4], 0);
  EXPECT_NEAR(double(seen[1]) / 2000, 1 / (1 + std::exp(-0.1)), 0.04);
  auto cfg = small_config();
  model::Model m(cfg.model, 1, 16);
  m.init_weights(3);
  SampleOptions o;
  o.tokens = 20;  // longer than the context: the window slides
  o.seed = 77;
  auto a = generate(m, {1, 2, 3}, 16, o), b = generate(m, {1, 2, 3}, 16, o);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 20u);
  o.seed = 78;
  EXPECT_NE(generate(m, {1, 2, 3}, 16, o), a);
  EXPECT_THROW(generate(m, {64}, 16, o), Error);
}

}  // namespace
}  // namespace aero::train
