// A live progress line for long jobs: done/total, rate in the caller's unit, ETA.
// Redraws at most every 0.5 s on stderr (with \r when stderr is a terminal, a new line
// every 10 s otherwise, so logs stay readable).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace aero {

class Progress {
 public:
  Progress(std::string label, double total, std::string unit);
  // Sets the amount done so far; `extra` is appended to the line (e.g. "loss 3.21").
  void update(double done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double rate() const;  // units per second since start
  static std::string format_duration(double seconds);

 private:
  void draw(bool final, const std::string& extra);
  std::string label_, unit_;
  double total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_;
  double min_interval_;
};

}  // namespace aero
