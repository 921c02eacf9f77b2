// `aero pi eval CHECKPOINT`: perplexity under the exact fixed-point arithmetic of private
// inference (--pi-sim), beside float inference of the same graph, and next-token agreement.
// `aero pi calibrate CHECKPOINT`: the clipped softmax's per-head clip constants from training
// data, stored in the checkpoint's metadata (pi_calib.h).
#include <cstdio>
#include <memory>

#include "cli/registry.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "pi/pi_calib.h"
#include "pi/pi_eval.h"
#include "train/checkpoint.h"
#include "train/data_source.h"

namespace {

// Registered after "pi" (the registry runs entries in name order).
aero::cli::Registrar reg_pi_eval("pi_eval", [](CLI::App& app) {
  auto* pi = app.get_subcommand("pi");
  auto* sub = pi->add_subcommand("eval", "Perplexity under the private-inference fixed-point arithmetic (--pi-sim)");
  struct Args {
    std::string ckpt, split = "valid", data, softmax = "exact_max", trunc = "faithful";
    std::string lut_products = aero::pi::to_string(aero::pi::FxSpec{}.lut_products);
    long long max_chunks = 200;
    int seq_len = 0, qk_bits = aero::pi::FxSpec{}.qk_bits, exp_rounds = 0;
    bool json = false, no_float = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("checkpoint", a->ckpt, "Checkpoint file or run directory")->required();
  sub->add_option("--split", a->split, "train, valid or another split name")->capture_default_str();
  sub->add_option("--data", a->data, "Shard directory (default: the run's data.dir)");
  sub->add_option("--max-chunks", a->max_chunks, "Evaluate at most this many chunks (0 = all)")->capture_default_str();
  sub->add_option("--seq-len", a->seq_len, "Chunk length (default: train.seq_len)");
  sub->add_option("--softmax", a->softmax, "exact_max or clipped")->capture_default_str();
  sub->add_option("--trunc", a->trunc, "faithful or stochastic (the engine's stochastic truncation, carries drawn by hash)")->capture_default_str();
  sub->add_option("--lut-products", a->lut_products,
                  "on|off|auto (on with --trunc stochastic): the engine's products inside the lookups (stochastic: "
                  "their rounding by the lookup's local share truncation; faithful: the same function)")
      ->capture_default_str();
  sub->add_option("--qk-bits", a->qk_bits, "the engine's Q/K ring (the one-round exp needs <= 60)")->capture_default_str();
  sub->add_option("--exp-rounds", a->exp_rounds, "exp rounds: 1 (--trunc stochastic, --qk-bits <= 60: the free truncate-reduce of the logit difference indexes one lookup), 2, or 0 = auto (1 where valid)")->capture_default_str();
  sub->add_flag("--no-float", a->no_float, "Skip the float reference");
  sub->add_flag("--json", a->json, "Print one JSON object");
  sub->callback([a] {
    auto cfg = aero::train::read_checkpoint_config(a->ckpt);
    if (!a->data.empty()) cfg.data.dir = a->data;
    const std::string path = aero::train::resolve_checkpoint(a->ckpt);
    auto m = aero::pi::PiModel::from_tensors(cfg.model, aero::SafeTensors::load(path));
    const std::string split = aero::train::split_name(cfg, a->split);
    auto ds = aero::train::open_split(cfg, split);
    const aero::pi::FxSpec spec = aero::pi::engine_spec(a->softmax, a->trunc, a->qk_bits, a->lut_products, a->exp_rounds);
    int T = a->seq_len > 0 ? a->seq_len : cfg.train.seq_len;
    auto r = aero::pi::pi_evaluate(m, ds, T, a->max_chunks, spec, !a->no_float);
    if (a->json) {
      nlohmann::json j = {{"checkpoint", path}, {"split", split}, {"softmax", a->softmax}, {"truncation", a->trunc},
                          {"lut_products", spec.products_in_lookups()}, {"exp_rounds", spec.exp_one_round() ? 1 : 2},
                          {"pi_sim_val_loss", r.ce_fixed}, {"pi_sim_val_ppl", r.ppl_fixed},
                          {"float_val_loss", r.ce_float}, {"float_val_ppl", r.ppl_float},
                          {"next_token_agreement", r.agree_all}, {"last_position_agreement", r.agree_last},
                          {"max_logit_abs_err", r.max_logit_err}, {"chunks", r.chunks}, {"tokens", r.tokens},
                          {"max_wire_bits", r.max_bits}, {"logit_bits", r.logit_bits},
                          {"ln_linear_acc_bits", r.ln_linear_acc_bits}, {"seconds", r.seconds}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("%s on %s (%llu chunks, %llu tokens, softmax %s, truncation %s, exp in %d round%s):\n", path.c_str(),
                split.c_str(), (unsigned long long)r.chunks, (unsigned long long)r.tokens, a->softmax.c_str(),
                a->trunc.c_str(), spec.exp_one_round() ? 1 : 2, spec.exp_one_round() ? "" : "s");
    std::printf("  pi-sim perplexity %.4f (loss %.5f)\n", r.ppl_fixed, r.ce_fixed);
    if (!a->no_float)
      std::printf("  float  perplexity %.4f (loss %.5f); relative gap %+.3f%%; next-token agreement %.2f%% "
                  "(last position %.2f%%); max |logit error| %.4f\n",
                  r.ppl_float, r.ce_float, 100.0 * (r.ppl_fixed / r.ppl_float - 1.0), 100.0 * r.agree_all,
                  100.0 * r.agree_last, r.max_logit_err);
    int calibrated = 0;
    for (const auto& b : m.blocks) calibrated += !b.softmax_clip.empty();
    if (spec.softmax == aero::pi::SoftmaxVariant::clipped)
      std::printf("  clip constants: %s\n", calibrated ? "per head, from the checkpoint's calibration (aero pi calibrate)"
                                                        : "the global clip_hi (no calibration in the checkpoint)");
    std::printf("  widest wire %d bits; logits %d bits (the secure engine needs --qk-bits >= %d, default %d); "
                "LayerNorm-fed linear accumulators %d bits (stochastic engine: <= 33); %.1f s\n",
                r.max_bits, r.logit_bits, r.logit_bits + 1 + spec.f + spec.c_frac, aero::pi::FxSpec{}.qk_bits,
                r.ln_linear_acc_bits, r.seconds);
  });
});

aero::cli::Registrar reg_pi_calibrate("pi_eval_calibrate", [](CLI::App& app) {
  auto* pi = app.get_subcommand("pi");
  auto* sub = pi->add_subcommand(
      "calibrate", "Per-head clip constants of the clipped softmax from training data, stored in the checkpoint's metadata");
  struct Args {
    std::string ckpt, out, split = "train", data;
    long long max_chunks = 64;
    int seq_len = 0;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("checkpoint", a->ckpt, "Checkpoint file or run directory")->required();
  sub->add_option("--out", a->out, "Write the calibrated checkpoint here (default: replace the checkpoint)");
  sub->add_option("--split", a->split, "train, valid or another split name")->capture_default_str();
  sub->add_option("--data", a->data, "Shard directory (default: the run's data.dir)");
  sub->add_option("--max-chunks", a->max_chunks, "Calibrate on at most this many chunks (0 = all)")->capture_default_str();
  sub->add_option("--seq-len", a->seq_len, "Chunk length (default: train.seq_len)");
  sub->callback([a] {
    auto cfg = aero::train::read_checkpoint_config(a->ckpt);
    if (!a->data.empty()) cfg.data.dir = a->data;
    const std::string path = aero::train::resolve_checkpoint(a->ckpt);
    auto st = aero::SafeTensors::load(path);
    st.metadata.erase(aero::pi::PiModel::kSoftmaxClipKey);  // calibrate the model itself
    auto m = aero::pi::PiModel::from_tensors(cfg.model, st);
    const std::string split = aero::train::split_name(cfg, a->split);
    auto ds = aero::train::open_split(cfg, split);
    const int T = a->seq_len > 0 ? a->seq_len : cfg.train.seq_len;
    aero::pi::FxSpec spec;
    spec.softmax = aero::pi::SoftmaxVariant::clipped;
    auto r = aero::pi::calibrate_softmax_clip(m, ds, T, a->max_chunks, spec);
    std::printf("%s: clip constants from %llu chunks of %s (%llu rows per head); mean TV distance of the clipped "
                "softmax at the constant (at the global %.1f), largest logit:\n",
                path.c_str(), (unsigned long long)r.chunks, split.c_str(), (unsigned long long)r.rows, spec.clip_hi);
    for (size_t l = 0; l < r.clip.size(); ++l) {
      std::printf("  layer %zu:", l);
      for (size_t h = 0; h < r.clip[l].size(); ++h)
        std::printf("  %.2f (TV %.4f, %.4f; max %.1f)", r.clip[l][h], r.tv[l][h], r.tv_default[l][h], r.max_logit[l][h]);
      std::printf("\n");
    }
    st.metadata[aero::pi::PiModel::kSoftmaxClipKey] = r.to_json(split).dump();
    const std::string out = a->out.empty() ? path : a->out;
    st.save(out);
    std::printf("wrote %s (metadata %s)\n", out.c_str(), aero::pi::PiModel::kSoftmaxClipKey);
  });
});

}  // namespace
