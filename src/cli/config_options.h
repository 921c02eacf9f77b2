// Shared command-line options that build a run configuration: --config FILE, --preset NAME,
// --rung NAME, --set key=value (repeatable). Every command that takes a model uses these, so
// names users type mean the same everywhere (docs/config.md).
//
//   auto* sub = app.add_subcommand("train", "...");
//   auto opts = aero::cli::add_config_options(sub);
//   sub->callback([opts] { aero::model::RunConfig cfg = opts->build(); ... });
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace aero::cli {

struct ConfigOptions {
  std::string config_path;
  std::string preset;
  std::string rung;
  std::vector<std::string> sets;
  // Resolves preset, config file, rung and overrides (throws aero::Error naming the key).
  aero::model::RunConfig build() const;
};

// Adds the four options to `sub`; the returned object is filled when the command line parses.
std::shared_ptr<ConfigOptions> add_config_options(CLI::App* sub);

}  // namespace aero::cli
