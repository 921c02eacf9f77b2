// CPU only: the GPU tests' oracle (cpu_reference.h) and the GPU parameter layout against the
// project's CPU model (aero::model::BasicModel<double>) on the same weights: names, shapes and
// decay groups; CE, L_ent and loss; every gradient (the model's analytic backward against finite
// differences of the oracle). With test_gpu_model (GPU vs oracle) this ties the GPU backend to
// the CPU model. Built with -DAERO_CUDA=ON (needs no GPU to run).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "core/rng.h"
#include "cpu_reference.h"
#include "model/model.h"
#include "tiny_configs.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

using namespace aero::cuda;
using namespace aero::cuda::test;

namespace {

struct Case {
  const char* name;
  ModelConfig cfg;
};
std::vector<Case> cases() {
  return {{"SM+LN+G", cfg_baseline()},
          {"EReg(SM(t)+ScFuFFN)", cfg_aero()},
          {"mixed", cfg_mixed()},
          {"pythia", cfg_pythia()},
          {"pythia AERO stack", cfg_pythia_aero()},
          {"gpt2 bias-free untied parallel, learnable leaky", cfg_nobias_untied()},
          {"WN qk+o+ffn", cfg_wn()},
          {"SN qk+o+ffn (fused)", cfg_sn()},
          {"SN v+ffn, WN o", cfg_sn_v_ffn()}};
}

TEST(GpuReference, LayoutMatchesCpuModel) {
  for (auto& c : cases()) {
    aero::model::BasicModel<double> m(c.cfg, 2, 8);
    GpuLayout lay = gpu_param_layout(c.cfg);
    std::map<std::string, const GpuParam*> mine;
    for (auto& p : lay.params) mine[p.name] = &p;
    for (auto& p : m.params()) {
      auto it = mine.find(p.name);
      ASSERT_NE(it, mine.end()) << c.name << ": GPU layout lacks " << p.name;
      EXPECT_EQ(it->second->shape, p.shape) << c.name << ": " << p.name;
      EXPECT_EQ(it->second->decay, p.decay) << c.name << ": decay group of " << p.name;
      EXPECT_EQ(it->second->trainable, p.trainable) << c.name << ": buffer or not: " << p.name;
    }
    EXPECT_EQ(m.params().size(), lay.params.size()) << c.name << ": GPU layout has extra tensors";
    EXPECT_EQ(gpu_unsupported(c.cfg), "") << c.name;
    for (size_t i = 1; i < lay.params.size(); ++i) {
      EXPECT_EQ(lay.params[i].offset % 64, 0u);
      EXPECT_GE(lay.params[i].offset, lay.params[i - 1].offset + lay.params[i - 1].size);
    }
  }
}

TEST(GpuReference, LossAndGradientsMatchCpuModel) {
  const int B = 3, T = 11;
  for (auto& c : cases()) {
    aero::model::BasicModel<double> m(c.cfg, B, T);
    m.init_weights(17);
    m.set_spectral_norm_frozen(true);  // the oracle's default: u fixed
    GpuLayout lay = gpu_param_layout(c.cfg);
    std::vector<double> w(lay.size, 0.0);
    for (auto& p : lay.params) {
      auto* q = m.find_param(p.name);
      ASSERT_NE(q, nullptr);
      std::copy(q->data, q->data + q->size, w.begin() + p.offset);
    }
    aero::Rng r(5);
    std::vector<int32_t> tok(B * T), tgt(B * T);
    for (int i = 0; i < B * T; ++i) {
      tok[i] = int32_t(r.below(c.cfg.vocab_size));
      tgt[i] = int32_t(r.below(c.cfg.vocab_size));
    }
    CpuReference ref(c.cfg, lay.params);
    for (bool training : {false, true}) {
      RefStats rs = ref.forward(w, tok, tgt, B, T, training);
      m.zero_grad();
      auto ms = m.forward(tok.data(), tgt.data(), B, T, training);
      EXPECT_NEAR(rs.ce, ms.ce, 1e-9 * std::fabs(ms.ce)) << c.name;
      EXPECT_NEAR(rs.ent_reg, ms.ent_reg, 1e-9 * (1 + std::fabs(ms.ent_reg))) << c.name;
      EXPECT_NEAR(rs.loss, ms.loss, 1e-9 * std::fabs(ms.loss)) << c.name;
    }
    m.backward();  // of the training forward above
    size_t checked = 0;
    for (auto& p : lay.params) {
      if (!p.trainable) continue;  // spectral-norm u: no gradient
      ++checked;
      auto* q = m.find_param(p.name);
      double num = 0, den = 0;
      std::vector<double> x = w;
      for (size_t i = 0; i < p.size; ++i) {
        size_t k = p.offset + i;
        const double h = 1e-5 * std::max(1.0, std::fabs(w[k]));
        x[k] = w[k] + h;
        double lp = ref.forward(x, tok, tgt, B, T, true).loss;
        x[k] = w[k] - h;
        double lm = ref.forward(x, tok, tgt, B, T, true).loss;
        x[k] = w[k];
        double fd = (lp - lm) / (2 * h);
        num += (fd - q->grad[i]) * (fd - q->grad[i]);
        den += fd * fd;
      }
      EXPECT_LE(std::sqrt(num), 1e-6 * std::max(std::sqrt(den), 1e-3))
          << c.name << ": gradient of " << p.name << " (|fd| " << std::sqrt(den) << ")";
    }
    EXPECT_GT(checked, 0u);
  }
}

// Weight norm starts at the identity reparameterization (g = ||v||), and the oracle's
// effective weights are the CPU model's (effective_weight) after a training forward.
TEST(GpuReference, WeightNormInitAndEffectiveWeights) {
  ModelConfig cfg = cfg_wn();
  aero::model::BasicModel<double> m(cfg, 2, 8);
  m.init_weights(3);
  const auto& g = *m.find_param("blocks.0.attn.qkv.weight_g");
  const auto& v = *m.find_param("blocks.0.attn.qkv.weight_v");
  for (int o = 0; o < 3 * cfg.d_model; ++o) {
    double ss = 0;
    for (int i = 0; i < cfg.d_model; ++i) ss += v.data[o * cfg.d_model + i] * v.data[o * cfg.d_model + i];
    EXPECT_NEAR(g.data[o], std::sqrt(ss), 1e-12);
  }
  auto w = m.effective_weight("blocks.0.attn.qkv");
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(w[i], v.data[i], 1e-12);
}

// Spectral norm with the power iteration running (training forwards, as in training): the
// oracle in iterate mode gives the CPU model's loss and its updated u, step after step.
TEST(GpuReference, SpectralNormPowerIterationMatchesCpuModel) {
  const int B = 2, T = 9;
  for (ModelConfig cfg : {cfg_sn(), cfg_sn_v_ffn()}) {
    aero::model::BasicModel<double> m(cfg, B, T);
    m.init_weights(29);
    GpuLayout lay = gpu_param_layout(cfg);
    std::vector<double> w(lay.size, 0.0);
    for (auto& p : lay.params) {
      auto* q = m.find_param(p.name);
      std::copy(q->data, q->data + q->size, w.begin() + p.offset);
    }
    CpuReference ref(cfg, lay.params);
    ref.set_sn_iterate(true);
    aero::Rng r(8);
    std::vector<int32_t> tok(B * T), tgt(B * T);
    for (int i = 0; i < B * T; ++i) {
      tok[i] = int32_t(r.below(cfg.vocab_size));
      tgt[i] = int32_t(r.below(cfg.vocab_size));
    }
    int n_u = 0;
    for (int step = 0; step < 3; ++step) {
      std::vector<double> w2;
      RefStats rs = ref.forward(w, tok, tgt, B, T, true, &w2);
      auto ms = m.forward(tok.data(), tgt.data(), B, T, true);
      EXPECT_NEAR(rs.loss, ms.loss, 1e-9 * std::fabs(ms.loss)) << "step " << step;
      for (auto& p : lay.params) {
        if (p.trainable) continue;
        ++n_u;
        auto* q = m.find_param(p.name);
        for (size_t i = 0; i < p.size; ++i)
          EXPECT_NEAR(w2[p.offset + i], q->data[i], 1e-9) << p.name;
        // the iteration moved u (it is not at its fixed point after random init)
        double moved = 0;
        for (size_t i = 0; i < p.size; ++i) moved += std::fabs(w2[p.offset + i] - w[p.offset + i]);
        if (step == 0) {
          EXPECT_GT(moved, 1e-6) << p.name;
        }
      }
      w = w2;
    }
    EXPECT_GT(n_u, 0);
    // evaluation forwards leave u alone and use it as stored
    ref.set_sn_iterate(false);
    RefStats re = ref.forward(w, tok, tgt, B, T, false);
    auto me = m.forward(tok.data(), tgt.data(), B, T, false);
    EXPECT_NEAR(re.loss, me.loss, 1e-9 * std::fabs(me.loss));
  }
}

// Checkpoints move both ways: the CPU trainer's file read into the GPU arena, and a file in the
// GPU backend's format (write_weights_file, as GpuModel::save_weights writes it) loaded by
// aero::train::load_model, bit-exactly.
TEST(GpuReference, CheckpointsMoveBetweenCpuAndGpu) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("aero_gpu_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (auto& c : cases()) {
    aero::model::RunConfig rc;
    rc.model = c.cfg;
    rc.train.seq_len = c.cfg.context;
    aero::model::Model m(c.cfg, 2, 8);
    m.init_weights(23);
    const std::string cpu_file = (dir / "cpu.safetensors").string();
    aero::train::save_checkpoint(cpu_file, m, rc, 5);
    GpuLayout lay = gpu_param_layout(c.cfg);
    std::vector<float> arena = read_weights_file(cpu_file, lay);
    for (auto& p : lay.params) {
      auto* q = m.find_param(p.name);
      ASSERT_NE(q, nullptr);
      EXPECT_TRUE(std::equal(q->data, q->data + q->size, arena.begin() + p.offset))
          << c.name << ": CPU -> GPU " << p.name;
    }
    // the CPU trainer's optimizer state (moments of trainable tensors only) reads into the
    // GPU's moment arena, and the GPU writes the same set of moment names
    aero::train::AdamW opt(m.params(), {});
    aero::SafeTensors ost;
    opt.save(ost);
    std::vector<float> mom(lay.size, 0.f);
    EXPECT_NO_THROW(arena_from_safetensors(lay.params, mom, "m.", ost, "state")) << c.name;
    auto gst = arena_to_safetensors(lay.params, mom, "m.");
    for (auto& [k, t] : ost.tensors)
      if (k.compare(0, 2, "m.") == 0) {
        EXPECT_TRUE(gst.has(k)) << c.name << ": " << k;
      }
    size_t n_m = 0;
    for (auto& [k, t] : ost.tensors) n_m += k.compare(0, 2, "m.") == 0;
    EXPECT_EQ(gst.tensors.size(), n_m) << c.name;
    for (auto& x : arena) x = 0.5f * x + 0.25f;
    const std::string gpu_file = (dir / "gpu.safetensors").string();
    write_weights_file(gpu_file, lay.params, arena,
                       {{"aero_config", aero::model::to_json(rc).dump()}, {"step", "9"}});
    auto loaded = aero::train::load_model(gpu_file, 2, 8);
    EXPECT_EQ(loaded.step, 9);
    EXPECT_EQ(loaded.config.model, c.cfg);
    for (auto& p : lay.params) {
      auto* q = loaded.model->find_param(p.name);
      ASSERT_NE(q, nullptr);
      EXPECT_TRUE(std::equal(q->data, q->data + q->size, arena.begin() + p.offset))
          << c.name << ": GPU -> CPU " << p.name;
    }
  }
  fs::remove_all(dir);
}

}  // namespace
