// The metrics log RUN_DIR/metrics.jsonl: one JSON object per line (docs/config.md), flushed
// after every line so a crash loses nothing already reported. On resume the records after
// the checkpoint's step are dropped: the resumed run writes them again, identically.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace aero::train {

class MetricsLog {
 public:
  MetricsLog() = default;  // a log that writes nowhere
  // keep_through_step < 0: start a new file; else keep the existing records with
  // step <= keep_through_step and append after them.
  MetricsLog(const std::string& path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const nlohmann::json& record);

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace aero::train
