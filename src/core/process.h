// Running another program and waiting for it (aero reproduce's GPU trainer processes,
// rsvg-convert for PNG figures).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace aero {

struct ProcessOptions {
  std::string log_path;  // "" = inherit stdout/stderr; else both are appended to this file
  std::vector<std::pair<std::string, std::string>> env;  // set in the child only
};

// Runs argv (argv[0] looked up on PATH unless it holds a '/') and waits; returns the exit
// status, 128 + signal when it was killed, 127 when it could not be started.
int run_process(const std::vector<std::string>& argv, const ProcessOptions& opts = {});

}  // namespace aero
