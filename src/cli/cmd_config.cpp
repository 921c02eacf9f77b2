// `aero config`: prints the fully resolved run configuration as JSON (every default filled in),
// so a user sees exactly what a preset, rung and --set overrides mean before training.
#include <cstdio>

#include "cli/config_options.h"
#include "cli/registry.h"
#include "core/files.h"

namespace {
aero::cli::Registrar reg("config", [](CLI::App& app) {
  auto* sub = app.add_subcommand("config", "Print the resolved run configuration (JSON)");
  auto opts = aero::cli::add_config_options(sub);
  auto out = std::make_shared<std::string>();
  auto list = std::make_shared<bool>(false);
  sub->add_option("-o,--out", *out, "Write the JSON to this file instead of stdout");
  sub->add_flag("--list", *list, "List the preset and rung names");
  sub->callback([opts, out, list] {
    if (*list) {
      std::printf("presets:");
      for (auto& p : aero::model::preset_names()) std::printf(" %s", p.c_str());
      std::printf("\nrungs:");
      for (auto& r : aero::model::rung_names()) std::printf(" %s", r.c_str());
      std::printf("\n  (any rung may end in -kN; SM+WN-<groups>, SM+SN-<groups> with groups qk, qkv, qkvo, v, o, ffn joined by +)\n");
      return;
    }
    std::string s = aero::model::to_json(opts->build()).dump(2) + "\n";
    if (out->empty()) std::fputs(s.c_str(), stdout);
    else aero::write_file_atomic(*out, s);
  });
});
}  // namespace
