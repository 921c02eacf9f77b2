// The `aero` command: subcommands are registered by the cmd_*.cpp files beside this one.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "cli/registry.h"
#include "core/error.h"

namespace aero::cli {
std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}
}  // namespace aero::cli

int main(int argc, char** argv) {
  CLI::App app{"aero: AERO-style private LLM inference toolkit (train, analyse, run privately)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "aero 0.1");
  auto& reg = aero::cli::registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (auto& e : reg) e.fn(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const aero::Error& e) {
    std::fprintf(stderr, "aero: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aero: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
