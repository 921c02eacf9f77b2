// `aero flops`: FLOPs of FFN, attention, embedding and LM head in the paper's convention and
// the nonlinear-operator inventory (docs/analysis.md), for a config, a run or a preset.
#include <cstdio>
#include <filesystem>

#include "analysis/compare.h"
#include "analysis/flops.h"
#include "cli/config_options.h"
#include "cli/registry.h"
#include "core/error.h"
#include "core/files.h"
#include "train/checkpoint.h"

namespace {

namespace fs = std::filesystem;

// CONFIG may be a run config JSON, a run directory (its config.json) or a checkpoint file.
aero::model::RunConfig config_from_source(const std::string& src, aero::cli::ConfigOptions opts) {
  if (src.empty()) return opts.build();
  AERO_CHECK(fs::exists(src), "aero flops: ", src, " not found (expected a config JSON, a run directory or a checkpoint)");
  bool overrides = !opts.preset.empty() || !opts.rung.empty() || !opts.sets.empty() || !opts.config_path.empty();
  if (fs::is_directory(src) && fs::exists(fs::path(src) / "config.json")) {
    AERO_CHECK(!overrides, "aero flops: --preset/--rung/--set/--config cannot be combined with a run directory (",
               src, "); pass its config.json instead");
    std::string p = (fs::path(src) / "config.json").string();
    return aero::analysis::read_run_config(p);
  }
  if (fs::is_directory(src) || src.ends_with(".safetensors")) {
    AERO_CHECK(!overrides, "aero flops: --preset/--rung/--set/--config cannot be combined with a checkpoint (", src, ")");
    return aero::train::read_checkpoint_config(src);
  }
  AERO_CHECK(opts.config_path.empty(), "aero flops: give the config either as CONFIG or as --config, not both");
  opts.config_path = src;
  return opts.build();
}

aero::cli::Registrar reg("flops", [](CLI::App& app) {
  auto* sub = app.add_subcommand(
      "flops", "FLOPs (FFN, attention, embedding, LM head; FLOPs = 2 x MACs) and nonlinear-operator inventory");
  auto opts = aero::cli::add_config_options(sub);
  struct Args {
    std::string source;
    int context = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  sub->add_option("CONFIG", a->source, "Run config JSON, run directory or checkpoint (or use --preset/--rung)");
  sub->add_option("--context,-T", a->context, "Tokens T of the forward pass (default: train.seq_len of the config)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--json", a->json, "Print one JSON object (ffn_flops, attn_flops, ... as numbers)");
  sub->callback([opts, a] {
    aero::model::RunConfig cfg = config_from_source(a->source, *opts);
    int T = a->context > 0 ? a->context : cfg.train.seq_len;
    auto r = aero::analysis::compute_flops(cfg.model, T);
    const auto& m = cfg.model;
    if (a->json) {
      nlohmann::json j = aero::analysis::to_json(r);
      j["architecture"] = aero::analysis::architecture_name(m);
      j["family"] = aero::model::to_string(m.family);
      j["n_head"] = m.n_head;
      j["d_model"] = m.d_model;
      j["d_ff"] = m.d_ff;
      j["vocab_size"] = m.vocab_size;
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s: %s L=%d H=%d d=%d d_ff=%d V=%d\n", aero::analysis::architecture_name(m).c_str(),
                  aero::model::to_string(m.family), m.n_layer, m.n_head, m.d_model, m.d_ff, m.vocab_size);
      std::fputs(aero::analysis::format_report(r).c_str(), stdout);
    }
  });
});

}  // namespace
