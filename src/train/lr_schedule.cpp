#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace aero::train {

ScheduleKind schedule_from_name(const std::string& s) {
  if (s == "linear") return ScheduleKind::Linear;
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "constant") return ScheduleKind::Constant;
  fail("train.schedule: expected linear, cosine or constant, got '", s, "'");
}

LrSchedule LrSchedule::make(double peak, double min_lr, double warmup, int64_t total,
                            ScheduleKind kind) {
  AERO_CHECK(total >= 1, "train.steps must be >= 1, got ", total);
  AERO_CHECK(peak >= 0 && std::isfinite(peak), "train.lr must be finite and >= 0, got ", peak);
  AERO_CHECK(min_lr >= 0 && min_lr <= peak, "train.min_lr must be in [0, lr], got ", min_lr);
  AERO_CHECK(warmup >= 0, "train.warmup must be >= 0, got ", warmup);
  LrSchedule s;
  s.peak = peak;
  s.min_lr = min_lr;
  s.total_steps = total;
  s.kind = kind;
  s.warmup_steps = warmup < 1.0 ? int64_t(std::llround(warmup * double(total))) : int64_t(warmup);
  s.warmup_steps = std::min(s.warmup_steps, total);
  return s;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return peak * double(step + 1) / double(warmup_steps);
  if (kind == ScheduleKind::Constant) return peak;
  const int64_t span = total_steps - warmup_steps;
  // The last step (total-1) reaches min_lr exactly.
  const double p = span <= 1 ? 1.0 : std::min(1.0, double(step - warmup_steps) / double(span - 1));
  if (kind == ScheduleKind::Linear) return min_lr + (peak - min_lr) * (1.0 - p);
  return min_lr + (peak - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
}

}  // namespace aero::train
