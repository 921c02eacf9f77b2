// The --config/--preset/--rung/--set options shared by every model-taking command.
#include "cli/config_options.h"

namespace aero::cli {

aero::model::RunConfig ConfigOptions::build() const {
  return aero::model::build_run_config(config_path, preset, rung, sets);
}

std::shared_ptr<ConfigOptions> add_config_options(CLI::App* sub) {
  auto o = std::make_shared<ConfigOptions>();
  std::string presets, rungs;
  for (auto& p : aero::model::preset_names()) presets += (presets.empty() ? "" : ", ") + p;
  for (auto& r : aero::model::rung_names()) rungs += (rungs.empty() ? "" : ", ") + r;
  sub->add_option("--config", o->config_path,
                  "Run config JSON (docs/config.md); with --preset it is merged on top of it");
  sub->add_option("--preset", o->preset, "Model preset: " + presets + " (default tiny)");
  sub->add_option("--rung", o->rung,
                  "AERO ladder rung: " + rungs + "; any rung may end in -kN (FFN in the first N layers)");
  sub->add_option("--set", o->sets, "Override a key, e.g. --set model.norm=none --set train.lr=3e-4")
      ->take_first()
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  return o;
}

}  // namespace aero::cli
