#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace aero {

Progress::Progress(std::string label, double total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::hours(1);
  tty_ = ::isatty(2);
  min_interval_ = tty_ ? 0.5 : 10.0;
}

double Progress::rate() const {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s > 0 ? done_ / s : 0.0;
}

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

void Progress::update(double done, const std::string& extra) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_draw_).count() < min_interval_) return;
  last_draw_ = now;
  draw(false, extra);
}

void Progress::finish(const std::string& extra) { draw(true, extra); }

void Progress::draw(bool final, const std::string& extra) {
  double r = rate();
  double eta = (r > 0 && total_ > 0) ? (total_ - done_) / r : NAN;
  double pct = total_ > 0 ? 100.0 * done_ / total_ : 0.0;
  std::fprintf(stderr, "%s%s %.0f/%.0f (%.1f%%) %.3g %s/s ETA %s%s%s%s", tty_ ? "\r\033[K" : "",
               label_.c_str(), done_, total_, pct, r, unit_.c_str(),
               final ? "0s" : format_duration(eta).c_str(), extra.empty() ? "" : " | ",
               extra.c_str(), (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace aero
