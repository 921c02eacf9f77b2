// Learning-rate schedule: linear warmup from 0 to the peak, then linear or cosine decay to
// min_lr at the last step, or constant (SPEC section 4: 5% warmup + linear decay for
// CodeParrot; cosine 6e-4 -> 6e-6 with 200 warmup steps for Languini).
#pragma once
#include <cstdint>
#include <string>

namespace aero::train {

enum class ScheduleKind { Linear, Cosine, Constant };
ScheduleKind schedule_from_name(const std::string& s);  // throws naming train.schedule

struct LrSchedule {
  double peak = 1e-3, min_lr = 0.0;
  int64_t warmup_steps = 0, total_steps = 1;
  ScheduleKind kind = ScheduleKind::Linear;

  // warmup: a fraction of total_steps when < 1, else a step count (docs/config.md).
  static LrSchedule make(double peak, double min_lr, double warmup, int64_t total_steps,
                         ScheduleKind kind);
  // Learning rate for optimizer step `step` (0-based). During warmup: peak*(step+1)/warmup,
  // so the first update is not a no-op; after it, progress p = (step-warmup)/(total-warmup-1)
  // runs from 0 to 1 at the last step (min_lr is reached exactly), and lr = min + (peak-min)*(1-p) (linear) or
  // min + (peak-min)*(1+cos(pi p))/2 (cosine).
  double at(int64_t step) const;
};

}  // namespace aero::train
