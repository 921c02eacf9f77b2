// Subcommand registry: each cmd_*.cpp in src/cli registers its subcommands with a static
// Registrar, so adding a command touches no shared file.
//
//   static aero::cli::Registrar reg("train", [](CLI::App& app) {
//     auto* sub = app.add_subcommand("train", "Train a model");
//     ... sub->callback([=] { ... });
//   });
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace aero::cli {

using Register = std::function<void(CLI::App&)>;

struct Entry {
  std::string name;
  Register fn;
};
std::vector<Entry>& registry();

struct Registrar {
  Registrar(std::string name, Register fn) { registry().push_back({std::move(name), std::move(fn)}); }
};

}  // namespace aero::cli
